"""The noisy-label record, the noise-model registry, and the checks every noise model shares."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnlbench.errors import ConfigError, DataError
from lnlbench.registry import Registry


@dataclass(frozen=True, eq=False)
class NoisyLabels:
    """Noisy training labels with the statistics that go into every result record.

    For real noise whose clean labels are unknown, `clean_labels`, `transition_matrix` and `realized_rate` are None;
    for real noise `rate` and `seed` are None (there is no requested rate and no noise seed).
    """

    labels: np.ndarray  # int64, shape (N,), read-only
    clean_labels: np.ndarray | None  # int64, shape (N,), read-only
    transition_matrix: np.ndarray | None  # C x C float64; row = clean class, column = noisy class; rows sum to 1
    realized_rate: float | None  # fraction of labels that differ from the clean ones
    sha256: str  # labels_sha256(labels)
    model: str
    rate: float | None
    seed: int | None
    num_classes: int

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    def labels_tensor(self) -> Any:
        """The noisy labels as a new int64 torch tensor (the array itself is read-only; torch warns on those)."""
        import torch

        return torch.tensor(self.labels, dtype=torch.int64)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (the labels themselves are referred to by their SHA-256)."""
        matrix = None
        if self.transition_matrix is not None:
            matrix = [[round(float(v), 6) for v in row] for row in self.transition_matrix]
        return {
            "model": self.model,
            "rate": self.rate,
            "seed": self.seed,
            "realized_rate": self.realized_rate,
            "labels_sha256": self.sha256,
            "transition_matrix": matrix,
            "num_classes": self.num_classes,
            "n": self.n,
        }


@dataclass(frozen=True)
class NoiseInputs:
    """The extra inputs some noise models need; each model reads only its own."""

    images: Any = None  # idn: uint8 images, N x C x H x W (or N x H x W), array, tensor or sequence of per-image arrays
    dataset_name: str | None = None  # asym: "cifar10" selects the classic CIFAR-10 map
    superclasses: Sequence[int] | None = None  # asym: coarse class of each fine class (CIFAR-100)
    asym_map: dict[int, int] | None = None  # asym: an explicit {clean class: noisy class} map
    path: str | Path | None = None  # file, cifar10n, cifar100n: where the noisy labels are
    variant: str | None = None  # cifar10n, cifar100n: which of the file's label sets (e.g. "worse")
    indices: Any = None  # file, cifar10n, cifar100n: each training sample's index in the full set (a subset's)


# make(clean, num_classes, rate, rng, inputs) -> noisy labels (int64 array)
NoiseFunction = Callable[[np.ndarray, int, float, np.random.Generator, NoiseInputs], np.ndarray]


def declared_rate(rate: float, num_classes: int) -> float:
    """The expected wrong-label fraction of a model whose rate is the fraction of labels it makes wrong."""
    return rate


@dataclass(frozen=True)
class NoiseModel:
    """A registered noise model: how to make the labels, plus what people and the cache need to know."""

    name: str
    description: str
    make: NoiseFunction
    uses_rate: bool = True
    # cache_extras(inputs, num_classes) -> JSON-able dict of the inputs that change the labels (part of the cache key)
    cache_extras: Callable[[NoiseInputs, int], dict[str, Any]] | None = field(default=None)
    # expected_wrong_fraction(rate, num_classes) -> the fraction of labels expected wrong at that declared rate (what
    # methods that take the rate as a prior use, e.g. co-teaching's tau)
    expected_wrong_fraction: Callable[[float, int], float] = field(default=declared_rate)


# The models declared with `@register_noise_model`; look names up with `lnlbench.plugin_manager.noise_registry()`, which
# holds these and the models plugins return from the `lnlbench_noise_models` hook.
NOISE_MODELS: Registry[NoiseModel] = Registry("noise model")


