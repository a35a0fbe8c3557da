"""TURN's mechanisms on a constructed case: step 3 trains on exactly the selection, from the step-1 head, and the
threshold and balancing rule of step 2 select what the paper says.

A real MethodContext over prototype images (tests/test_methods.py) with timm's tiny random `test_efficientnet`; the
cached backbone features are replaced by class-separable vectors, so step 1 fits in a fraction of a second. The
observations go through the functions the plugin calls (`finetune`, `step1_linear_probe`, the GMM posterior and the
batcher), never through a re-implementation of TURN.
"""

from __future__ import annotations

from typing import Any

import torch

from lnlbench.context import MethodContext
from lnlbench.plugin_manager import method_registry
from lnlbench_plugins import turn
from test_methods import C, make_ctx

STEP1 = {"lp_epochs": 15, "lp_lr": 0.05, "lp_weight_decay": 0.0, "lp_batch_size": 32}
STEP3 = {"ft_epochs": 2, "ft_batch_size": 8, "ft_lr": 0.01, "augment": False}



def separable_features(ctx: MethodContext, clean: torch.Tensor) -> None:
    """Replace the backbone features by class centres plus unit noise (clean classes separable, labels noisy)."""
    g = torch.Generator().manual_seed(0)
    centers = 3 * torch.randn(C, ctx.spec.num_features, generator=g)
    train = centers[clean] + torch.randn(len(clean), ctx.spec.num_features, generator=g)
    test = centers[ctx.test_labels] + torch.randn(len(ctx.test_labels), ctx.spec.num_features, generator=g)
    ctx.features = lambda split: train if split == "train" else test  # type: ignore[method-assign]


def turn_ctx(tmp_path, **hparams: Any) -> tuple[MethodContext, torch.Tensor]:
    """A TURN context over 4 x 15 prototype images with 40% symmetric noise and separable features."""
    ctx, clean = make_ctx(tmp_path, "turn", {**STEP1, **STEP3, **hparams}, n_per_class=15)
    separable_features(ctx, clean)
    return ctx, clean


def record_final_selection(ctx: MethodContext) -> dict[str, torch.Tensor]:
    """Wrap `ctx.record_selection` so the final mask TURN reports is kept (under key "mask")."""
    kept: dict[str, torch.Tensor] = {}
    original = ctx.record_selection

    def record(mask: torch.Tensor, epoch: int | None = None, network: str = "net1") -> dict:
        if epoch is None:
            kept["mask"] = mask.detach().clone().cpu()
        return original(mask, epoch, network)

    ctx.record_selection = record  # type: ignore[method-assign]
    return kept


def test_step3_fine_tunes_on_exactly_the_selected_samples(tmp_path, monkeypatch):
    ctx, _ = turn_ctx(tmp_path)
    selection = record_final_selection(ctx)
    calls: list[torch.Tensor] = []
    real_finetune = turn.finetune

    def finetune_spy(ctx_, phase, model, indices, labels, settings, **kwargs):
        calls.append(indices.clone())
        return real_finetune(ctx_, phase, model, indices, labels, settings, **kwargs)

    monkeypatch.setattr(turn, "finetune", finetune_spy)
    seen: set[int] = set()
    real_batch = ctx.train.batch

    def batch_spy(idx: torch.Tensor, aug: torch.Generator | None = None) -> torch.Tensor:
        seen.update(idx.tolist())  # features are replaced, so only step 3 asks the batcher for training images
        return real_batch(idx, aug)

    ctx.train.batch = batch_spy  # type: ignore[method-assign]
    out = method_registry().get("turn")().fit(ctx)

    mask = selection["mask"]
    selected = torch.nonzero(mask).flatten()
    assert 0 < len(selected) < len(mask)  # the selection leaves samples out, so "the rest" exists
    assert len(calls) == 1
    assert sorted(calls[0].tolist()) == selected.tolist()  # exactly the selection, nothing else
    assert seen, "step 3 never asked for a training image"
    assert seen <= set(selected.tolist())  # no image outside the selection reached the fine-tuning
    assert len(seen) >= len(selected) - STEP3["ft_batch_size"]  # ... and (up to a dropped tail) all of it did
    assert out.diagnostics["finetune_subset_size"] == len(selected)


