"""TURN's step 1 on cached features against linear probing that runs the frozen backbone every epoch.

Cached (lnlbench): the frozen backbone's features of the training and test images are computed once
(`MethodContext.features`), then TURN's `step1_linear_probe` trains the head on them for E epochs (test accuracy every
epoch) and takes the per-sample losses. Uncached: the same head, optimiser, batch order and loss, but every
mini-batch and every per-epoch test evaluation goes through the frozen backbone again. The ratio uncached / cached
grows with E; the final heads agree to float tolerance (checked), so the cache changes the cost, not the result.
Each figure is the fastest of REPEATS runs.

Run: pytest benchmarks/bench_features.py --benchmark-only
"""

from __future__ import annotations

import math

import benchkit
import torch

from lnlbench import engine
from lnlbench.losses import per_sample_loss
from lnlbench.models import split_backbone_head
from lnlbench.training import optim_from
from lnlbench_plugins.turn import step1_linear_probe

N_TRAIN, N_TEST = 256, 128
EPOCH_COUNTS = (1, 5, 20, 50)  # 50: the `lp` default and TURN's lp_epochs
REPEATS = 2


def cached_step1(ctx) -> tuple[torch.nn.Linear, torch.Tensor]:
    """TURN's step 1 as the method runs it: features once, then the head on them."""
    model = ctx.make_model(0)
    train_feats, test_feats = ctx.features("train"), ctx.features("test")
    return step1_linear_probe(ctx, model, train_feats, test_feats)


def uncached_step1(ctx) -> tuple[torch.nn.Linear, torch.Tensor]:
    """The same training with the frozen backbone run on every batch, every epoch."""
    hp = ctx.hparams
    model = ctx.make_model(0)
    frozen = ctx.make_model(index=-1).eval()  # the backbone `features` uses (eval mode: running BN statistics)
    feature_fn, _ = split_backbone_head(frozen)
    settings = optim_from(hp, "lp_")
    head = torch.nn.Linear(frozen.num_features, ctx.num_classes)
    head.load_state_dict(model.get_classifier().state_dict())
    opt, sched = settings.build(head.parameters(), math.ceil(len(ctx.noisy_labels) / settings.batch_size))

    def features(batcher, idx: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), ctx.precision.autocast(ctx.device):
            return feature_fn(batcher.batch(idx)).float()

    for epoch in range(settings.epochs):
        head.train()
        # the batch order lnlbench's train_linear_head draws for this phase and epoch
        for idx in engine.index_batches(torch.arange(len(ctx.noisy_labels)), settings.batch_size,
                                        ctx.rng("linear_probe", epoch)):
            loss = per_sample_loss(hp["loss"], head(features(ctx.train, idx).clone()), ctx.noisy_labels[idx],
                                   hp["gce_q"]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        head.eval()
        with torch.inference_mode():
            logits = torch.cat([head(features(ctx.test, i)) for i in engine.index_batches(
                torch.arange(len(ctx.test_labels)), 256, None)])
            engine.accuracy(logits, ctx.test_labels)
    with torch.inference_mode():
        logits = torch.cat([head(features(ctx.train, i)) for i in engine.index_batches(
            torch.arange(len(ctx.noisy_labels)), 256, None)])
    return head, engine.per_sample_ce(logits, ctx.noisy_labels)


def test_cached_features_vs_backbone_every_epoch(benchmark, tmp_path, figures):
    results: dict[int, dict] = {}

    def measure() -> None:
        for e in EPOCH_COUNTS:
            config = benchkit.config_for("turn", {"lp_epochs": e}, N_TRAIN, N_TEST)
            t_c = t_u = float("inf")
            for r in range(REPEATS):  # the fastest of REPEATS: other processes only ever add time
                ctx_c = benchkit.make_context(config, tmp_path / f"cached{e}-{r}")
                ctx_u = benchkit.make_context(config, tmp_path / f"uncached{e}-{r}")
                (head_c, loss_c), t = benchkit.timed(lambda: cached_step1(ctx_c))
                t_c = min(t_c, t)
                (head_u, loss_u), t = benchkit.timed(lambda: uncached_step1(ctx_u))
                t_u = min(t_u, t)
            diff = max(float((head_c.weight - head_u.weight).detach().abs().max()), float((loss_c - loss_u).abs().max()))
            results[e] = {"cached_s": t_c, "uncached_s": t_u, "ratio": t_u / t_c, "max_abs_diff": diff}

    benchmark.pedantic(measure, rounds=1, iterations=1)
    # a second call with a disk cache: what every later run of the same backbone and data pays for its features
    config = benchkit.config_for("turn", {"lp_epochs": 1}, N_TRAIN, N_TEST)
    ctx = benchkit.make_context(config, tmp_path / "disk", cache_dir=tmp_path / "cache")
    _, t_first = benchkit.timed(lambda: (ctx.features("train"), ctx.features("test")))
    _, t_hit = benchkit.timed(lambda: (ctx.features("train"), ctx.features("test")))
    benchmark.extra_info.update(by_epochs=results, features_first_s=t_first, features_disk_hit_s=t_hit)

    figures(f"data: {benchkit.source_name()}, {N_TRAIN} train / {N_TEST} test at {benchkit.IMAGE_SIZE} px, "
            f"{benchkit.BACKBONE}; {benchkit.machine()}")
    for e, r in results.items():
        figures(f"TURN step 1, {e:>2} epochs: cached {r['cached_s']:.2f} s vs backbone every epoch "
                f"{r['uncached_s']:.2f} s -> ratio {r['ratio']:.2f} (heads/losses max |diff| {r['max_abs_diff']:.1e})")
    figures(f"features of train+test: computed {t_first:.2f} s, from the disk cache {t_hit:.3f} s")
    for r in results.values():  # the cache must not change the result (tolerance: batch composition, float order)
        assert r["max_abs_diff"] < 1e-3, results
