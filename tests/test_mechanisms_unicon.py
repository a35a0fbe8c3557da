"""UNICON's mechanisms (Karim et al., CVPR 2022; official Train_cifar.py, dataloader_cifar.py, Contrastive_loss.py).

The pure pieces against independent references (the divergence, the selection ratio, the class-balanced uniform
selection, the refinement weights, the SimCLR loss), then the plugin on a real MethodContext (tests/test_methods.py's
prototype images, the tiny timm backbone at 8 px): each network's labelled set is class-balanced by noisy label, the
unlabelled batch is sized from the selection ratio, MixMatch mixes the strong views, and the contrastive loss of the
unlabelled strong views enters the step with weight lambda_c.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from lnlbench.plugin_manager import method_registry
from lnlbench_plugins import unicon as uc
from test_methods import C, make_ctx

BASE = {"epochs": 3, "warmup_epochs": 1, "batch_size": 8, "lr": 0.05}


def unicon_ctx(tmp_path, **hparams):
    ctx, clean = make_ctx(tmp_path, "unicon", {**BASE, **hparams}, n_per_class=20)
    return ctx, clean


# --- the pure pieces ----------------------------------------------------------------------------------------------


def test_jsd_matches_the_definition_and_is_bounded_by_ln2():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(6, 4, generator=g), 1)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    got = uc.jsd_to_labels(probs, labels)
    for p, y, d in zip(probs, labels, got):
        q = F.one_hot(y, 4).float()
        m = (p + q) / 2
        ref = 0.5 * sum(a * math.log((a + 1e-10) / (b + 1e-10)) for a, b in zip(p.tolist(), m.tolist())) + 0.5 * sum(
            a * math.log((a + 1e-10) / (b + 1e-10)) for a, b in zip(q.tolist(), m.tolist()))
        assert float(d) == pytest.approx(ref, abs=1e-6)
    confident_right = uc.jsd_to_labels(torch.tensor([[1.0, 0, 0]]), torch.tensor([0]))
    confident_wrong = uc.jsd_to_labels(torch.tensor([[0.0, 1.0, 0]]), torch.tensor([0]))
    assert float(confident_right) == pytest.approx(0.0, abs=1e-6)
    assert float(confident_wrong) == pytest.approx(math.log(2), abs=1e-6)


def test_selection_ratio_is_the_fraction_below_the_mean_and_tau_lowers_a_high_mean():
    jsd = torch.tensor([0.1, 0.2, 0.3, 0.6, 0.65])  # mean 0.37
    ratio, threshold = uc.selection_ratio(jsd, d_u=0.7, tau=5.0)
    assert threshold == pytest.approx(0.37) and ratio == pytest.approx(3 / 5)
    ratio, threshold = uc.selection_ratio(jsd, d_u=0.3, tau=2.0)  # mean above d_u: lowered by (mean - min) / tau
    assert threshold == pytest.approx(0.37 - (0.37 - 0.1) / 2) and ratio == pytest.approx(2 / 5)


def test_uniform_selection_takes_the_same_number_of_lowest_divergence_samples_from_every_class():
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 2)
    # class 0 has by far the lowest divergences: a global cut would take mostly class 0
    jsd = torch.tensor([0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.5, 0.3, 0.6, 0.2, 0.4, 0.1, 0.69, 0.68])
    picked = uc.uniform_selection(jsd, labels, ratio=0.65, num_classes=3)  # int(0.65 * 14 / 3) = 3 per class
    assert picked.tolist() == sorted([0, 1, 2] + [11, 9, 7] + [12, 13])  # class 2 has only 2: all of it
    assert uc.uniform_selection(jsd, labels, ratio=0.0, num_classes=3).numel() == 0


def test_refinement_weight_is_one_below_half_and_one_minus_jsd_above():
    w = uc.refinement_weights(torch.tensor([0.0, 0.49, 0.5, 0.69]))
    assert torch.allclose(w, torch.tensor([1.0, 1.0, 0.5, 0.31]))


def reference_supcon(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """Contrastive_loss.py's SupConLoss without labels, written out: every anchor against all other views."""
    feats = torch.cat([z1, z2])
    n = len(feats)
    b = len(z1)
    total = 0.0
    for i in range(n):
        logits = [float(feats[i] @ feats[j]) / t for j in range(n)]
        top = max(logits)
        denom = sum(math.exp(logits[j] - top) for j in range(n) if j != i)
        pos = (i + b) % n
        total += -((logits[pos] - top) - math.log(denom))
    return total / n


def test_simclr_loss_is_supcon_without_labels():
    g = torch.Generator().manual_seed(3)
    z1 = F.normalize(torch.randn(5, 16, generator=g), dim=1)
    z2 = F.normalize(torch.randn(5, 16, generator=g), dim=1)
    for t in (0.05, 0.5):
        assert float(uc.simclr_loss(z1, z2, t)) == pytest.approx(reference_supcon(z1, z2, t), rel=1e-5)
    aligned = float(uc.simclr_loss(z1, z1 + 0.01 * z2, 0.5))
    assert aligned < float(uc.simclr_loss(z1, z2, 0.5))  # views of one sample that agree cost less


