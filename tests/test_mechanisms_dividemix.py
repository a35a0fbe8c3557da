"""DivideMix's mechanisms on a constructed case (Li et al., ICLR 2020; official Train_cifar.py).

A real MethodContext over 4 x 25 prototype images with 40% symmetric noise (tests/test_methods.py); the backbones are
replaced by linear models that remember the softmax of every forward run without gradients, so a recorded target
can be traced back to the network that produced it. Each test watches the plugin through a function it calls
(`co_guess`, `co_refine`, `semi_loss`, the gradient scaler, ...) and checks what the paper specifies: test-time
ensemble of both networks, co-guessing with both, co-refinement with the network's own prediction weighted by the
peer's clean probability, the peer's division, the ramped unlabelled weight and the warm-up confidence penalty.
"""

from __future__ import annotations

import types
from collections import Counter
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from lnlbench import mixmatch
from lnlbench.context import MethodContext
from lnlbench.plugin_manager import method_registry
from lnlbench_plugins import dividemix as dm
from test_methods import SIZE, make_ctx

WARMUP = 1
EPOCHS = 3
RAMPUP = 1.5  # shorter than the two training epochs, so the ramp both rises and saturates
BASE = {"epochs": EPOCHS, "warmup_epochs": WARMUP, "rampup_epochs": RAMPUP, "batch_size": 16, "augment": False,
        "lr": 0.05, "lambda_u": 25.0}



class Remembering(torch.nn.Module):
    """A linear classifier on the flattened pixels that keeps the softmax of every forward run without gradients."""

    def __init__(self, seed: int, num_classes: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.lin = torch.nn.Linear(3 * SIZE * SIZE, num_classes)
        self.no_grad_probs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x.flatten(1))
        if not torch.is_grad_enabled():
            self.no_grad_probs.append(torch.softmax(out.detach().float(), 1).clone())
        return out


def dividemix_ctx(tmp_path, noise: str = "sym", **hparams: Any) -> tuple[MethodContext, list[Remembering]]:
    """A DivideMix context whose `make_model(i)` builds a Remembering network; returns it and the networks made."""
    ctx, _ = make_ctx(tmp_path, "dividemix", {**BASE, **hparams}, n_per_class=25, noise=noise)
    made: list[Remembering] = []

    def make(index: int = 0) -> torch.nn.Module:
        made.append(Remembering(100 + index, ctx.num_classes))
        return made[-1]

    ctx.make_model = make  # type: ignore[method-assign]
    return ctx, made


def producer(p: torch.Tensor, nets: list[Remembering]) -> Remembering:
    """The one network among `nets` that computed the probabilities `p` (bit-identical) without gradients."""
    owners = [m for m in nets if any(o.shape == p.shape and torch.equal(o, p) for o in m.no_grad_probs)]
    assert len(owners) == 1, f"{len(owners)} networks produced these probabilities"
    return owners[0]


def watch_train_one(monkeypatch, events: list[tuple]) -> None:
    """Record ("train", net, peer, labeled, peer_prob) before each network's semi-supervised epoch."""
    original = dm.DivideMix._train_one

    def spy(ctx_, net, peer, opt, step, labeled, unlabeled, peer_prob, *rest):
        events.append(("train", net, peer, labeled.clone(), peer_prob.clone()))
        return original(ctx_, net, peer, opt, step, labeled, unlabeled, peer_prob, *rest)

    monkeypatch.setattr(dm.DivideMix, "_train_one", staticmethod(spy))


def watch_divisions(ctx: MethodContext) -> dict[tuple[int, str], torch.Tensor]:
    """Keep every per-epoch division each network reports, keyed by (epoch, network)."""
    kept: dict[tuple[int, str], torch.Tensor] = {}
    original = ctx.record_selection

    def record(mask: torch.Tensor, epoch: int | None = None, network: str = "net1") -> dict:
        kept[epoch, network] = mask.detach().clone().cpu()
        return original(mask, epoch, network)

    ctx.record_selection = record  # type: ignore[method-assign]
    return kept


def fit(ctx: MethodContext):
    return method_registry().get("dividemix")().fit(ctx)