def register_noise_model(
    name: str,
    description: str,
    *,
    uses_rate: bool = True,
    cache_extras: Callable[[NoiseInputs, int], dict[str, Any]] | None = None,
    expected_wrong_fraction: Callable[[float, int], float] = declared_rate,
) -> Callable[[NoiseFunction], NoiseFunction]:
    """Decorator declaring a noise function under `name` with a one-line description."""

    def wrap(fn: NoiseFunction) -> NoiseFunction:
        from lnlbench.plugin_manager import noise_registry

        NOISE_MODELS.add(name, NoiseModel(name, description, fn, uses_rate, cache_extras, expected_wrong_fraction))
        noise_registry.cache_clear()  # a model declared after the registry was filled still joins it
        return fn

    return wrap


def labels_sha256(labels: Any) -> str:
    """SHA-256 of the labels as little-endian int64 bytes: the identity of a set of noisy labels."""
    return hashlib.sha256(np.asarray(labels).astype("<i8").tobytes()).hexdigest()


def realized_transition_matrix(clean: Any, noisy: Any, num_classes: int) -> np.ndarray:
    """Empirical P(noisy = j | clean = i) as a C x C float64 matrix; a class without samples gets an identity row."""
    clean = np.asarray(clean, dtype=np.int64)
    noisy = np.asarray(noisy, dtype=np.int64)
    counts = np.zeros((num_classes, num_classes), dtype=np.float64)
    np.add.at(counts, (clean, noisy), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    empty = totals[:, 0] == 0
    counts[empty, np.flatnonzero(empty)] = 1.0
    totals[empty] = 1.0
    return counts / totals


def check_rate(rate: Any) -> float:
    """A noise rate as a float in [0, 1], or a ConfigError that says how to fix it."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise ConfigError(f"noise rate {rate!r} is not a number; pass a fraction such as 0.4")
    value = float(rate)
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise ConfigError(f"rate {rate} is outside [0, 1]; pass a fraction such as 0.4")
    return value


def rate_for(noise_model: NoiseModel, rate: Any) -> float | None:
    """The checked rate for models that use one; models that ignore it (`file`) record it as given, if a number."""
    if noise_model.uses_rate:
        return check_rate(rate)
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        return None
    return float(rate)


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"noise seed {seed!r} must be a non-negative integer; pass e.g. --noise-seed 0")
    return int(seed)


def check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ConfigError(f"num_classes {num_classes!r} must be a positive integer")
    return int(num_classes)


def as_labels(labels: Any, num_classes: int, what: str, n: int | None = None) -> np.ndarray:
    """Labels as a 1-D int64 array with values in [0, num_classes), or a DataError naming `what` is wrong."""
    if hasattr(labels, "detach"):  # a torch tensor
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 1:
        raise DataError(f"{what} must be a 1-D sequence of class indices; got shape {tuple(array.shape)}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise DataError(
            f"{what} have dtype {array.dtype}, not an integer type; store class indices as integers "
            "(e.g. labels.astype('int64'))"
        )
    if n is not None and array.shape[0] != n:
        raise DataError(f"{what} hold {array.shape[0]} labels but the training set has {n}; give one label per sample")
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise DataError(
                f"{what} contain label {bad}, outside [0, {num_classes}); labels must be class indices "
                f"0..{num_classes - 1} in the dataset's class order"
            )
    return array.astype(np.int64)


def count_for(rate: float, n: int) -> int:
    """round(rate * n), halves rounded up (not Python's round-half-to-even), robust to float error."""
    return min(n, int(math.floor(rate * n + 0.5 + 1e-9)))


def frozen(array: np.ndarray) -> np.ndarray:
    """A read-only copy, so a shared NoisyLabels cannot be changed by accident."""
    out = np.array(array, copy=True)
    out.setflags(write=False)
    return out


def make_record(
    clean: np.ndarray, noisy: np.ndarray, num_classes: int, model: str, rate: float | None, seed: int | None
) -> NoisyLabels:
    """NoisyLabels with the realized statistics computed from clean and noisy labels."""
    n = clean.shape[0]
    realized = float(np.count_nonzero(clean != noisy) / n) if n else 0.0
    return NoisyLabels(
        labels=frozen(noisy.astype(np.int64)),
        clean_labels=frozen(clean),
        transition_matrix=frozen(realized_transition_matrix(clean, noisy, num_classes)),
        realized_rate=realized,
        sha256=labels_sha256(noisy),
        model=model,
        rate=rate,
        seed=seed,
        num_classes=num_classes,
    )
