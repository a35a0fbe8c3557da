"""JoCoR's mechanism on constructed cases (Wei et al., CVPR 2020; official algorithm/loss.py and jocor.py).

Per sample: l_i = (1 - lambda)(CE1 + CE2) + lambda (KL(p2 || p1) + KL(p1 || p2)); the batch keeps its small-l
fraction 1 - R(t) and one step on the mean l of the kept samples updates BOTH networks (no exchange). The cases are
built so that the joint loss and the plain CE ranking disagree, so a selection without the co-regularisation fails.
"""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

from lnlbench.errors import ConfigError
from lnlbench.plugin_manager import method_registry
from lnlbench.sample_selection import small_loss_count
from lnlbench_plugins import coteaching as ct
from lnlbench_plugins import jocor
from test_methods import linear_models, make_ctx


class Table(torch.nn.Module):
    """A 'network' whose logits for sample i are the trainable row i of a table (input: the sample ids)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.rows = torch.nn.Parameter(logits.clone())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.rows[ids.long()]


def probs_to_logits(p: list[list[float]]) -> torch.Tensor:
    return torch.tensor(p).log()


# samples 0, 1: the networks agree, each has p_y = 0.5 (moderate CE, no disagreement)
# samples 2, 3: each network has p_y = 0.8 (smaller CE) but they put the rest on different classes (large KL)
NET1 = probs_to_logits([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.8, 0.19, 0.01], [0.01, 0.8, 0.19]])
NET2 = probs_to_logits([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.8, 0.01, 0.19], [0.19, 0.8, 0.01]])
LABELS = torch.tensor([0, 1, 0, 1])


def reference_joint_loss(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor, lam: float) -> torch.Tensor:
    """loss.py's `loss_jocor` per sample, written independently: torch's kl_div both ways, gradients into both."""
    ce = F.cross_entropy(z1, labels, reduction="none") + F.cross_entropy(z2, labels, reduction="none")
    kl = (F.kl_div(F.log_softmax(z1, 1), F.softmax(z2, 1), reduction="none").sum(1)
          + F.kl_div(F.log_softmax(z2, 1), F.softmax(z1, 1), reduction="none").sum(1))
    return (1 - lam) * ce + lam * kl


def test_joint_loss_is_weighted_ce_plus_symmetric_kl():
    lam = 0.7
    joint = jocor.joint_loss(NET1, NET2, LABELS, lam)
    assert torch.allclose(joint, reference_joint_loss(NET1, NET2, LABELS, lam), atol=1e-6)
    kl = reference_joint_loss(NET1, NET2, LABELS, 1.0)
    assert kl[:2].abs().max() < 1e-6 and (kl[2:] > 1.0).all()  # the constructed (dis)agreement


def test_selection_ranks_by_the_joint_loss_with_co_regularisation():
    ce = F.cross_entropy(NET1, LABELS, reduction="none") + F.cross_entropy(NET2, LABELS, reduction="none")
    assert set(ce.argsort()[:2].tolist()) == {2, 3}  # plain CE (co-teaching's criterion) would keep 2 and 3
    nets = (Table(NET1), Table(NET2))
    opt = torch.optim.SGD([*nets[0].parameters(), *nets[1].parameters()], lr=0.1)
    keep, loss = jocor.jocor_step(nets, opt, torch.arange(4), LABELS, 0.5, 0.9, contextlib.nullcontext)
    assert sorted(keep.tolist()) == [0, 1]  # the disagreeing samples are dropped
    assert loss.item() == pytest.approx(jocor.joint_loss(NET1, NET2, LABELS, 0.9)[[0, 1]].mean().item(), rel=1e-6)
    # with lambda = 0 JoCoR's criterion is the CE sum: then it keeps 2 and 3
    nets = (Table(NET1), Table(NET2))
    opt = torch.optim.SGD([*nets[0].parameters(), *nets[1].parameters()], lr=0.1)
    keep, _ = jocor.jocor_step(nets, opt, torch.arange(4), LABELS, 0.5, 0.0, contextlib.nullcontext)
    assert sorted(keep.tolist()) == [2, 3]


def test_both_networks_step_on_the_same_samples_with_the_joint_gradient():
    g = torch.Generator().manual_seed(0)
    n, c = 12, 4
    logits1, logits2 = torch.randn(n, c, generator=g), torch.randn(n, c, generator=g)
    labels = torch.randint(0, c, (n,), generator=g)
    nets = (Table(logits1), Table(logits2))
    before = [copy.deepcopy(m) for m in nets]
    lr, lam, rate = 0.5, 0.6, 0.4
    opt = torch.optim.SGD([*nets[0].parameters(), *nets[1].parameters()], lr=lr)
    keep, _ = jocor.jocor_step(nets, opt, torch.arange(n), labels, rate, lam, contextlib.nullcontext)
    assert len(keep) == small_loss_count(n, rate)
    kept = set(keep.tolist())
    # a row changes exactly when its sample is kept, in both networks alike
    for net, old in zip(nets, before):
        moved = {i for i in range(n) if not torch.equal(net.rows[i], old.rows[i])}
        assert moved == kept
    # and the step is -lr * the gradient of the mean joint loss over the kept samples, KL included on both sides
    z1, z2 = logits1.clone().requires_grad_(True), logits2.clone().requires_grad_(True)
    reference_joint_loss(z1, z2, labels, lam)[keep].mean().backward()
    assert torch.allclose(nets[0].rows.detach(), logits1 - lr * z1.grad, atol=1e-6)
    assert torch.allclose(nets[1].rows.detach(), logits2 - lr * z2.grad, atol=1e-6)


def test_plugin_follows_the_forget_schedule_and_reports_one_shared_selection(tmp_path, monkeypatch):
    epochs, t_k, tau, batch = 4, 2, 0.5, 20
    hp = {"epochs": epochs, "num_gradual": t_k, "forget_rate": tau, "batch_size": batch, "augment": False,
          "lr": 0.1, "co_lambda": 0.8}
    ctx, _ = make_ctx(tmp_path, "jocor", hp, n_per_class=15)
    linear_models(ctx)
    calls: list[tuple[float, float, int, int]] = []
    real_step = jocor.jocor_step

    scales: list[float] = []

    def step_spy(nets, opt, inputs, labels, forget_rate, co_lambda, autocast, scaler=None, loss_scale=1.0):
        keep, loss = real_step(nets, opt, inputs, labels, forget_rate, co_lambda, autocast, scaler, loss_scale)
        calls.append((forget_rate, co_lambda, len(labels), len(keep)))
        scales.append(loss_scale)
        return keep, loss

    monkeypatch.setattr(jocor, "jocor_step", step_spy)
    out = method_registry().get("jocor")().fit(ctx)
    per_epoch = len(calls) // epochs
    assert per_epoch * epochs == len(calls) and per_epoch > 0
    rates = [calls[e * per_epoch][0] for e in range(epochs)]
    assert rates == [pytest.approx(ct.forget_rate_at(e, tau, t_k)) for e in range(epochs)] == [0, 0.25, 0.5, 0.5]
    for e in range(epochs):
        for rate, lam, size, kept in calls[e * per_epoch : (e + 1) * per_epoch]:
            assert rate == rates[e] and lam == 0.8 and kept == small_loss_count(size, rate)
    sel = ctx.selections
    assert set(sel) == {"net1"}  # one selection, shared by both networks
    assert [e["epoch"] for e in sel["net1"]["by_epoch"]] == list(range(epochs))
    assert sel["net1"]["by_epoch"][0]["size"] == per_epoch * batch  # R(0) = 0 keeps every sample seen
    assert sel["net1"]["final"]["size"] < per_epoch * batch
    assert out.diagnostics["co_lambda"] == 0.8 and out.diagnostics["num_gradual"] == t_k
    # under SGD the joint loss is divided by 1 - lambda, so each network's CE steps as in fft (loss_scale ce-unit)
    assert scales and all(s == pytest.approx(1 / (1 - 0.8)) for s in scales)
    assert out.diagnostics["loss_scale"] == pytest.approx(5.0)


def test_ce_unit_scale_gives_each_network_the_plain_ce_step():
    g = torch.Generator().manual_seed(1)
    n, c, lam, lr = 10, 3, 0.9, 0.5
    logits1, logits2 = torch.randn(n, c, generator=g), torch.randn(n, c, generator=g)
    labels = torch.randint(0, c, (n,), generator=g)
    nets = (Table(logits1), Table(logits2))
    opt = torch.optim.SGD([*nets[0].parameters(), *nets[1].parameters()], lr=lr)
    keep, _ = jocor.jocor_step(nets, opt, torch.arange(n), labels, 0.0, lam, contextlib.nullcontext,
                               loss_scale=jocor.step_scale("ce-unit", lam))
    z1, z2 = logits1.clone().requires_grad_(True), logits2.clone().requires_grad_(True)
    # the reference: CE of each network at weight 1, co-regularisation at lambda / (1 - lambda)
    ce = F.cross_entropy(z1, labels, reduction="none") + F.cross_entropy(z2, labels, reduction="none")
    (ce + lam / (1 - lam) * (reference_joint_loss(z1, z2, labels, 1.0))).mean().backward()
    assert torch.allclose(nets[0].rows.detach(), logits1 - lr * z1.grad, atol=1e-5)
    assert jocor.step_scale("official", lam) == 1.0
    with pytest.raises(ConfigError, match="loss_scale=official"):
        jocor.step_scale("ce-unit", 1.0)


def test_jocor_defaults_follow_the_official_code():
    cls = method_registry().get("jocor")
    assert cls.resolve_hparams("cifar10", "sym", 0.5)["co_lambda"] == 0.9
    assert cls.resolve_hparams("cifar10", "sym", 0.8)["co_lambda"] == 0.65
    assert cls.resolve_hparams("cifar100", "sym", 0.5)["co_lambda"] == 0.85
    assert cls.resolve_hparams("cifar10", "asym", 0.4)["forget_rate"] == pytest.approx(0.2)  # jocor.py: rate / 2
    assert cls.resolve_hparams("cifar10", "sym", 0.5)["forget_rate"] is None  # the declared rate, as co-teaching
    assert cls.resolve_hparams("cifar10", "sym", 0.5)["batch_size"] == 128
    with pytest.raises(Exception, match="forget every sample"):
        cls.resolve_hparams("cifar10", "sym", 1.0)