# --- test time --------------------------------------------------------------------------------------------------------


def test_test_time_prediction_combines_both_networks(tmp_path):
    ctx, made = dividemix_ctx(tmp_path)
    out = fit(ctx)
    net1, net2 = made
    x = ctx.test.batch(torch.arange(len(ctx.test_labels)))
    with torch.no_grad():
        ensemble, l1, l2 = out.predict(x).float(), net1(x), net2(x)
    both = l1 + l2
    assert not torch.allclose(l1, l2, atol=1e-3)  # two different networks, so a single one is distinguishable
    scale = float((ensemble * both).sum() / (both * both).sum())  # a sum and a mean of the two give the same argmax
    assert scale > 0
    assert torch.allclose(ensemble, scale * both, atol=1e-5)


def test_ensemble_is_the_sum_of_the_two_networks():
    lin1, lin2 = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    x = torch.randn(7, 5)
    with torch.no_grad():
        assert torch.allclose(dm.Ensemble(lin1, lin2)(x), lin1(x) + lin2(x))


# --- co-guessing and co-refinement --------------------------------------------------------------------------------------


def test_co_guessing_uses_both_networks_and_refinement_the_networks_own(tmp_path, monkeypatch):
    ctx, made = dividemix_ctx(tmp_path)
    events: list[tuple] = []
    watch_train_one(monkeypatch, events)
    real_guess, real_refine = dm.co_guess, dm.co_refine

    def guess_spy(probs: list[torch.Tensor], temperature: float) -> torch.Tensor:
        out = real_guess(probs, temperature)
        events.append(("guess", [p.clone() for p in probs], out.clone()))
        return out

    def refine_spy(y: torch.Tensor, w: torch.Tensor, p: torch.Tensor, temperature: float) -> torch.Tensor:
        out = real_refine(y, w, p, temperature)
        events.append(("refine", y.clone(), w.clone(), p.clone(), out.clone()))
        return out

    monkeypatch.setattr(dm, "co_guess", guess_spy)
    monkeypatch.setattr(dm, "co_refine", refine_spy)
    fit(ctx)

    temperature = ctx.hparams["T"]
    net = peer = None
    labeled = peer_prob = None
    weights: dict[int, list[torch.Tensor]] = {}
    guesses = refinements = 0
    for event in events:
        if event[0] == "train":
            _, net, peer, labeled, peer_prob = event
            weights[id(net)] = []
        elif event[0] == "guess":
            guesses += 1
            probs, out = event[1], event[2]
            # two predictions (the two augmentations) from each of the two networks
            assert Counter(id(producer(p, made)) for p in probs) == {id(net): 2, id(peer): 2}
            assert torch.allclose(out, mixmatch.sharpen(torch.stack(probs).mean(0), temperature))
        else:
            refinements += 1
            y, w, p, out = event[1:]
            assert producer(p, made) is net  # the network's OWN prediction, not the peer's
            assert torch.equal(y.sum(1), torch.ones(len(y))) and torch.equal(y.max(1).values, torch.ones(len(y)))
            assert torch.allclose(out, mixmatch.sharpen(w[:, None] * y + (1 - w[:, None]) * p, temperature))
            weights[id(net)].append(w)
            assert peer_prob is not None and labeled is not None
            assert set(w.tolist()) <= set(peer_prob[labeled].float().tolist())  # the peer's clean probability
    assert guesses > 0 and refinements > 0
    assert all(ws for ws in weights.values())
    used = torch.cat([w for ws in weights.values() for w in ws])
    assert (used < 1).any() and (used > 0).any()  # the weight is a probability, not a hard 0/1 switch


def test_co_refinement_weights_label_and_prediction_by_the_clean_probability():
    y = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    p = torch.tensor([[0.5, 0.2, 0.3], [0.1, 0.6, 0.3]])
    w = torch.tensor([0.3, 0.8])
    mixed = torch.stack([0.3 * y[0] + 0.7 * p[0], 0.8 * y[1] + 0.2 * p[1]])
    sharp = mixed.pow(2) / mixed.pow(2).sum(1, keepdim=True)  # temperature 0.5
    assert torch.allclose(mixmatch.co_refine(y, w, p, 0.5), sharp)
    guesses = [torch.softmax(torch.randn(4, 3), 1) for _ in range(4)]
    mean = sum(guesses) / 4
    assert torch.allclose(mixmatch.co_guess(guesses, 0.5), mean.pow(2) / mean.pow(2).sum(1, keepdim=True))


