"""The probe rule's grid fitted together (issue 15): every cell equals a fit of its own with torch's optimiser on the
same batch order, and the rule's choice is the one the cells fitted one by one would make."""

from __future__ import annotations

import pytest
import torch

from lnlbench.errors import ConfigError
from lnlbench.probe_grid import fit_head_grid
from lnlbench.training import OptimSettings, fit_head

CELLS = [(1e-3, 0.0), (1e-2, 1e-3), (3e-2, 0.3), (1e-3, 1.0)]


def problem(n: int = 150, dim: int = 24, classes: int = 5):
    g = torch.Generator().manual_seed(0)
    protos = torch.randn(classes, dim, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x = protos[y] + torch.randn(n, dim, generator=g)
    torch.manual_seed(3)
    head = torch.nn.Linear(dim, classes)
    return head, x, y


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("schedule", ["cosine", "constant", "step"])
@pytest.mark.parametrize("loss", ["ce", "gce"])
def test_each_cell_equals_torchs_optimiser_on_the_same_batches(optimizer, schedule, loss):
    head, x, y = problem()
    settings = OptimSettings(epochs=4, lr=float("nan"), weight_decay=float("nan"), batch_size=32, optimizer=optimizer,
                             schedule=schedule, milestones=(0.5,))
    together = fit_head_grid(head, x, y, settings, CELLS, loss, 0.7, torch.Generator().manual_seed(7))
    for (lr, wd), fitted in zip(CELLS, together):
        alone = torch.nn.Linear(x.shape[1], 5)
        alone.load_state_dict(head.state_dict())
        fit_head(alone, x, y, OptimSettings(4, lr, wd, 32, optimizer, schedule=schedule, milestones=(0.5,)), loss, 0.7,
                 torch.Generator().manual_seed(7))
        moved = (alone.weight - head.weight).abs().max()
        assert moved > 1e-3  # the fit did something, so agreement is not trivial
        torch.testing.assert_close(fitted.weight, alone.weight, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fitted.bias, alone.bias, rtol=1e-4, atol=1e-5)


def test_cells_share_the_batch_order_and_leave_the_head_alone():
    head, x, y = problem()
    before = head.weight.detach().clone()
    settings = OptimSettings(3, float("nan"), float("nan"), 32, "adam")
    same = fit_head_grid(head, x, y, settings, [(1e-2, 0.0), (1e-2, 0.0)], "ce", 0.7, torch.Generator().manual_seed(1))
    torch.testing.assert_close(same[0].weight, same[1].weight, rtol=0, atol=1e-6)  # product blocking only
    assert torch.equal(head.weight, before)


def test_unknown_optimizer_is_named():
    head, x, y = problem()
    with pytest.raises(ConfigError, match="unknown optimizer 'lbfgs'"):
        fit_head_grid(head, x, y, OptimSettings(1, 0.1, 0.0, 32, "lbfgs"), CELLS, "ce", 0.7, torch.Generator())
