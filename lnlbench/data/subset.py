"""Training subsets that keep each sample's original index, so index-aligned label sources still line up.

`--option per_class=500` keeps the first 500 training images of every class in file order; `--option
subset=first:5000` keeps the first 5,000. The kept samples' indices in the full training set go to
`Dataset.extra["train_indices"]` (an int64 array): a label file indexed by the full set (CIFAR-N, a user's
`--noise file`) gives the subset's labels as `labels[train_indices]`, and the indices enter the dataset fingerprint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lnlbench.errors import ConfigError

TRAIN_INDICES = "train_indices"  # Dataset.extra key: original training index of each kept sample
FULL_TRAIN_SIZE = "full_train_size"  # Dataset.extra key: training images before the subset


def _positive_int(dataset: str, name: str, value: Any, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{dataset}: option {name}={value!r} must be a positive integer, e.g. {example}")
    return int(value)


def parse_subset(dataset: str, subset: Any) -> int:
    """The N of `subset=first:N`, or a ConfigError saying how to write it."""
    example = "--option subset=first:5000"
    if not isinstance(subset, str) or not subset.startswith("first:"):
        raise ConfigError(f"{dataset}: option subset={subset!r} is not understood; write first:N, e.g. {example}")
    count = subset[len("first:"):].strip()
    if not count.isdigit():
        raise ConfigError(f"{dataset}: option subset={subset!r} has no image count after first:; e.g. {example}")
    return _positive_int(dataset, "subset", int(count), example)


def check_subset_options(dataset: str, per_class: Any = None, subset: Any = None) -> None:
    """Raise ConfigError for subset options that are malformed, before any image is read."""
    if per_class is not None and subset is not None:
        raise ConfigError(f"{dataset}: give one of the options per_class and subset, not both")
    if subset is not None:
        parse_subset(dataset, subset)
    if per_class is not None:
        _positive_int(dataset, "per_class", per_class, "--option per_class=500")


def subset_indices(dataset: str, labels: np.ndarray, per_class: Any = None, subset: Any = None) -> np.ndarray | None:
    """Sorted original indices of the training samples to keep (None: keep all), deterministic in file order."""
    check_subset_options(dataset, per_class, subset)
    if per_class is None and subset is None:
        return None
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    if subset is not None:
        first = parse_subset(dataset, subset)
        if first > n:
            raise ConfigError(f"{dataset}: subset=first:{first} asks for more than the {n} training images; "
                              f"ask for {n} or fewer")
        return np.arange(first, dtype=np.int64)
    count = _positive_int(dataset, "per_class", per_class, "--option per_class=500")
    kept = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if members.size < count:
            raise ConfigError(f"{dataset}: per_class={count}, but class {int(cls)} has only {members.size} training "
                              f"images; ask for per_class={members.size} or fewer")
        kept.append(members[:count])
    return np.sort(np.concatenate(kept)).astype(np.int64)


def take_training_subset(data: Any, indices: np.ndarray | None) -> Any:
    """`data` (a Dataset) with only the training samples at `indices`, which are recorded in `extra`."""
    if indices is None:
        return data
    import torch

    index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
    if not isinstance(data.train.images, torch.Tensor):  # lazy image sequences would need a lazy view; none yet
        raise ConfigError(f"{data.name}: training subsets are supported for in-memory datasets only")
    train = dataclasses.replace(data.train, images=data.train.images[index], labels=data.train.labels[index].clone())
    kept = np.array(indices, dtype=np.int64)
    kept.setflags(write=False)
    extra = {**data.extra, TRAIN_INDICES: kept, FULL_TRAIN_SIZE: len(data.train)}
    return dataclasses.replace(data, train=train, extra=extra)
