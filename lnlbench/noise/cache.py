"""Noisy labels made once and reused: `cache_dir/noise/<labels sha256>.npy` plus one index file per request.

The index file `cache_dir/noise/index/<sha256 of the request>.json` names the labels' SHA-256; the request is the
dataset key, model, rate, seed, number of classes, the clean labels' hash and whatever else changes the labels
(the resolved asym map, the noise file's content hash, the images' hash for idn). Every file is written to a
temporary name and renamed, so concurrent runs never read half a file; a cache file whose content does not match
its hash is regenerated with a warning.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from lnlbench.atomic import atomic_write
from lnlbench.hashing import json_digest
from lnlbench.noise.base import (
    NoiseInputs,
    NoisyLabels,
    as_labels,
    check_num_classes,
    check_seed,
    labels_sha256,
    make_record,
    rate_for,
)
from lnlbench.plugin_manager import noise_registry
from lnlbench.noise.inject import inject_noise

CACHE_FORMAT = 1  # bump when a noise model's algorithm changes, so old labels are not reused


class NoiseCacheWarning(UserWarning):
    """A cached noisy-label file was unreadable or corrupt and has been regenerated."""


def request_key(
    dataset_key: str, model: str, clean: np.ndarray, num_classes: int, rate: float | None, seed: int, inputs: NoiseInputs
) -> dict[str, Any]:
    """Everything that determines the noisy labels, as a JSON-able dict."""
    noise_model = noise_registry().get(model)
    key: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "dataset": dataset_key,
        "model": model,
        "rate": rate if noise_model.uses_rate else None,
        "seed": seed if noise_model.uses_rate else None,
        "num_classes": num_classes,
        "clean_labels_sha256": labels_sha256(clean),
    }
    if noise_model.cache_extras is not None:
        key["extra"] = noise_model.cache_extras(inputs, num_classes)
    return key


def _load_cached(index_file: Path, labels_dir: Path, n: int, num_classes: int) -> np.ndarray | None:
    """The cached labels named by `index_file`, or None (with a warning) when anything does not check out."""
    bad = index_file  # the file that failed: moved aside (*.corrupt) so it is never read again
    try:
        expected = json.loads(index_file.read_text())["labels_sha256"]
        labels_file = bad = labels_dir / f"{expected}.npy"
        labels = as_labels(np.load(labels_file, allow_pickle=False), num_classes, str(labels_file), n=n)
        if labels_sha256(labels) != expected:
            raise ValueError(f"{labels_file} does not match its SHA-256")
        return labels
    except Exception as error:  # any unreadable or inconsistent cache entry is regenerated
        moved = ""
        if bad.exists():
            from lnlbench.verified import quarantine

            try:
                moved = f"; moved {bad.name} aside to {quarantine(bad).name}"
            except OSError:
                moved = ""
        warnings.warn(
            f"noisy-label cache entry {index_file} is unusable ({error}){moved}; regenerating it", NoiseCacheWarning, 2
        )
        return None


def cached_noisy_labels(
    cache_dir: Path,
    dataset_key: str,
    model: str,
    clean_labels: Any,
    num_classes: int,
    rate: float,
    seed: int,
    **kwargs: Any,
) -> NoisyLabels:
    """`inject_noise(model, clean_labels, num_classes, rate, seed, **kwargs)`, made once and then read back.

    `dataset_key` must name the dataset's content (e.g. `Dataset.content_sha256()`), so that different data never
    shares cached labels.
    """
    noise_model = noise_registry().get(model)
    num_classes = check_num_classes(num_classes)
    rate = rate_for(noise_model, rate)
    seed = check_seed(seed)
    clean = as_labels(clean_labels, num_classes, "clean labels")
    inputs = NoiseInputs(**kwargs)
    key = request_key(dataset_key, model, clean, num_classes, rate, seed, inputs)
    root = Path(cache_dir).expanduser() / "noise"
    index_file = root / "index" / f"{json_digest(key)}.json"

    if index_file.exists():
        labels = _load_cached(index_file, root, clean.shape[0], num_classes)
        if labels is not None:
            return make_record(clean, labels, num_classes, model, rate, seed)

    noisy = inject_noise(model, clean, num_classes, rate, seed, **kwargs)
    labels_file = root / f"{noisy.sha256}.npy"
    atomic_write(labels_file, lambda handle: np.save(handle, np.asarray(noisy.labels, dtype="<i8")))
    index = {"labels_sha256": noisy.sha256, "realized_rate": noisy.realized_rate, "request": key}
    atomic_write(index_file, lambda handle: handle.write(json.dumps(index, indent=1, sort_keys=True).encode()))
    return noisy
