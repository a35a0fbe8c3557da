"""TURN, co-teaching and DivideMix: the mechanics each paper specifies, on constructed data small enough for a CPU.

Unit tests use a real MethodContext over synthetic images; where a test is about selection rather than backbones,
`make_model` is replaced by a linear model on the flattened pixels (class prototypes make the clean labels
separable), so a few epochs take a fraction of a second. One end-to-end run per method goes through
`lnlbench.harness.execute_run` on the embedded digits with timm's tiny `test_efficientnet` (random weights, 8 px).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lnlbench import engine
from lnlbench.context import MethodContext
from lnlbench.errors import ConfigError, TrainingError
from lnlbench.models import create_backbone
from lnlbench.plugin_manager import method_registry
from lnlbench.harness import execute_run, resolve_config, selection_scorer
from lnlbench.config import RunConfig
from lnlbench_plugins import coteaching as ct
from lnlbench_plugins import dividemix as dm
from lnlbench_plugins import turn

C = 4
SIZE = 8
NOISE = 0.4



# --- constructed data -----------------------------------------------------------------------------------------------


def prototype_images(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images 3 x 8 x 8: one random prototype per class plus small pixel noise (clean labels separable)."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randint(0, 256, (C, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(123)).float()
    labels = torch.arange(C).repeat_interleave(n_per_class)
    images = protos[labels] + 12 * torch.randn(len(labels), 3, SIZE, SIZE, generator=g)
    return images.clamp(0, 255).to(torch.uint8), labels


def symmetric_noise(clean: torch.Tensor, rate: float, seed: int) -> torch.Tensor:
    """Exactly round(rate * N) labels moved to a different class, uniformly."""
    g = torch.Generator().manual_seed(seed)
    noisy = clean.clone()
    flip = torch.randperm(len(clean), generator=g)[: round(rate * len(clean))]
    noisy[flip] = (clean[flip] + torch.randint(1, C, (len(flip),), generator=g)) % C
    return noisy


def make_ctx(tmp_path, method: str, hparams: dict | None = None, n_per_class: int = 50, noise: str = "sym",
             rate: float = NOISE, backbone: str = "test_efficientnet") -> tuple[MethodContext, torch.Tensor]:
    """A real MethodContext over prototype images with 40% symmetric noise; returns it and the clean labels."""
    cls = method_registry().get(method)
    hp = cls.resolve_hparams("synthetic", noise, rate, hparams)
    images, clean = prototype_images(n_per_class, seed=1)
    test_images, test_labels = prototype_images(10, seed=2)
    noisy = symmetric_noise(clean, rate, seed=3)
    config = RunConfig(dataset="synthetic", noise=noise, rate=rate, method=method, hparams=hp, image_size=SIZE,
                       backbone=backbone, weights="random")
    dev = torch.device("cpu")
    precision = engine.default_precision(dev)
    _, spec = create_backbone(backbone, "random", C)

    def batcher(x: torch.Tensor) -> engine.ImageBatcher:
        return engine.ImageBatcher(x, dev, SIZE, spec.mean, spec.std, precision.channels_last)

    ctx = MethodContext(
        config=config, hparams=hp, num_classes=C, noisy_labels=noisy, train=batcher(images), test=batcher(test_images),
        test_labels=test_labels, spec=spec, device=dev, precision=precision, timer=engine.PhaseTimer(dev),
        checkpoint_dir=tmp_path / "checkpoints", cache_dir=None, feature_key={"test": method},
        score_selection=selection_scorer(noisy == clean), verbose=False,
    )
    return ctx, clean


def linear_models(ctx: MethodContext) -> None:
    """Replace the backbone factory by a linear classifier on the flattened pixels (seeded per index)."""

    def make(index: int = 0) -> torch.nn.Module:
        torch.manual_seed(100 + index)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * SIZE * SIZE, C))

    ctx.make_model = make  # type: ignore[method-assign]


def final_precision(ctx: MethodContext, network: str = "net1") -> float:
    return ctx.selections[network]["final"]["precision"]


# --- shared selection machinery ---------------------------------------------------------------------------------------


def test_gmm_split_picks_the_low_loss_mode():
    from lnlbench.sample_selection import gmm_clean_posterior

    g = torch.Generator().manual_seed(0)
    low = 0.1 + 0.02 * torch.randn(70, generator=g)
    high = 0.8 + 0.05 * torch.randn(30, generator=g)
    losses = torch.cat([high[:10], low, high[10:]])  # clean samples in the middle: order must not matter
    fit = gmm_clean_posterior(losses, seed=0)
    truth = torch.zeros(100, dtype=torch.bool)
    truth[10:80] = True
    assert torch.equal(fit.clean_prob > 0.5, truth)
    assert fit.means[0] < fit.means[1]
    assert fit.weights[0] == pytest.approx(0.7, abs=0.02)


def test_gmm_non_convergence_is_recorded_not_raised():
    from lnlbench.sample_selection import gmm_clean_posterior

    g = torch.Generator().manual_seed(0)
    losses = torch.cat([torch.rand(50, generator=g), 0.5 + torch.rand(50, generator=g)])
    fit = gmm_clean_posterior(losses, max_iter=1, tol=1e-12, seed=0)
    assert fit.converged is False
    assert any("ConvergenceWarning" in w for w in fit.warnings)
    assert fit.as_record()["converged"] is False
    one = gmm_clean_posterior(torch.tensor([0.3]))
    assert one.clean_prob.tolist() == [1.0] and one.note


def test_normalisation_scopes():
    from lnlbench.sample_selection import normalize_losses

    losses = torch.tensor([1.0, 3.0, 10.0, 20.0, 5.0])
    labels = torch.tensor([0, 0, 1, 1, 1])
    assert normalize_losses(losses, labels, "class-minmax").tolist() == [0.0, 1.0, 1 / 3, 1.0, 0.0]
    assert normalize_losses(losses, labels, "global-minmax").tolist() == pytest.approx([0, 2 / 19, 9 / 19, 1, 4 / 19])
    constant = normalize_losses(torch.full((3,), 2.0), torch.zeros(3, dtype=torch.long), "class-minmax")
    assert constant.tolist() == [0, 0, 0]
    with pytest.raises(ConfigError, match="class-minmax"):
        normalize_losses(losses, labels, "zscore")


def test_class_balanced_selection_on_a_constructed_table():
    from lnlbench.sample_selection import class_balanced_selection

    # class 0: 4 clean (0.9, 0.8, 0.7, 0.6); class 1: 2 clean (0.95, 0.55); class 2: 3 clean (0.99, 0.98, 0.51)
    prob = torch.tensor([0.9, 0.1, 0.8, 0.7, 0.6, 0.95, 0.2, 0.55, 0.99, 0.98, 0.51, 0.3])
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    out = class_balanced_selection(prob, labels, 3, threshold=0.5, balance="min")
    assert out.per_class_clean == {0: 4, 1: 2, 2: 3}
    assert out.keep_per_class == 2
    assert torch.nonzero(out.mask).flatten().tolist() == [0, 2, 5, 7, 8, 9]  # two most confident of each class
    assert out.fallback_classes == []
    everything = class_balanced_selection(prob, labels, 3, threshold=0.5, balance="none")
    assert torch.equal(everything.mask, prob > 0.5)
    strict = class_balanced_selection(prob, labels, 3, threshold=0.9, balance="min")
    assert strict.per_class_clean == {0: 0, 1: 1, 2: 2}
    # class 0 has none over 0.9: it keeps its k = 1 most confident (the fallback), class 2 is balanced down to 1
    assert torch.nonzero(strict.mask).flatten().tolist() == [0, 5, 8]
    assert strict.fallback_classes == [0]


def test_class_balanced_selection_when_no_class_has_a_clean_sample():
    from lnlbench.sample_selection import class_balanced_selection

    prob = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.05, 0.15])
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    out = class_balanced_selection(prob, labels, 3, threshold=0.5)  # class 2 has no sample at all
    assert out.keep_per_class == 1  # half the smallest class (2 // 2)
    assert torch.nonzero(out.mask).flatten().tolist() == [3, 5]
    assert out.fallback_classes == [0, 1]
    assert "top half" in out.rule


def test_small_loss_count_and_indices():
    from lnlbench.sample_selection import small_loss_count, small_loss_indices

    assert small_loss_count(128, 0.0) == 128
    assert small_loss_count(128, 0.4) == 76  # int(0.6 * 128), as co-teaching's loss.py
    assert small_loss_count(10, 0.99) == 2  # never fewer than two (batch norm)
    assert small_loss_indices(torch.tensor([0.5, 0.1, 0.9, 0.2]), 2).tolist() == [1, 3]


def test_mixmatch_pieces():
    from lnlbench import mixmatch

    p = torch.tensor([[0.6, 0.3, 0.1]])
    s = mixmatch.sharpen(p, 0.5)
    assert s.sum().item() == pytest.approx(1.0) and s[0, 0] > p[0, 0]
    y = torch.tensor([[0.0, 1.0, 0.0]])
    assert torch.allclose(mixmatch.co_refine(y, torch.tensor([1.0]), p, 0.5), y)
    assert torch.allclose(mixmatch.co_refine(y, torch.tensor([0.0]), p, 0.5), s)
    torch.manual_seed(0)
    for _ in range(20):
        x, t, lam = mixmatch.mix(torch.randn(6, 2), torch.softmax(torch.randn(6, 3), 1), 4.0)
        assert 0.5 <= lam <= 1.0
        assert torch.allclose(t.sum(1), torch.ones(6))
    assert mixmatch.linear_rampup(10.0, 10, 16, 25.0) == 0.0
    assert mixmatch.linear_rampup(18.0, 10, 16, 25.0) == pytest.approx(12.5)
    assert mixmatch.linear_rampup(40.0, 10, 16, 25.0) == 25.0
    assert mixmatch.uniform_prior_penalty(torch.zeros(5, 3)).item() == pytest.approx(0.0, abs=1e-7)
    assert mixmatch.uniform_prior_penalty(torch.tensor([[9.0, 0.0, 0.0]] * 4)).item() > 0.5


# --- hyperparameters and bad input --------------------------------------------------------------------------------


def test_forget_rate_schedule():
    assert [ct.forget_rate_at(t, 0.5, 4) for t in range(6)] == [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]
    assert ct.scaled_num_gradual(200) == 10  # the official setting
    assert ct.scaled_num_gradual(100) == 5
    assert ct.scaled_num_gradual(10) == 1  # at least one epoch
    assert ct.expected_noise_fraction("sym", 0.5, 10) == 0.5
    assert ct.expected_noise_fraction("sym-dividemix", 0.5, 10) == pytest.approx(0.45)


@pytest.mark.parametrize(
    "method, hparams, rate, match",
    [
        ("coteaching", {"forget_rate": 1.0}, 0.4, "forget_rate"),
        ("coteaching", {"tau_source": "given"}, 1.0, "forget every sample"),
        ("coteaching", {}, 1.0, "forget every sample"),
        ("dividemix", {"p_threshold": 1.0}, 0.4, "p_threshold"),
        ("dividemix", {"p_threshold": 0.0}, 0.4, "p_threshold"),
        ("dividemix", {"epochs": 3, "warmup_epochs": 3}, 0.4, "warmup_epochs"),
        ("turn", {"threshold": 1.0}, 0.4, "threshold"),
        ("turn", {"balance": "max"}, 0.4, "balance"),
    ],
)
def test_unusable_hyperparameters_are_config_errors(method, hparams, rate, match):
    with pytest.raises(ConfigError, match=match):
        method_registry().get(method).resolve_hparams("cifar10", "sym", rate, hparams)


def test_dividemix_per_setting_overrides_follow_the_official_table():
    cls = method_registry().get("dividemix")
    assert cls.resolve_hparams("cifar10", "sym", 0.2)["lambda_u"] == 0.0
    assert cls.resolve_hparams("cifar10", "sym", 0.5)["lambda_u"] == 25.0
    assert cls.resolve_hparams("cifar10", "asym", 0.4)["lambda_u"] == 0.0
    assert cls.resolve_hparams("cifar10", "asym", 0.4)["conf_penalty"] is True
    assert cls.resolve_hparams("cifar100", "sym", 0.5)["lambda_u"] == 150.0
    high = cls.resolve_hparams("cifar10", "sym", 0.9)
    assert (high["lambda_u"], high["p_threshold"], high["loss_window"]) == (50.0, 0.6, 5)
    assert cls.resolve_hparams("digits", "sym", 0.5)["lambda_u"] == 25.0  # argparse default elsewhere
    assert dm.scaled_warmup("cifar10", 300) == 10 and dm.scaled_warmup("cifar100", 300) == 30
    assert dm.scaled_warmup("cifar10", 10) == 1 and dm.scaled_warmup("cifar10", 2) == 1


# --- TURN ---------------------------------------------------------------------------------------------------------


def test_turn_step1_leaves_the_backbone_bit_identical(tmp_path):
    ctx, _ = make_ctx(tmp_path, "turn", {"lp_epochs": 3, "lp_lr": 0.05}, n_per_class=10)
    model = ctx.make_model(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_feats, test_feats = ctx.features("train"), ctx.features("test")
    head, losses = turn.step1_linear_probe(ctx, model, train_feats, test_feats)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k  # backbone, buffers and the model's own head untouched
    assert not torch.equal(head.weight, before["classifier.weight"])  # ... while the probe did train
    assert losses.shape == (len(ctx.noisy_labels),) and torch.isfinite(losses).all()


def test_turn_selection_beats_the_clean_rate_on_separable_features(tmp_path):
    ctx, clean = make_ctx(tmp_path, "turn", {"lp_epochs": 30, "lp_lr": 0.01}, n_per_class=100)
    g = torch.Generator().manual_seed(0)
    centers = 3 * torch.randn(C, ctx.spec.num_features, generator=g)
    feats = centers[clean] + torch.randn(len(clean), ctx.spec.num_features, generator=g)
    ctx.features = lambda split: feats if split == "train" else feats[:40]  # type: ignore[method-assign]
    ctx.test_labels = clean[:40]
    head, losses = turn.step1_linear_probe(ctx, ctx.make_model(0), feats, feats[:40])
    mask, diag = turn.step2_select(ctx, losses)
    scores = ctx.record_selection(mask, None, "net1")
    assert scores["precision"] > 1 - NOISE + 0.2
    kept = diag["selection_rule"]["per_class_kept"]
    assert len(set(kept.values())) == 1  # class-balanced
    assert diag["gmm"]["fits"] == C


# --- co-teaching --------------------------------------------------------------------------------------------------


class Spy(torch.nn.Module):
    """A linear model on x[:, 1:] that records the sample ids (x[:, 0]) of every forward run with gradients."""

    def __init__(self, d: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.lin = torch.nn.Linear(d, C)
        self.trained_on: list[list[int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self.trained_on.append(x[:, 0].long().tolist())
        return self.lin(x[:, 1:])


@pytest.mark.parametrize("shared", [False, True])
def test_coteaching_peers_train_on_each_others_selection(shared):
    import contextlib

    g = torch.Generator().manual_seed(0)
    n, d = 64, 5
    data = torch.cat([torch.arange(n).float()[:, None], torch.randn(n, d, generator=g)], 1)
    labels = torch.randint(0, C, (n,), generator=g)
    nets = (Spy(d, 1), Spy(d, 2))
    opts = tuple(torch.optim.SGD(m.parameters(), lr=0.1) for m in nets)
    b1 = torch.randperm(n, generator=g)[:20]
    b2 = b1 if shared else torch.randperm(n, generator=g)[:20]
    rate, keep = 0.4, 12  # int(0.6 * 20)
    before = [copy.deepcopy(m) for m in nets]
    with torch.no_grad():
        own_pick = [b[torch.argsort(F.cross_entropy(m(data[b]), labels[b], reduction="none"))[:keep]]
                    for m, b in zip(before, (b2, b1))]  # net 1 ranks net 2's batch, net 2 ranks net 1's
    (by1, by2), (loss1, loss2) = ct.coteaching_step(
        nets, opts, (b1, b2), (data[b1], data[b2]), labels, rate, contextlib.nullcontext, shared=shared
    )
    assert set(by1.tolist()) == set(own_pick[0].tolist())
    assert set(by2.tolist()) == set(own_pick[1].tolist())
    assert set(by1.tolist()) != set(by2.tolist())  # the exchange is visible: the two picks differ
    # each network's loss is its cross-entropy on the PEER's picks
    with torch.no_grad():
        assert loss1.item() == pytest.approx(F.cross_entropy(before[0](data[by2]), labels[by2]).item(), rel=1e-5)
        assert loss2.item() == pytest.approx(F.cross_entropy(before[1](data[by1]), labels[by1]).item(), rel=1e-5)
    if not shared:  # the gradient forwards saw exactly the peer's picks
        assert set(nets[0].trained_on[-1]) == set(by2.tolist())
        assert set(nets[1].trained_on[-1]) == set(by1.tolist())


@pytest.mark.parametrize("data_order", ["independent", "shared"])
def test_coteaching_selection_beats_the_clean_rate(tmp_path, data_order):
    hp = {"epochs": 4, "num_gradual": 1, "batch_size": 32, "lr": 0.2, "augment": False, "data_order": data_order}
    ctx, _ = make_ctx(tmp_path, "coteaching", hp)
    linear_models(ctx)
    out = method_registry().get("coteaching")().fit(ctx)
    first = ctx.selections["net1"]["by_epoch"][0]
    assert first["fraction"] == pytest.approx(1.0, abs=0.2)  # R(0) = 0: everything (but the dropped tail) kept
    assert final_precision(ctx, "net1") > 1 - NOISE + 0.2
    assert final_precision(ctx, "net2") > 1 - NOISE + 0.2
    assert out.diagnostics["tau"] == NOISE and out.diagnostics["tau_source"] == "given"
    assert [h["forget_rate"] for h in ctx.history] == [0.0, NOISE, NOISE, NOISE]
    assert "test_acc_net2" in ctx.history[-1]


def test_coteaching_estimates_tau_when_asked(tmp_path):
    ctx, clean = make_ctx(tmp_path, "coteaching", {"epochs": 1, "tau_source": "estimated", "augment": False})
    linear_models(ctx)
    g = torch.Generator().manual_seed(0)
    feats = 3 * torch.randn(C, 16, generator=g)[clean] + torch.randn(len(clean), 16, generator=g)
    ctx.features = lambda split: feats  # type: ignore[method-assign]
    ctx.test_labels = clean
    tau, info = ct.resolve_tau(ctx)
    assert info["tau_source"] == "estimated"
    assert abs(tau - NOISE) < 0.15
    assert "estimate" in ctx.timer.seconds


def test_nan_loss_stops_with_the_epoch_named(tmp_path):
    class NaNNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3 * SIZE * SIZE, C)

        def forward(self, x):
            return self.lin(x.flatten(1)) * float("nan")

    for method, hp in (("coteaching", {"epochs": 1, "augment": False}), ("dividemix", {"epochs": 2, "augment": False})):
        ctx, _ = make_ctx(tmp_path / method, method, hp, n_per_class=10)
        ctx.make_model = lambda index=0: NaNNet()  # type: ignore[method-assign]
        with pytest.raises(TrainingError, match="epoch 0"):
            method_registry().get(method)().fit(ctx)


# --- DivideMix ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p_threshold", [0.3, 0.8])
def test_dividemix_split_follows_the_threshold_and_is_exchanged(tmp_path, monkeypatch, p_threshold):
    hp = {"epochs": 2, "warmup_epochs": 1, "batch_size": 32, "augment": False, "p_threshold": p_threshold}
    ctx, _ = make_ctx(tmp_path, "dividemix", hp)
    linear_models(ctx)
    seen: list[dict] = []
    original = dm.DivideMix._train_one

    def spy(ctx_, net, peer, opt, step, labeled, unlabeled, peer_prob, *rest):
        seen.append({"net": net, "peer": peer, "labeled": labeled, "unlabeled": unlabeled, "prob": peer_prob})
        return original(ctx_, net, peer, opt, step, labeled, unlabeled, peer_prob, *rest)

    monkeypatch.setattr(dm.DivideMix, "_train_one", staticmethod(spy))
    recorded: dict[str, torch.Tensor] = {}
    record = ctx.record_selection

    def keep(mask, epoch=None, network="net1"):
        recorded[network] = mask.clone()
        return record(mask, epoch, network)

    ctx.record_selection = keep  # type: ignore[method-assign]
    out = method_registry().get("dividemix")().fit(ctx)
    assert len(seen) == 2
    first, second = seen
    assert first["peer"] is second["net"] and second["peer"] is first["net"]
    for call, division_of in ((first, "net2"), (second, "net1")):
        labeled_mask = torch.zeros(len(ctx.noisy_labels), dtype=torch.bool)
        labeled_mask[call["labeled"]] = True
        assert torch.equal(labeled_mask, call["prob"] > p_threshold)  # the threshold decides the split
        assert torch.equal(labeled_mask, recorded[division_of])  # ... and it is the PEER's division
        assert sorted(call["labeled"].tolist() + call["unlabeled"].tolist()) == list(range(len(ctx.noisy_labels)))
    assert out.diagnostics["warmup_epochs"] == 1
    assert set(ctx.timer.seconds) >= {"warmup", "divide", "train"}


def test_dividemix_selection_beats_the_clean_rate(tmp_path):
    hp = {"epochs": 3, "warmup_epochs": 1, "batch_size": 32, "augment": False}
    ctx, _ = make_ctx(tmp_path, "dividemix", hp)
    linear_models(ctx)
    method_registry().get("dividemix")().fit(ctx)
    assert len(ctx.selections["net1"]["by_epoch"]) == 2  # one division per training epoch
    assert final_precision(ctx, "net1") > 1 - NOISE + 0.2
    assert final_precision(ctx, "net2") > 1 - NOISE + 0.2


# --- end to end through the runner ----------------------------------------------------------------------------------

E2E = {
    "turn": ({"lp_epochs": 2, "ft_epochs": 1, "ft_batch_size": 128},
             {"features", "linear_probe", "select", "finetune"}),
    "coteaching": ({"epochs": 1, "batch_size": 256}, {"train"}),
    "dividemix": ({"epochs": 2, "batch_size": 128}, {"warmup", "divide", "train"}),
    "jocor": ({"epochs": 2, "batch_size": 256}, {"train"}),
    "unicon": ({"epochs": 2, "batch_size": 128}, {"warmup", "select", "train"}),
}


@pytest.mark.parametrize("method", sorted(E2E))
def test_end_to_end_record_on_digits(tmp_path, method):
    hparams, phases = E2E[method]
    cfg = resolve_config(dataset="digits", noise="sym", rate=0.4, method=method, backbone="test_efficientnet",
                         weights="random", image_size=SIZE, hparams=hparams)
    record = execute_run(cfg, tmp_path / "out", cache_dir=tmp_path / "cache", device="cpu", verbose=False)
    assert record["status"] == "done", record.get("error")
    on_disk = json.loads((tmp_path / "out" / cfg.run_id / "result.json").read_text())
    assert on_disk["status"] == "done"
    assert phases <= set(record["cost"]["phases"])
    sel = record["metrics"]["selection"]["net1"]["final"]
    assert {"size", "precision", "recall", "subset_noise_rate"} <= set(sel)
    assert 0 < sel["size"] <= record["n_train"] and 0.0 <= sel["precision"] <= 1.0
    assert np.isfinite(record["metrics"]["test_acc"])
    assert record["hparams"] == cfg.hparams