def test_unlabeled_batch_and_cosine_follow_the_official_formulas():
    assert uc.unlabeled_batch_size(64, 0.5) == 64 and uc.unlabeled_batch_size(64, 0.25) == 128
    lr, eta = 0.02, 2e-4
    assert uc.cosine_factor(0, 8.0, lr, eta) == pytest.approx(1.0)
    assert uc.cosine_factor(8, 8.0, lr, eta) * lr == pytest.approx(eta)
    assert uc.cosine_factor(9, 8.0, lr, eta) * lr > eta  # CosineAnnealingLR is periodic past T_max
    hp = method_registry().get("unicon").resolve_hparams("cifar10", "sym", 0.5)
    assert uc.scaled_t_max(hp) == pytest.approx(280 / 350 * 10)
    assert (hp["lambda_u"], hp["lambda_c"], hp["temperature"], hp["d_u"], hp["tau"]) == (30.0, 0.025, 0.05, 0.7, 5.0)
    assert method_registry().get("unicon").resolve_hparams("cifar10", "asym", 0.4)["conf_penalty"] is True


# --- the plugin on a real context ------------------------------------------------------------------------------------


def test_each_network_trains_on_a_class_balanced_selection_by_noisy_label(tmp_path):
    ctx, _ = unicon_ctx(tmp_path)
    out = method_registry().get("unicon")().fit(ctx)
    noisy = ctx.noisy_labels
    logged = out.diagnostics["selections"]
    assert [(s["epoch"], s["network"]) for s in logged] == [(1, "net1"), (1, "net2"), (2, "net1"), (2, "net2")]
    for s in logged:
        per_class = int(s["ratio"] * len(noisy) / C)
        assert s["labeled"] == sum(min(per_class, int((noisy == c).sum())) for c in range(C))
        assert s["unlabeled"] == len(noisy) - s["labeled"]
        assert s["unlabeled_batch"] == int(BASE["batch_size"] / (2 * s["ratio"]))
    for network in ("net1", "net2"):
        for entry in ctx.selections[network]["by_epoch"]:
            assert entry["size"] == next(
                s["labeled"] for s in logged if s["epoch"] == entry["epoch"] and s["network"] == network)


def test_selected_sets_are_balanced_when_one_class_is_much_easier(tmp_path, monkeypatch):
    """A global cut by divergence would take the easy class; the uniform selection takes an equal share of each."""
    ctx, _ = unicon_ctx(tmp_path, epochs=2)
    noisy = ctx.noisy_labels
    easy = torch.where(noisy == 0, 0.01, 0.3 + 0.01 * torch.arange(len(noisy)) / len(noisy))
    monkeypatch.setattr(uc.Unicon, "_divergences", staticmethod(lambda ctx_, nets: easy.clone()))
    masks = {}
    original = ctx.record_selection

    def record(mask, epoch=None, network="net1"):
        masks[epoch, network] = mask.clone()
        return original(mask, epoch, network)

    ctx.record_selection = record  # type: ignore[method-assign]
    method_registry().get("unicon")().fit(ctx)
    mask = masks[1, "net1"]
    counts = Counter(noisy[mask].tolist())
    ratio, _ = uc.selection_ratio(easy, 0.7, 5.0)
    share = int(ratio * len(noisy) / C)
    assert share > 0 and all(counts[c] == min(share, int((noisy == c).sum())) for c in range(C)), counts


def test_mixmatch_mixes_strong_views_and_the_step_adds_lambda_c_times_the_contrastive_loss(tmp_path, monkeypatch):
    ctx, _ = unicon_ctx(tmp_path)
    cls = method_registry().get("unicon")
    nets = []
    for i in range(2):
        model = ctx.make_model(i)
        nets.append(uc.ProjectedNet(model, int(model.num_features)))
    hp = ctx.hparams
    marker = 0.123
    mixed_inputs: list[torch.Tensor] = []
    real_strong, real_mix = uc.strong_views, uc.mix

    def strong(ctx_, idx, aug, policy):
        return torch.full_like(real_strong(ctx_, idx, aug, policy), marker)

    def mix_spy(inputs, targets, alpha):
        mixed_inputs.append(inputs.clone())
        return real_mix(inputs, targets, alpha)

    embedded: list[tuple[int, int]] = []

    def contrastive(z1, z2, t):
        embedded.append((len(z1), z1.shape[1]))
        assert t == hp["temperature"]
        return torch.tensor(2.5)

    monkeypatch.setattr(uc, "strong_views", strong)
    monkeypatch.setattr(uc, "mix", mix_spy)
    monkeypatch.setattr(uc, "simclr_loss", contrastive)
    bx, bu = torch.arange(0, 8), torch.arange(40, 52)
    labels, weights = ctx.noisy_labels, torch.ones(len(ctx.noisy_labels))

    def loss_with(lambda_c: float) -> float:
        torch.manual_seed(0)
        for net in nets:
            net.train()
        return float(cls.train_step(ctx, nets[0], nets[1], bx, bu, ctx.rng("t"), None, labels, weights, 1.0,
                                    {**hp, "lambda_c": lambda_c}))

    without, with_c = loss_with(0.0), loss_with(1.0)
    assert with_c - without == pytest.approx(2.5, abs=1e-4)  # lambda_c * contrastive, nothing else changes
    assert embedded and all(e == (len(bu), uc.PROJECTION_DIM) for e in embedded)
    assert mixed_inputs and all(len(x) == 2 * len(bx) + 2 * len(bu) for x in mixed_inputs)
    assert all(torch.all(x == marker) for x in mixed_inputs)  # every mixed input is a strong view


def test_strong_views_apply_the_policy_per_image(tmp_path):
    ctx, _ = unicon_ctx(tmp_path)
    seen: list[tuple[int, ...]] = []

    def policy(image):
        seen.append(tuple(image.shape))
        return 255 - image

    idx = torch.arange(5)
    inverted = uc.strong_views(ctx, idx, None, policy)
    plain = ctx.train.batch(idx)
    assert seen == [(3, 8, 8)] * 5
    assert not torch.allclose(inverted, plain)