def test_step3_starts_from_the_step1_head_and_the_pretrained_backbone(tmp_path, monkeypatch):
    ctx, _ = turn_ctx(tmp_path)
    heads: list[torch.nn.Linear] = []
    real_step1 = turn.step1_linear_probe

    def step1_spy(*args, **kwargs):
        head, losses = real_step1(*args, **kwargs)
        heads.append(head)
        return head, losses

    at_start: list[dict[str, torch.Tensor]] = []

    def finetune_stub(ctx_, phase, model, indices, labels, settings, **kwargs):
        at_start.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(turn, "step1_linear_probe", step1_spy)
    monkeypatch.setattr(turn, "finetune", finetune_stub)
    method_registry().get("turn")().fit(ctx)

    assert len(heads) == 1 and len(at_start) == 1
    state = at_start[0]
    head = heads[0]
    fresh = ctx.make_model(0).state_dict()  # what make_model gives: pre-trained backbone, a fresh head
    head_keys = {"classifier.weight", "classifier.bias"}
    assert torch.equal(state["classifier.weight"], head.weight.detach())
    assert torch.equal(state["classifier.bias"], head.bias.detach())
    assert not torch.equal(state["classifier.weight"], fresh["classifier.weight"])  # the probe did move the head
    for key in fresh.keys() - head_keys:
        assert torch.equal(state[key], fresh[key]), key  # the backbone is the pre-trained one, untouched by step 1


def balanced_reference(prob: torch.Tensor, labels: torch.Tensor, threshold: float, balance: str) -> torch.Tensor:
    """The paper's step-2 rule written out: posterior over the threshold; with "min" every class keeps as many of its
    most confident samples as the smallest clean count (every class here has at least one clean sample)."""
    clean = prob > threshold
    if balance == "none":
        return clean
    k = min(int(clean[labels == c].sum()) for c in range(C))
    out = torch.zeros_like(clean)
    for c in range(C):
        members = torch.nonzero(labels == c).flatten()
        out[members[torch.argsort(prob[members], descending=True)[:k]]] = True
    return out


def test_threshold_and_balance_rule_decide_the_selection(tmp_path, monkeypatch):
    ctx, _ = turn_ctx(tmp_path)
    labels = ctx.noisy_labels
    g = torch.Generator().manual_seed(5)
    prob = torch.rand(len(labels), generator=g, dtype=torch.float64)
    prob[torch.nonzero(labels == 0).flatten()[:2]] = 0.5  # exactly at the threshold: not "over" it
    prob[torch.nonzero(labels == 1).flatten()[0]] = 0.95  # so that every class has a sample over 0.7
    losses = torch.rand(len(labels), generator=g)
    fitted: list[tuple[torch.Tensor, torch.Tensor]] = []

    def posterior_stub(losses_, labels_, num_classes, **kwargs):
        fitted.append((losses_, labels_))
        return prob.clone(), {}

    monkeypatch.setattr(turn, "classwise_clean_posterior", posterior_stub)
    masks = {}
    for threshold in (0.5, 0.7):
        for balance in ("min", "none"):
            ctx.hparams = {**ctx.hparams, "threshold": threshold, "balance": balance}
            mask, diag = turn.step2_select(ctx, losses)
            expected = balanced_reference(prob, labels, threshold, balance)
            assert torch.equal(mask, expected), (threshold, balance)
            if balance == "min":
                kept = diag["selection_rule"]["per_class_kept"]
                assert len(set(kept.values())) == 1  # balanced
            masks[threshold, balance] = mask
    assert all(l is losses and torch.equal(y, labels) for l, y in fitted)  # the GMM saw the step-1 losses
    assert len({tuple(m.tolist()) for m in masks.values()}) == 4  # each setting changes the selection
    assert masks[0.7, "none"].sum() < masks[0.5, "none"].sum()
    assert masks[0.5, "min"].sum() < masks[0.5, "none"].sum()


def test_step1_probes_with_the_robust_loss(tmp_path, monkeypatch):
    ctx, _ = turn_ctx(tmp_path)
    assert ctx.hparams["loss"] == "gce" and ctx.hparams["gce_q"] == 0.7  # the TURN paper's step 1: GCE, q = 0.7
    used: list[tuple[str, float]] = []
    real_probe = turn.probe_losses

    def probe_spy(ctx_, phase, head, train_feats, test_feats, settings, loss="gce", gce_q=0.7):
        used.append((loss, gce_q))
        return real_probe(ctx_, phase, head, train_feats, test_feats, settings, loss, gce_q)

    monkeypatch.setattr(turn, "probe_losses", probe_spy)
    model = ctx.make_model(0)
    turn.step1_linear_probe(ctx, model, ctx.features("train"), ctx.features("test"))
    assert used == [("gce", 0.7)]