# --- co-divide ----------------------------------------------------------------------------------------------------------


def test_each_network_learns_from_the_division_of_the_other(tmp_path, monkeypatch):
    ctx, made = dividemix_ctx(tmp_path)
    divisions = watch_divisions(ctx)
    events: list[tuple] = []
    watch_train_one(monkeypatch, events)
    refined: list[tuple[int, torch.Tensor]] = []
    real_refine = dm.co_refine

    def refine_spy(y: torch.Tensor, w: torch.Tensor, p: torch.Tensor, temperature: float) -> torch.Tensor:
        refined.append((len(events), w.clone()))
        return real_refine(y, w, p, temperature)

    monkeypatch.setattr(dm, "co_refine", refine_spy)
    fit(ctx)
    assert len(events) == 2 * (EPOCHS - WARMUP)
    for k, (_, net, peer, labeled, peer_prob) in enumerate(events):
        epoch = WARMUP + k // 2
        own, other = ("net1", "net2") if net is made[0] else ("net2", "net1")
        assert peer is made[1] if net is made[0] else peer is made[0]
        assert not torch.equal(divisions[epoch, own], divisions[epoch, other])  # the two divisions differ
        mask = torch.zeros(len(ctx.noisy_labels), dtype=torch.bool)
        mask[labeled] = True
        assert torch.equal(mask, divisions[epoch, other])  # labelled = the PEER's division
        # the clean probabilities that weight the refined labels are the peer's, over the peer's labelled set
        used = torch.cat([w for at, w in refined if at == k + 1])
        expected = peer_prob[labeled].float()
        assert len(expected) - ctx.hparams["batch_size"] < len(used) <= len(expected)
        assert Counter(used.tolist()) <= Counter(expected.tolist())


# --- the unlabelled loss and its ramp --------------------------------------------------------------------------------


def recording_scaler(log: list[tuple[str, Any]]) -> type[torch.amp.GradScaler]:
    """A GradScaler class that appends ("step", loss) to `log` for every loss handed to `scale`: the exact total
    each optimiser step of the plugin minimises."""

    class RecordingScaler(torch.amp.GradScaler):
        def scale(self, outputs):  # type: ignore[override]
            log.append(("step", float(outputs.detach())))
            return super().scale(outputs)

    return RecordingScaler


def mark_semi_supervised_epochs(monkeypatch, log: list[tuple[str, Any]]) -> None:
    """Append ("train", k) to `log` as the k-th call of `_train_one` (one network's semi-supervised epoch) starts."""
    original = dm.DivideMix._train_one
    calls = [0]

    def marked(*args):
        log.append(("train", calls[0]))
        calls[0] += 1
        return original(*args)

    monkeypatch.setattr(dm.DivideMix, "_train_one", staticmethod(marked))


