"""ELR's mechanism on constructed cases (Liu et al., NeurIPS 2020; official ELR/model/loss.py).

Targets: t_i <- beta t_i + (1 - beta) p_i / sum(p_i), p clamped to [1e-4, 1 - 1e-4] and detached, t_i = 0 at first,
only for the samples in the batch. Loss: CE + lambda * log(1 - <t_i, p_i>), whose gradient pulls p_i toward t_i even
against the (noisy) label. The plugin tests follow the targets through two epochs of real training and one
full-batch step against the gradient of the loss; without the regulariser (lambda ignored) they fail.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lnlbench.plugin_manager import method_registry
from lnlbench_plugins import elr as elr_mod
from test_mechanisms_gce import expected_step, full_batch_step


def clamped(logits: torch.Tensor) -> torch.Tensor:
    """The official code's prediction for the targets: softmax clamped to [1e-4, 1 - 1e-4], then normalised."""
    p = F.softmax(logits.float(), 1).clamp(1e-4, 1 - 1e-4)
    return p / p.sum(1, keepdim=True)


def test_targets_follow_the_ema_of_the_batch_samples_only():
    g = torch.Generator().manual_seed(0)
    loss = elr_mod.ELRLoss(num_samples=6, num_classes=3, beta=0.7, lam=3.0)
    idx = torch.tensor([4, 1])
    z1, z2 = 3 * torch.randn(2, 3, generator=g), 3 * torch.randn(2, 3, generator=g)
    labels = torch.tensor([0, 2])
    loss(z1, labels, idx)
    assert torch.allclose(loss.targets[idx], 0.3 * clamped(z1))  # from zero: (1 - beta) p
    loss(z2, labels, idx)
    assert torch.allclose(loss.targets[idx], 0.7 * 0.3 * clamped(z1) + 0.3 * clamped(z2))
    untouched = torch.tensor([0, 2, 3, 5])
    assert torch.equal(loss.targets[untouched], torch.zeros(4, 3))
    assert not loss.targets.requires_grad


def test_regulariser_pulls_the_prediction_toward_the_target_against_the_label():
    # the label says class 0; the early-learning target says class 1 (beta near 1: one visit barely moves it)
    loss = elr_mod.ELRLoss(num_samples=1, num_classes=3, beta=0.999, lam=3.0)
    loss.targets[0] = torch.tensor([0.05, 0.9, 0.05])
    logits = torch.tensor([[0.0, 1.0, 0.0]], requires_grad=True)
    idx, label = torch.tensor([0]), torch.tensor([0])
    target_before = loss.targets[0].clone()
    loss(logits, label, idx).sum().backward()
    elr_grad = logits.grad.clone()
    ce_grad = torch.autograd.grad(F.cross_entropy(logits, label), logits)[0]
    assert ce_grad[0, 1] > 0  # CE alone pushes class 1 down, toward the noisy label
    assert elr_grad[0, 1] < 0  # ELR pushes class 1 up, toward the target
    # one small step on each: agreement with the target rises under ELR and falls under CE
    agree = lambda z: float((target_before * F.softmax(z, 1)[0]).sum())  # noqa: E731
    with torch.no_grad():
        assert agree(logits - 0.1 * elr_grad) > agree(logits) > agree(logits - 0.1 * ce_grad)
    # the gradient is CE's plus lambda times that of log(1 - <t, p>) with t the updated, detached target
    t = loss.targets[0].clone()
    z = logits.detach().clone().requires_grad_(True)
    p = F.softmax(z, 1).clamp(1e-4, 1 - 1e-4)
    want = F.cross_entropy(z, label) + 3.0 * torch.log(1 - (t * p).sum(1)).sum()
    assert torch.allclose(elr_grad, torch.autograd.grad(want, z)[0], atol=1e-6)


class RecordingELR(elr_mod.ELRLoss):
    """ELRLoss that keeps each call's (logits, indices), detached, and registers itself."""

    made: list["RecordingELR"] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        RecordingELR.made.append(self)

    def forward(self, logits, labels, indices):
        self.calls.append((logits.detach().clone(), indices.clone()))
        return super().forward(logits, labels, indices)


def test_plugin_targets_are_the_ema_over_epochs_of_the_training_predictions(tmp_path, monkeypatch):
    from test_methods import linear_models, make_ctx

    monkeypatch.setattr(elr_mod, "ELRLoss", RecordingELR)
    RecordingELR.made.clear()
    hp = {"epochs": 3, "batch_size": 8, "augment": False, "beta": 0.6}
    ctx, _ = make_ctx(tmp_path, "elr", hp, n_per_class=6)
    linear_models(ctx)
    method_registry().get("elr")().fit(ctx)
    (rec,) = RecordingELR.made
    n = len(ctx.noisy_labels)
    want = torch.zeros(n, 4)
    visits = torch.zeros(n, dtype=torch.long)
    for logits, idx in rec.calls:
        want[idx] = 0.6 * want[idx] + 0.4 * clamped(logits)
        visits[idx] += 1
    assert visits.min() >= 2  # every sample was visited in several epochs (drop_last skips a few per epoch)
    assert torch.allclose(rec.targets, want, atol=1e-6)


def test_plugin_step_includes_the_regulariser(tmp_path):
    ctx, before, after, _ = full_batch_step(tmp_path, "elr", {"beta": 0.5, "lambda": 2.0})
    # one visit from zero: t = (1 - beta) * p at the initial parameters (detached)
    x = ctx.train.batch(torch.arange(len(ctx.noisy_labels)), None)
    with torch.no_grad():
        t = 0.5 * clamped(before(x))

    def elr_loss(z, y):
        p = F.softmax(z, 1).clamp(1e-4, 1 - 1e-4)
        return F.cross_entropy(z, y, reduction="none") + 2.0 * torch.log(1 - (t * p).sum(1))

    want = expected_step(ctx, before, 0.5, elr_loss)
    ce_only = expected_step(ctx, before, 0.5, lambda z, y: F.cross_entropy(z, y, reduction="none"))
    for name, p in after.named_parameters():
        assert torch.allclose(p.detach(), want[name], atol=1e-5), name
    assert not torch.allclose(after[1].weight.detach(), ce_only["1.weight"], atol=1e-4)  # the regulariser acted


def test_elr_defaults_follow_the_official_configs():
    cls = method_registry().get("elr")
    assert (lambda h: (h["beta"], h["lambda"]))(cls.resolve_hparams("cifar10", "sym", 0.4)) == (0.7, 3.0)
    assert (lambda h: (h["beta"], h["lambda"]))(cls.resolve_hparams("cifar10", "asym", 0.4)) == (0.9, 1.0)
    assert (lambda h: (h["beta"], h["lambda"]))(cls.resolve_hparams("cifar100", "sym", 0.4)) == (0.9, 7.0)
    assert "config_cifar100.json" in cls.hparam_overrides("cifar100", "sym", 0.4)["lambda"][1]
    with pytest.raises(Exception, match="beta"):
        cls.resolve_hparams("cifar10", "sym", 0.4, {"beta": 1.0})
