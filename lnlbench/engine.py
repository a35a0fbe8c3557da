"""Training and evaluation primitives shared by every method: device, batching, precision, features, timers."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from lnlbench import progress
from lnlbench.data.transforms import augment, preprocess
from lnlbench.device_copy import to_device  # noqa: F401  (engine.to_device is what methods call)
from lnlbench.errors import ConfigError, TrainingError
from lnlbench.hashing import json_digest


def select_device(name: str | None = None) -> torch.device:
    """`name` if given (cpu, cuda, cuda:1, mps), else CUDA, then Apple MPS, then CPU."""
    if name:
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for but CUDA is not available here; use --device cpu")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} asked for but this machine has {torch.cuda.device_count()} GPU(s); "
                              f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}, or cpu")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise ConfigError(f"device {name!r} asked for but Apple MPS is not available here; use --device cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether `a` and `b` name one device, an unindexed 'cuda' meaning the current one (tensors on it report
    'cuda:0', which does not compare equal to torch.device('cuda'))."""
    if a.type != b.type:
        return False
    if a.type != "cuda" or a.index == b.index:
        return True
    current = torch.cuda.current_device()
    return (current if a.index is None else a.index) == (current if b.index is None else b.index)


def device_name(device: torch.device) -> str:
    """Human-readable device, e.g. 'cuda:NVIDIA H100 80GB HBM3' or 'cpu:2 threads'."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu:{torch.get_num_threads()} threads"
    return device.type


def derive_seed(seed: int, *names: object) -> int:
    """A stable 63-bit seed from a base seed and names (same inputs, same seed, on every platform)."""
    digest = hashlib.sha256(repr((seed, *names)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, *names: object) -> torch.Generator:
    """A CPU generator seeded from `derive_seed(seed, *names)`."""
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, *names))
    return g


def seed_epoch(seed: int, phase: str, epoch: int) -> None:
    """Reseed the global RNGs at an epoch boundary, so a resumed run draws what an uninterrupted one would."""
    torch.manual_seed(derive_seed(seed, "global", phase, epoch))


@dataclass(frozen=True)
class Precision:
    """Mixed-precision and memory-format settings, written into every result record."""

    amp_dtype: torch.dtype | None  # None: full fp32
    channels_last: bool
    compile: bool = False

    def as_record(self) -> dict:
        return {
            "precision": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "fp32",
            "memory_format": "channels_last" if self.channels_last else "contiguous",
            "compile": self.compile,
        }

    def autocast(self, device: torch.device):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.amp_dtype)


def default_precision(device: torch.device, amp: str = "auto", compile: bool = False) -> Precision:
    """bf16 autocast on GPUs that support it (fp16 otherwise), fp32 on CPU; channels_last everywhere."""
    if amp == "off" or device.type != "cuda":
        dtype = None
    elif amp in ("auto", "bf16") and torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
    elif amp in ("auto", "fp16", "bf16"):
        dtype = torch.float16
    else:
        raise ConfigError(f"unknown --amp {amp!r}; use auto, bf16, fp16 or off")
    return Precision(amp_dtype=dtype, channels_last=True, compile=compile)


# In-memory images go to the GPU once when they take at most this fraction of its free memory (CIFAR-10's 150 MB
# of uint8 easily); larger sets stay on the host and are copied batch by batch from pinned memory.
RESIDENT_MAX_FRACTION = 0.25


def fits_on_device(nbytes: int, device: torch.device, fraction: float = RESIDENT_MAX_FRACTION) -> bool:
    """Whether `nbytes` take at most `fraction` of the CUDA device's free memory (False off CUDA)."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= fraction * free


def crop_padding(side: int) -> int:
    """Random-crop padding for images of `side` pixels: the CIFAR recipe's 4 px at 32 px, i.e. 1/8 of the side.

    Scaling matters for small images: 4 px of padding on scikit-learn's 8 x 8 digits shifts them by half their width.
    """
    return max(1, round(side / 8))


@functools.cache
def _decode_pool() -> ThreadPoolExecutor:
    """Threads that decode lazy images batch by batch: one per core, at most 16."""
    return ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1), thread_name_prefix="lnlbench-decode")


