"""The embedded default: scikit-learn's real handwritten digits (1,797 8x8 images), no download needed.

The images ship inside scikit-learn (`sklearn.datasets.load_digits`, a copy of the UCI "Optical Recognition of
Handwritten Digits" test set): 8x8 gray images with values 0..16, ten classes of about 180 images each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lnlbench.data.base import Dataset, Split, register_dataset

if TYPE_CHECKING:
    import torch

TEST_PER_CLASS = 50  # 10 x 50 = 500 test images, leaving 1,297 for training
SPLIT_SEED = 0  # fixed: the split is part of the benchmark's definition, not of a run
MAX_VALUE = 16  # load_digits' pixel range is 0..16


def stratified_split(targets: np.ndarray, test_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices: `test_per_class` images of every class go to test, chosen by one RandomState."""
    rng = np.random.RandomState(seed)
    train, test = [], []
    for c in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == c))
        test.append(members[:test_per_class])
        train.append(members[test_per_class:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def to_rgb_uint8(gray: np.ndarray) -> torch.Tensor:
    """N x H x W gray values 0..16 -> N x 3 x H x W uint8 in 0..255 (v * 255 // 16, channel replicated)."""
    import torch

    scaled = (gray.astype(np.int64) * 255 // MAX_VALUE).astype(np.uint8)
    return torch.from_numpy(scaled).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


@register_dataset(
    "digits",
    "scikit-learn's handwritten digits (10 classes, 8x8, 1,297 train / 500 test), embedded: no data root",
    needs_data_root=False,
)
def load_digits(data_root: Path | None = None, download: bool = False) -> Dataset:
    """The digits with a fixed stratified split; `data_root` and `download` are ignored (the data is packaged)."""
    import sklearn  # imported here: scikit-learn is slow to import and only this reader needs it
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = to_rgb_uint8(np.asarray(bunch.images))
    targets = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = stratified_split(targets, TEST_PER_CLASS, SPLIT_SEED)
    import torch

    labels = torch.from_numpy(targets)
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return Dataset(
        name="digits",
        classes=[str(d) for d in range(10)],
        train=Split(images=images[train_idx], labels=labels[train_idx]),
        test=Split(images=images[test_idx], labels=labels[test_idx]),
        source=f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__})",
        extra={"split": f"stratified, {TEST_PER_CLASS} test images per class, numpy RandomState({SPLIT_SEED})"},
    )
