"""Entry points: make synthetic noisy labels by model name, or wrap the real noisy labels a dataset ships."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lnlbench.noise.base import (
    register_noise_model,
    NoiseInputs,
    NoisyLabels,
    as_labels,
    check_num_classes,
    check_seed,
    frozen,
    labels_sha256,
    make_record,
    rate_for,
)
from lnlbench.plugin_manager import noise_registry


def noise_rng(seed: int) -> np.random.Generator:
    """The only source of randomness for noise: a PCG64 generator seeded by the noise seed alone."""
    return np.random.Generator(np.random.PCG64(seed))


def inject_noise(
    model: str,
    clean_labels: Any,
    num_classes: int,
    rate: float,
    seed: int,
    *,
    images: Any = None,
    dataset_name: str | None = None,
    superclasses: Sequence[int] | None = None,
    asym_map: dict[int, int] | None = None,
    path: str | Path | None = None,
    variant: str | None = None,
    indices: Any = None,
) -> NoisyLabels:
    """Noisy labels from noise model `model`, deterministic in (clean labels, rate, seed and the model's inputs).

    `images` is used by `idn`; `dataset_name`, `superclasses` and `asym_map` by `asym`; `path` by `file` (which
    ignores `rate`); `path`, `variant` and `indices` (a subset's original training indices) by `cifar10n`/`cifar100n`
    (`indices` also by `file`). Unknown models, bad rates and missing inputs raise ConfigError; bad labels raise DataError.
    """
    noise_model = noise_registry().get(model)
    num_classes = check_num_classes(num_classes)
    rate = rate_for(noise_model, rate)
    seed = check_seed(seed)
    clean = as_labels(clean_labels, num_classes, "clean labels")
    inputs = NoiseInputs(images, dataset_name, superclasses, asym_map, path, variant, indices)
    noisy = noise_model.make(clean, num_classes, rate, noise_rng(seed), inputs)
    return make_record(clean, noisy, num_classes, model, rate, seed)


def real_noisy_labels(clean: Any | None, noisy: Any, num_classes: int) -> NoisyLabels:
    """The noisy labels a dataset ships (model "real"; rate and seed are None).

    With clean labels unknown (None), `transition_matrix` and `realized_rate` are None too.
    """
    num_classes = check_num_classes(num_classes)
    noisy_array = as_labels(noisy, num_classes, "real noisy labels")
    if clean is not None:
        clean_array = as_labels(clean, num_classes, "clean labels", n=noisy_array.shape[0])
        return make_record(clean_array, noisy_array, num_classes, "real", None, None)
    return NoisyLabels(
        labels=frozen(noisy_array),
        clean_labels=None,
        transition_matrix=None,
        realized_rate=None,
        sha256=labels_sha256(noisy_array),
        model="real",
        rate=None,
        seed=None,
        num_classes=num_classes,
    )


@register_noise_model(
    "real",
    "the noisy labels a real-noise dataset ships (clothing1m, webvision); no labels are changed and the rate is ignored",
    uses_rate=False,
)
def labels_shipped_with_dataset(
    clean: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator, inputs: NoiseInputs
) -> np.ndarray:
    from lnlbench.errors import ConfigError

    raise ConfigError(
        "noise model 'real' takes its labels from the dataset (clothing1m, webvision); the harness reads them with "
        "real_noisy_labels(); for other datasets inject noise with sym, asym, pairflip, idn or file"
    )