def test_unlabelled_loss_enters_with_its_linearly_ramped_weight(tmp_path, monkeypatch):
    ctx, _ = dividemix_ctx(tmp_path)
    log: list[tuple[str, Any]] = []
    monkeypatch.setattr(torch.amp, "GradScaler", recording_scaler(log))
    mark_semi_supervised_epochs(monkeypatch, log)
    real_semi, real_penalty = dm.semi_loss, dm.uniform_prior_penalty

    def semi_spy(*args):
        lx, lu = real_semi(*args)
        log.append(("semi", (float(lx.detach()), float(lu.detach()))))
        return lx, lu

    def penalty_spy(logits: torch.Tensor) -> torch.Tensor:
        out = real_penalty(logits)
        log.append(("penalty", float(out.detach())))
        return out

    monkeypatch.setattr(dm, "semi_loss", semi_spy)
    monkeypatch.setattr(dm, "uniform_prior_penalty", penalty_spy)
    fit(ctx)

    lambda_u = ctx.hparams["lambda_u"]
    steps: dict[int, list[tuple[float, float, float, float]]] = {}
    call, semi, penalty = -1, None, None
    for kind, value in log:
        if kind == "train":
            call = value
            steps[call] = []
        elif kind == "semi":
            semi = value
        elif kind == "penalty":
            penalty = value
        elif call >= 0:  # an optimiser step of the semi-supervised phase (warm-up steps come before any call)
            assert semi is not None and penalty is not None  # both terms computed for this very step
            steps[call].append((semi[0], semi[1], penalty, value))
            semi, penalty = None, None
    assert sorted(steps) == list(range(2 * (EPOCHS - WARMUP)))
    contributions = []
    for call, rows in steps.items():
        epoch = WARMUP + call // 2  # the official absolute epoch of this network's pass
        assert rows
        for i, (lx, lu, pen, total) in enumerate(rows):
            ramp = lambda_u * min(max((epoch + i / len(rows) - WARMUP) / RAMPUP, 0.0), 1.0)
            assert total == pytest.approx(lx + ramp * lu + pen, rel=1e-5, abs=1e-6), (epoch, i)
            assert lu >= 0.0
            contributions.append((ramp, ramp * lu))
    ramps = [r for r, _ in contributions]
    assert ramps[0] == 0.0 and ramps[-1] == lambda_u  # starts at zero after warm-up, saturates within the run
    assert any(0.0 < r < lambda_u for r in ramps)  # ... and rises linearly in between
    assert max(c for _, c in contributions) > 1e-3  # the unlabelled term does weigh in


def test_a_zero_lambda_u_changes_training(tmp_path):
    def final_logits(name: str, lambda_u: float) -> torch.Tensor:
        ctx, _ = dividemix_ctx(tmp_path / name, lambda_u=lambda_u)
        out = fit(ctx)
        with torch.no_grad():
            return out.predict(ctx.test.batch(torch.arange(len(ctx.test_labels)))).float()

    with_u = final_logits("a", 25.0)
    assert torch.equal(with_u, final_logits("b", 25.0))  # deterministic, so any difference is lambda_u's
    assert not torch.allclose(with_u, final_logits("c", 0.0), atol=1e-4)


# --- warm-up confidence penalty ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("noise, penalised", [("asym", True), ("pairflip", True), ("sym", False)])
def test_negative_entropy_penalty_in_warmup_for_asymmetric_noise(tmp_path, monkeypatch, noise, penalised):
    ctx, _ = dividemix_ctx(tmp_path, noise=noise)
    assert ctx.hparams["conf_penalty"] is penalised  # the per-noise override of the official code
    log: list[tuple[str, Any]] = []
    monkeypatch.setattr(torch.amp, "GradScaler", recording_scaler(log))
    mark_semi_supervised_epochs(monkeypatch, log)
    real_ne = dm.negative_entropy

    def ne_spy(logits: torch.Tensor) -> torch.Tensor:
        out = real_ne(logits)
        log.append(("negent", float(out.detach())))
        return out

    def ce_spy(*args, **kwargs) -> torch.Tensor:
        out = F.cross_entropy(*args, **kwargs)
        if out.dim() == 0:
            log.append(("ce", float(out.detach())))
        return out

    monkeypatch.setattr(dm, "negative_entropy", ne_spy)
    monkeypatch.setattr(dm, "F", types.SimpleNamespace(**{**vars(F), "cross_entropy": ce_spy}))
    fit(ctx)

    warmup = log[: next(i for i, (kind, _) in enumerate(log) if kind == "train")]
    steps, ce, ne = 0, None, None
    for kind, value in warmup:
        if kind == "ce":
            ce, ne = value, None
        elif kind == "negent":
            ne = value
        elif kind == "step":
            steps += 1
            assert ce is not None
            if penalised:
                assert ne is not None and ne < 0  # sum p log p of a non-degenerate prediction
                assert value == pytest.approx(ce + ne, rel=1e-5)  # the loss minimised is CE + sum p log p
            else:
                assert ne is None and value == pytest.approx(ce, rel=1e-6)
            ce, ne = None, None
    assert steps > 0
