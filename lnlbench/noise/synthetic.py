"""Class-conditional synthetic noise: symmetric (two conventions), asymmetric class maps, pair flipping.

Every model flips an exact number of labels (round(rate * count), halves up) chosen uniformly without replacement,
so the realized rate equals the requested one up to rounding (for `sym-dividemix`, before redraws that land on the
true class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lnlbench.errors import ConfigError
from lnlbench.noise.base import NoiseInputs, count_for, register_noise_model

# CIFAR-10 classes: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog, 7 horse, 8 ship, 9 truck.
# The classic asymmetric map of Co-teaching and DivideMix (DivideMix dataloader_cifar.py `transition`):
# truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog.
CIFAR10_ASYM_MAP: dict[int, int] = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


def _require_two_classes(num_classes: int, model: str) -> None:
    if num_classes < 2:
        raise ConfigError(f"noise model {model!r} needs at least 2 classes; this dataset has {num_classes}")


@register_noise_model(
    "sym",
    "symmetric, Co-teaching/JoCoR convention: exactly round(rate*N) labels flipped to a different class chosen "
    "uniformly (true class excluded); realized rate = rate",
)
def symmetric_exclusive(
    clean: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator, inputs: NoiseInputs
) -> np.ndarray:
    noisy = clean.copy()
    k = count_for(rate, clean.shape[0])
    if k == 0:
        return noisy
    _require_two_classes(num_classes, "sym")
    chosen = rng.choice(clean.shape[0], size=k, replace=False)
    # an offset in 1..C-1 added modulo C is a uniform draw over the C-1 other classes
    noisy[chosen] = (clean[chosen] + rng.integers(1, num_classes, size=k)) % num_classes
    return noisy


@register_noise_model(
    "sym-dividemix",
    "symmetric, DivideMix/ELR convention: round(rate*N) labels redrawn uniformly over ALL classes (true class "
    "included), so the realized rate is about rate*(C-1)/C, e.g. 0.45 for rate 0.5 on 10 classes",
    expected_wrong_fraction=lambda rate, num_classes: rate * (num_classes - 1) / num_classes,
)
def symmetric_inclusive(
    clean: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator, inputs: NoiseInputs
) -> np.ndarray:
    noisy = clean.copy()
    k = count_for(rate, clean.shape[0])
    if k == 0:
        return noisy
    chosen = rng.choice(clean.shape[0], size=k, replace=False)
    noisy[chosen] = rng.integers(0, num_classes, size=k)
    return noisy


def flip_along_map(clean: np.ndarray, class_map: dict[int, int], rate: float, rng: np.random.Generator) -> np.ndarray:
    """For each source class (in increasing order), flip exactly round(rate * n_class) of its samples to its target."""
    noisy = clean.copy()
    for src in sorted(class_map):
        members = np.flatnonzero(clean == src)
        k = count_for(rate, members.shape[0])
        if k:
            noisy[rng.choice(members, size=k, replace=False)] = class_map[src]
    return noisy


def superclass_map(superclasses: Sequence[int], num_classes: int) -> dict[int, int]:
    """Each fine class -> the next fine class (by index, cyclically) within its superclass (CIFAR-100 convention)."""
    coarse = [int(c) for c in superclasses]
    if len(coarse) != num_classes:
        raise ConfigError(
            f"superclasses give a coarse class for {len(coarse)} fine classes but the dataset has {num_classes}; "
            "give one coarse class per fine class"
        )
    mapping: dict[int, int] = {}
    for group in sorted(set(coarse)):
        members = [fine for fine, c in enumerate(coarse) if c == group]
        for i, fine in enumerate(members):
            mapping[fine] = members[(i + 1) % len(members)]
    return {src: dst for src, dst in mapping.items() if src != dst}  # a one-class superclass has nowhere to go


def check_asym_map(asym_map: dict[Any, Any], num_classes: int) -> dict[int, int]:
    """An explicit class map with integer classes in range and no class mapped to itself."""
    checked: dict[int, int] = {}
    for src, dst in asym_map.items():
        for value in (src, dst):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"asym_map entry {src!r} -> {dst!r} is not a pair of integer class indices")
            if not 0 <= value < num_classes:
                raise ConfigError(
                    f"asym_map entry {src} -> {dst} names class {value}, outside [0, {num_classes}); "
                    f"use class indices 0..{num_classes - 1}"
                )
        if src == dst:
            raise ConfigError(f"asym_map maps class {src} to itself; drop that entry (unmapped classes stay clean)")
        checked[int(src)] = int(dst)
    return checked


def resolve_asym_map(inputs: NoiseInputs, num_classes: int) -> dict[int, int]:
    """The class map `asym` uses: an explicit asym_map first, else CIFAR-10's classic map, else the superclass map."""
    if inputs.asym_map is not None:
        return check_asym_map(inputs.asym_map, num_classes)
    name = (inputs.dataset_name or "").lower()
    if name == "cifar10":
        if num_classes != 10:
            raise ConfigError(f"the CIFAR-10 asymmetric map needs 10 classes; got {num_classes}; pass asym_map")
        return dict(CIFAR10_ASYM_MAP)
    if inputs.superclasses is not None:
        return superclass_map(inputs.superclasses, num_classes)
    if name == "cifar100":
        raise ConfigError("asym noise on cifar100 needs the superclasses of the fine classes; pass superclasses")
    raise ConfigError(
        f"asym noise has no built-in class map for dataset {inputs.dataset_name!r}; pass asym_map "
        "(a {clean class: noisy class} map, on the command line --noise-map FILE with JSON {\"src\": dst} "
        "or CSV lines src,dst)"
    )


def _asym_cache_extras(inputs: NoiseInputs, num_classes: int) -> dict[str, Any]:
    return {"class_map": sorted(resolve_asym_map(inputs, num_classes).items())}


@register_noise_model(
    "asym",
    "asymmetric class map, round(rate*n_c) flips per mapped class: CIFAR-10 truck->automobile, bird->airplane, "
    "deer->horse, cat<->dog; CIFAR-100 next class in its superclass; other datasets: pass asym_map (--noise-map)",
    cache_extras=_asym_cache_extras,
)
def asymmetric(
    clean: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator, inputs: NoiseInputs
) -> np.ndarray:
    return flip_along_map(clean, resolve_asym_map(inputs, num_classes), rate, rng)


@register_noise_model(
    "pairflip",
    "pair flipping (Co-teaching): exactly round(rate*n_c) labels of each class c flipped to class c+1 mod C",
)
def pair_flip(
    clean: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator, inputs: NoiseInputs
) -> np.ndarray:
    if rate > 0:
        _require_two_classes(num_classes, "pairflip")
    return flip_along_map(clean, {c: (c + 1) % num_classes for c in range(num_classes)}, rate, rng)