@dataclass
class ImageBatcher:
    """Turns uint8 images into preprocessed float batches on a device.

    In-memory images that fit are moved to the GPU once, and augmentation and resizing run there; otherwise batches
    are copied from pinned host memory without blocking (and augmented and resized on the device after the copy).
    `resident=False` keeps in-memory images on the host even when they would fit (the benchmarks' comparison).
    """

    images: torch.Tensor | Sequence[torch.Tensor]
    device: torch.device
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels_last: bool = True
    resident: bool = True
    _store: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.images, torch.Tensor):
            nbytes = self.images.numel() * self.images.element_size()
            if self.device.type == "cuda" and self.resident and fits_on_device(nbytes, self.device):
                self._store = self.images.to(self.device, non_blocking=True)
            else:
                self._store = self.images

    def __len__(self) -> int:
        return len(self.images)

    @property
    def on_device(self) -> bool:
        """Whether the images are held on the batcher's device (no host-to-device copy per batch)."""
        return self._store is not None and same_device(self._store.device, self.device)

    def uint8(self, idx: torch.Tensor) -> torch.Tensor:
        if self._store is not None:
            out = self._store[to_device(idx, self._store.device)]
        else:  # a lazy split (Clothing1M, WebVision): decode the batch on a thread pool (PIL and numpy release the GIL)
            out = torch.stack(list(_decode_pool().map(self.images.__getitem__, idx.tolist())))
        return out if same_device(out.device, self.device) else to_device(out, self.device)

    def batch(
        self,
        idx: torch.Tensor,
        aug: torch.Generator | None = None,
        per_image: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Preprocessed batch for sample indices `idx`, augmented (crop + flip) when a generator is given, then
        `per_image` (a uint8 C x H x W transform, e.g. an AutoAugment policy) applied to each image when given."""
        raw = self.uint8(idx)
        if aug is not None:
            raw = augment(raw, aug, pad=crop_padding(raw.shape[-1]))
        if per_image is not None:
            raw = torch.stack([per_image(image) for image in raw])
        x = preprocess(raw, self.size, self.mean, self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def index_batches(
    indices: torch.Tensor,
    batch_size: int,
    order: torch.Generator | None,
    drop_last: bool = False,
    desc: str | None = None,
) -> Iterator[torch.Tensor]:
    """Mini-batches of `indices`, shuffled by `order` when given; with `desc`, a progress bar on a terminal."""
    if order is not None:
        indices = indices[torch.randperm(len(indices), generator=order)]
    stop = len(indices) - (len(indices) % batch_size if drop_last else 0)
    starts = range(0, stop, batch_size)
    for start in starts if desc is None else progress.bar(starts, desc=desc, unit="batch"):
        chunk = indices[start : start + batch_size]
        if len(chunk):
            yield chunk


@torch.inference_mode()
def predict_logits(
    predict: Callable[[torch.Tensor], torch.Tensor],
    batcher: ImageBatcher,
    precision: Precision,
    batch_size: int = 256,
    indices: torch.Tensor | None = None,
    desc: str = "predict",
) -> torch.Tensor:
    """Logits (float32, on CPU) of `predict` over `indices` (all images by default), in order."""
    if isinstance(predict, torch.nn.Module):
        predict.eval()
    if indices is None:
        indices = torch.arange(len(batcher))
    outs = []
    for idx in index_batches(indices, batch_size, None, desc=desc):
        with precision.autocast(batcher.device):
            outs.append(predict(batcher.batch(idx)).float())
    return torch.cat(outs).cpu() if outs else torch.empty(0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of argmax predictions equal to `labels`."""
    if len(labels) == 0:
        return float("nan")
    return float((logits.argmax(1) == labels.to(logits.device)).float().mean())


def per_sample_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per sample (no reduction), in float32."""
    return F.cross_entropy(logits.float(), labels, reduction="none")


def check_finite(value: torch.Tensor | float, phase: str, epoch: int) -> float:
    """Raise TrainingError naming the phase and epoch when a loss is NaN or infinite; return it as a float."""
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        raise TrainingError(
            f"loss became {v} in phase {phase!r} at epoch {epoch}; lower the learning rate "
            f"(--set lr=...) or check the input data"
        )
    return v


class PhaseTimer:
    """Seconds per named phase: `seconds` as measured in this process, `charged()` with the work done elsewhere
    that the run's result depends on (a feature cache entry's extraction, epochs of an earlier attempt) added."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.charges: list[dict] = []  # {"phase", "seconds", "replaces_s", "source"}
        self.device = device
        self._open: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self._open.append((name, start))
        try:
            yield
        finally:
            self._open.pop()
            if self.device is not None and self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    @property
    def current(self) -> str:
        """The innermost open phase ("other" outside every phase)."""
        return self._open[-1][0] if self._open else "other"

    def charge(self, seconds: float, source: str, replaces_s: float = 0.0, phase: str | None = None) -> None:
        """Charge `seconds` of work done elsewhere to `phase` (default: the open one), in place of `replaces_s`
        measured here (e.g. the time it took to read a cache entry instead of computing it)."""
        self.charges.append(
            {"phase": phase or self.current, "seconds": float(seconds), "replaces_s": float(replaces_s),
             "source": source}
        )

    def charged(self, include_open: bool = False) -> dict[str, float]:
        """Seconds per phase as charged: measured, plus each charge, minus the measured time a charge replaces
        (with `include_open`, the phases still running count up to now)."""
        out = dict(self.seconds)
        if include_open:
            now = time.perf_counter()
            for name, start in self._open:
                out[name] = out.get(name, 0.0) + now - start
        for c in self.charges:
            out[c["phase"]] = out.get(c["phase"], 0.0) + c["seconds"] - c["replaces_s"]
        return out

    def extra_s(self) -> float:
        """Seconds charged on top of what this process measured (the charged wall-clock minus the measured one)."""
        return sum(c["seconds"] - c["replaces_s"] for c in self.charges)


