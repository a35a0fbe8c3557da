"""What the benchmarks share: a tiny real dataset, a method context built as the runner builds it, and timing.

The data is a fixed subset of the CIFAR-10 images kept beside the repository (`../shared/data/cifar10-mini`, see its
README), or of the embedded digits where that folder is absent; the record of every run names which.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lnlbench import engine
from lnlbench.context import MethodContext
from lnlbench.data.base import DATASETS, Dataset, Split, load_dataset, register_dataset
from lnlbench.models import create_backbone
from lnlbench.harness import make_noisy_labels, resolve_config, selection_scorer

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10-mini"
BENCH_DATASET = "bench-subset"
BACKBONE = "tf_efficientnet_lite0"  # lnlbench's default backbone, with its packaged (offline) weights
WEIGHTS = "packaged"
IMAGE_SIZE = 32  # the CPU size of `lnlbench demo`; the GPU figures (gpu_check.py) use 224


def source_name() -> str:
    """Which images the benchmarks use on this machine."""
    return "cifar10-mini (../shared/data)" if SHARED_CIFAR.is_dir() else "digits (embedded; cifar10-mini absent)"


def _subset(split: Split, n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(split), generator=g)[: min(n, len(split))].sort().values
    return Split(images=split.images[pick], labels=split.labels[pick])  # type: ignore[index]


def load_subset(data_root: Path | None = None, download: bool = False, n_train: int = 256, n_test: int = 128) -> Dataset:
    """`n_train` / `n_test` images drawn (seed 0) from cifar10-mini, or from digits where it is absent."""
    full = load_dataset("cifar10", SHARED_CIFAR) if SHARED_CIFAR.is_dir() else load_dataset("digits")
    return Dataset(
        name=f"{BENCH_DATASET}-{full.name}",
        classes=full.classes,
        train=_subset(full.train, int(n_train), 0),
        test=_subset(full.test, int(n_test), 1),
        source=f"{n_train}/{n_test} images of {full.source or full.name}",
    )


if BENCH_DATASET not in DATASETS:
    register_dataset(BENCH_DATASET, "benchmark subset of cifar10-mini (or digits)", needs_data_root=False)(load_subset)


def config_for(method: str, hparams: dict[str, Any], n_train: int, n_test: int, rate: float = 0.4,
               image_size: int = IMAGE_SIZE):
    """A resolved RunConfig of `method` on the benchmark subset (symmetric noise at `rate`)."""
    return resolve_config(
        dataset=BENCH_DATASET, noise="sym", rate=rate, method=method, image_size=image_size, hparams=hparams,
        backbone=BACKBONE, weights=WEIGHTS, dataset_options={"n_train": n_train, "n_test": n_test},
    )


def make_context(config, workdir: Path, device: str = "cpu", cache_dir: Path | None = None) -> MethodContext:
    """The MethodContext `runner.execute_run` would hand the method (same batchers, precision, labels), quiet."""
    dev = engine.select_device(device)
    data = load_dataset(config.dataset, None, **config.dataset_options)
    noisy = make_noisy_labels(config, data, None)
    _, spec = create_backbone(config.backbone, config.weights, data.num_classes)
    precision = engine.default_precision(dev, config.amp, config.compile)

    def batcher(images: Any) -> engine.ImageBatcher:
        return engine.ImageBatcher(images, dev, config.image_size, spec.mean, spec.std, precision.channels_last)

    labels = noisy.labels_tensor().long()
    return MethodContext(
        config=config, hparams=config.hparams, num_classes=data.num_classes, noisy_labels=labels,
        train=batcher(data.train.images), test=batcher(data.test.images), test_labels=data.test.labels,
        spec=spec, device=dev, precision=precision, timer=engine.PhaseTimer(dev),
        checkpoint_dir=workdir / "checkpoints", cache_dir=cache_dir,
        feature_key={"dataset": data.content_sha256(), "backbone": config.backbone, "weights": spec.weights_sha256,
                     "precision": precision.as_record()["precision"]},
        score_selection=selection_scorer(labels == data.train.labels), verbose=False,
    )


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result, seconds) of one call."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def interleaved(candidate: Callable[[], float], baseline: Callable[[], float], rounds: int) -> tuple[list, list]:
    """Seconds of `candidate` and `baseline`, alternated ABBA so drifts in machine load hit both alike."""
    cand, base = [], []
    for r in range(rounds):
        pair = [(cand, candidate), (base, baseline)]
        for out, fn in pair if r % 2 == 0 else reversed(pair):
            out.append(fn())
    return cand, base


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def stolen_s() -> float | None:
    """CPU seconds the hypervisor has taken from this virtual machine since boot, over all its CPUs (the `steal`
    column of /proc/stat); None where it cannot be read. On a shared VM it is what makes identical runs differ."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine() -> str:
    """CPU model, cores and torch threads, for the figures' record."""
    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    return (f"{name}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"OMP_WAIT_POLICY={policy}, load average {os.getloadavg()[0]:.1f}")
