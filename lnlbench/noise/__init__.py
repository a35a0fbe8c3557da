"""Noise models: clean labels -> noisy labels plus the realized transition matrix, cached by content hash.

`NOISE_MODELS` lists them (`lnlbench noise-models`); importing this package registers every built-in model.
"""

from lnlbench.noise import cifar_n, files, idn, synthetic  # noqa: F401  (imports fill NOISE_MODELS)
from lnlbench.noise.base import (
    NOISE_MODELS,
    NoiseInputs,
    NoiseModel,
    NoisyLabels,
    labels_sha256,
    realized_transition_matrix,
    register_noise_model,
)
from lnlbench.noise.cache import NoiseCacheWarning, cached_noisy_labels
from lnlbench.noise.files import read_asym_map, read_label_file
from lnlbench.noise.inject import inject_noise, real_noisy_labels
from lnlbench.noise.synthetic import CIFAR10_ASYM_MAP, superclass_map

__all__ = [
    "CIFAR10_ASYM_MAP",
    "NOISE_MODELS",
    "NoiseCacheWarning",
    "NoiseInputs",
    "NoiseModel",
    "NoisyLabels",
    "cached_noisy_labels",
    "inject_noise",
    "labels_sha256",
    "read_asym_map",
    "read_label_file",
    "real_noisy_labels",
    "realized_transition_matrix",
    "register_noise_model",
    "superclass_map",
]
