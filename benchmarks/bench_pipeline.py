"""The input pipeline alone against the model's training step: images per second of each, on this CPU.

Pipeline: what `ImageBatcher.batch` does for every training batch (gather the uint8 images, pad-4 crop + flip,
resize, normalise, channels_last); for in-memory sets (CIFAR) decoding happens once, at load, and is reported as
its own rate; for a set decoded on access (JPEG bytes here, as files would be), decoding is inside every batch.
Model: `training.train_steps` (forward, loss, backward, SGD step) of lnlbench's default backbone on the same batches.
Target: pipeline >= 3x model. On CPU both share the same cores one after the other, so model / pipeline is the
share of each step the pipeline takes. The GPU figures come from benchmarks/gpu_check.py.

Run: pytest benchmarks/bench_pipeline.py --benchmark-only
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence

import benchkit
import numpy as np
import torch
from PIL import Image

from lnlbench import engine
from lnlbench.data.base import load_dataset
from lnlbench.training import optim_from, train_steps

N_TRAIN, N_TEST = 256, 64
BATCH = 64
SIZES = (32, 64)
MODEL_STEPS = 4  # timed optimiser steps per size, after one warm-up step
PIPELINE_PASSES = 4  # passes over the N_TRAIN images
JPEG_ARCHIVE = benchkit.REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


class JpegBytes(Sequence[torch.Tensor]):
    """Encoded images held in memory, decoded (Pillow) on every access: item i is a 3 x H x W uint8 tensor."""

    def __init__(self, blobs: list[bytes]) -> None:
        self.blobs = blobs

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i):  # type: ignore[override]
        with Image.open(io.BytesIO(self.blobs[i])) as im:
            return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous()


def read_jpegs(n: int) -> list[bytes]:
    """The first `n` training JPEGs of ../shared/data/cifar10-jpeg.tar.gz, as bytes."""
    out: list[bytes] = []
    with tarfile.open(JPEG_ARCHIVE) as tar:
        for member in tar:
            if member.isfile() and member.name.startswith("train/") and member.name.endswith(".jpg"):
                out.append(tar.extractfile(member).read())  # type: ignore[union-attr]
                if len(out) == n:
                    break
    return out


def batches(n: int) -> list[torch.Tensor]:
    return list(engine.index_batches(torch.arange(n), BATCH, torch.Generator().manual_seed(0), drop_last=True))


def pipeline_rate(batcher: engine.ImageBatcher) -> float:
    """Images per second of `batcher.batch` with augmentation, over PIPELINE_PASSES passes."""
    aug = torch.Generator().manual_seed(1)
    idx = batches(len(batcher))
    batcher.batch(idx[0], aug)  # warm-up
    _, seconds = benchkit.timed(lambda: [batcher.batch(i, aug) for _ in range(PIPELINE_PASSES) for i in idx])
    return PIPELINE_PASSES * sum(len(i) for i in idx) / seconds


def model_rate(ctx) -> float:
    """Images per second of lnlbench's fine-tuning step on the same batches."""
    model = ctx.make_model().train()
    settings = optim_from(ctx.hparams)
    opt, sched = settings.build(model.parameters(), MODEL_STEPS + 1)
    scaler = torch.amp.GradScaler(enabled=False)
    idx = batches(len(ctx.noisy_labels))
    args = (ctx.noisy_labels, opt, sched, scaler, ctx.precision, torch.Generator().manual_seed(2))
    train_steps(model, ctx.train, idx[:1], *args)  # warm-up
    steps = [idx[i % len(idx)] for i in range(MODEL_STEPS)]
    (total, seen), seconds = benchkit.timed(lambda: train_steps(model, ctx.train, steps, *args))
    float(total)  # the result exists (CPU: nothing is pending)
    return seen / seconds


def test_pipeline_vs_model(benchmark, tmp_path, figures):
    results: dict[str, dict] = {}

    def measure() -> None:
        for size in SIZES:
            ctx = benchkit.make_context(benchkit.config_for("fft", {"batch_size": BATCH}, N_TRAIN, N_TEST,
                                                            image_size=size), tmp_path / f"s{size}")
            model = model_rate(ctx)
            pipe = pipeline_rate(ctx.train)
            results[f"in-memory uint8, {size} px"] = {"pipeline": pipe, "model": model, "ratio": pipe / model}
            if size == SIZES[0] and JPEG_ARCHIVE.is_file():
                lazy = engine.ImageBatcher(JpegBytes(read_jpegs(N_TRAIN)), ctx.device, size, ctx.spec.mean,
                                           ctx.spec.std, ctx.precision.channels_last)
                pipe = pipeline_rate(lazy)
                results[f"JPEG decoded per batch, {size} px"] = {"pipeline": pipe, "model": model,
                                                                  "ratio": pipe / model}

    benchmark.pedantic(measure, rounds=1, iterations=1)
    data, load_s = benchkit.timed(lambda: load_dataset("cifar10", benchkit.SHARED_CIFAR)) \
        if benchkit.SHARED_CIFAR.is_dir() else (None, 0.0)
    benchmark.extra_info.update(results)
    figures(f"data: {benchkit.source_name()}, batch {BATCH}, {benchkit.BACKBONE}; {benchkit.machine()}")
    for name, r in results.items():
        figures(f"{name}: pipeline {r['pipeline']:,.0f} img/s vs model training step {r['model']:,.1f} img/s "
                f"-> ratio {r['ratio']:,.1f} (target >= 3)")
    if data is not None:
        n = len(data.train) + len(data.test)
        figures(f"decoding cifar10-mini once at load (pickles to uint8): {n / load_s:,.0f} img/s ({n} images)")
    for r in results.values():
        assert r["pipeline"] > 0 and r["model"] > 0