# Phases the harness times around a method (loading data, the final test); the rest is the method's own time.
HARNESS_PHASES = frozenset({"data", "test"})


def throughput(
    images_seen: int, phases: dict[str, float], images_by_phase: dict[str, int] | None = None
) -> dict[str, Any]:
    """`method_s`: seconds of every phase but the harness's own (data loading, final test); `images_per_s`: training
    images (augmented views included, as methods count them in `images_seen`) per second of that time, which
    includes phases that train on no images (feature extraction, selection); `images_per_s_by_phase`: each phase's
    own images per second of its own time, the throughput to compare across methods and devices."""
    method_s = sum(v for k, v in phases.items() if k not in HARNESS_PHASES)
    by_phase = {p: n / phases[p] for p, n in sorted((images_by_phase or {}).items()) if phases.get(p, 0.0) > 0}
    return {"method_s": method_s, "images_per_s": images_seen / method_s if method_s > 0 else 0.0,
            "images_per_s_by_phase": by_phase}


def atomic_torch_save(obj: object, path: Path) -> None:
    """torch.save atomically with a SHA-256 manifest, the replaced version kept as `.prev` until the new one is
    verified (lnlbench.verified): readers never see half a file, and a corrupt one is recognised."""
    from lnlbench import verified

    meta = {"epoch": obj["epoch"]} if isinstance(obj, dict) and isinstance(obj.get("epoch"), int) else {}
    verified.write_verified(Path(path), verified.torch_bytes(obj), meta)


def safe_torch_load(path: Path) -> object:
    """torch.load with weights_only=True (no arbitrary code from checkpoint files)."""
    return torch.load(path, map_location="cpu", weights_only=True)


@torch.inference_mode()
def extract_features(
    feature_fn: Callable[[torch.Tensor], torch.Tensor],
    batcher: ImageBatcher,
    precision: Precision,
    batch_size: int = 256,
) -> torch.Tensor:
    """Pre-logit features (float32, CPU) of every image, in order, with the backbone in eval mode."""
    return predict_logits(feature_fn, batcher, precision, batch_size, desc="features")


def _check_feature_entry(entry: object) -> None:
    """A feature cache entry decodes to {"features": tensor, ...}; else CorruptFileError."""
    from lnlbench.verified import CorruptFileError

    if not (isinstance(entry, dict) and isinstance(entry.get("features"), torch.Tensor)):
        raise CorruptFileError("it is not a feature cache entry")


def cached_features(
    cache_dir: Path | None,
    key: dict,
    compute: Callable[[], torch.Tensor],
    device: str = "",
) -> tuple[torch.Tensor, dict]:
    """Features from `cache_dir/features/<sha256(key)>.pt`, computed and stored atomically on a miss.

    Returns (features, cost): cost["seconds"] is what computing them took when they were computed (stored with the
    entry, so every reader is charged the same), cost["measured_now"] says whether that happened in this call and
    cost["read_s"] is the time this call spent instead. An entry without a stored cost is recomputed.
    """
    start = time.perf_counter()
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / "features" / f"{json_digest(key)}.pt"
        if path.exists():  # a corrupt entry is named, moved aside (*.corrupt) and recomputed, never trusted
            from lnlbench import verified

            entry, _ = verified.load_healing(path, "feature cache entry", check=_check_feature_entry)
            if entry is not None and "seconds" in entry:
                cost = {"seconds": float(entry["seconds"]), "device": entry.get("device"), "measured_now": False}
                return entry["features"], dict(cost, read_s=time.perf_counter() - start)
    t0 = time.perf_counter()
    feats = compute()
    seconds = time.perf_counter() - t0
    if path is not None:
        atomic_torch_save({"features": feats, "seconds": seconds, "device": device}, path)
    return feats, {"seconds": seconds, "device": device, "measured_now": True, "read_s": time.perf_counter() - start}
