"""The dataset record every reader returns, and the registry readers fill at their definition site."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from dataclasses import dataclass, field
from pathlib import Path

from lnlbench.errors import ConfigError
from lnlbench.registry import Registry

if TYPE_CHECKING:  # torch is imported where tensors are made, so listing readers stays light
    import torch


@dataclass
class Split:
    """One split: uint8 images (N x C x H x W tensor, or a lazy sequence of C x H x W uint8 tensors) and labels."""

    images: torch.Tensor | Sequence[torch.Tensor]
    labels: torch.Tensor  # int64, shape (N,)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def in_memory(self) -> bool:
        import torch

        return isinstance(self.images, torch.Tensor)


@dataclass
class Dataset:
    """A labelled dataset with clean train and test splits.

    `noisy_train_labels` is set only for datasets whose noise is real (Clothing1M, WebVision); for the others the
    harness injects noise into `train.labels`.
    `superclasses[c]` gives the coarse class of fine class `c` where the dataset has one (CIFAR-100).
    """

    name: str
    classes: list[str]
    train: Split
    test: Split
    superclasses: list[int] | None = None
    noisy_train_labels: torch.Tensor | None = None
    source: str = ""  # where the data was read from, for the result record
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def content_sha256(self) -> str:
        """Hash of the training images and clean labels: names caches (noisy labels, features)."""
        h = hashlib.sha256()
        h.update(self.name.encode())
        h.update(self.train.labels.numpy().astype("int64").tobytes())
        if self.train.in_memory:
            h.update(self.train.images.contiguous().numpy().tobytes())  # type: ignore[union-attr]
        else:
            h.update(self.source.encode())
        return h.hexdigest()


@dataclass
class DatasetReader:
    """A registered dataset: a loader plus what people need to know about it."""

    name: str
    description: str
    load: Callable[..., Dataset]  # load(data_root: Path | None, download: bool = False, **options) -> Dataset
    needs_data_root: bool = True


# The readers declared with `@register_dataset`; look names up with `lnlbench.plugin_manager.dataset_registry()`, which
# holds these and the readers plugins return from the `lnlbench_datasets` hook.
DATASETS: Registry[DatasetReader] = Registry("dataset")


def register_dataset(name: str, description: str, needs_data_root: bool = True):
    """Decorator declaring `load(data_root, download=False, **options) -> Dataset` under `name`."""

    def wrap(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        from lnlbench.plugin_manager import dataset_registry

        DATASETS.add(name, DatasetReader(name, description, fn, needs_data_root))
        dataset_registry.cache_clear()  # a reader declared after the registry was filled still joins it
        return fn

    return wrap


def load_dataset(name: str, data_root: str | Path | None = None, download: bool = False, **options) -> Dataset:
    """Load a registered dataset by name (raises `ConfigError` for unknown names, `DataError` for bad data)."""
    from lnlbench.plugin_manager import dataset_registry

    reader = dataset_registry().get(name)
    check_options(reader, options)
    root = Path(data_root).expanduser() if data_root is not None else None
    return reader.load(root, download=download, **options)


def reader_options(reader: DatasetReader) -> list[str] | None:
    """The options a reader's `load` accepts beyond data_root and download (None if it takes any **options)."""
    params = list(inspect.signature(reader.load).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name != "download"]


def check_options(reader: DatasetReader, options: dict) -> None:
    """Raise `ConfigError` for an option the reader does not take, listing the ones it does."""
    valid = reader_options(reader)
    unknown = sorted(set(options) - set(valid)) if valid is not None else []
    if unknown:
        raise ConfigError(
            f"dataset {reader.name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(valid) or '(none)'}"
        )
