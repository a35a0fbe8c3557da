"""CIFAR-10 and CIFAR-100 in their official python layouts, checked by structure rather than by md5.

Layout facts come from the dataset's page, https://www.cs.toronto.edu/~kriz/cifar.html: each batch is a pickled dict
whose `data` is an N x 3072 uint8 array (channel planes R, G, B, each 32 x 32 row-major) with `labels` (CIFAR-10) or
`fine_labels` / `coarse_labels` (CIFAR-100); the label names live in `batches.meta` / `meta`.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import shutil
import socket
import tarfile
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lnlbench import progress

from lnlbench.data.base import Dataset, Split, register_dataset
from lnlbench.errors import DataError

log = logging.getLogger(__name__)

IMAGE_SHAPE = (3, 32, 32)
PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps its files, and the official archive that holds them."""

    name: str
    dirname: str
    num_classes: int
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    url: str
    archive_md5: str  # md5 of the archive as listed on https://www.cs.toronto.edu/~kriz/cifar.html
    coarse_label_key: str | None = None  # CIFAR-100's super-class labels
    coarse_names_key: str | None = None
    num_superclasses: int = 0


CIFAR10 = CifarLayout(
    name="cifar10",
    dirname="cifar-10-batches-py",
    num_classes=10,
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
)

CIFAR100 = CifarLayout(
    name="cifar100",
    dirname="cifar-100-python",
    num_classes=100,
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    coarse_label_key="coarse_labels",
    coarse_names_key="coarse_label_names",
    num_superclasses=20,
)


# --------------------------------------------------------------------------------------------- reading one pickle

# The only globals a CIFAR pickle refers to: numpy's array reconstruction (the official files were written by Python 2
# with numpy 1.x; copies rebuilt with numpy 2 name `numpy._core`). Anything else means the file is not a CIFAR batch,
# and refusing it keeps a foreign pickle from running code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}
_NUMPY_2 = int(np.__version__.split(".")[0]) >= 2


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the numpy globals a CIFAR batch uses."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refers to {module}.{name}, which a CIFAR batch never contains")
        if _NUMPY_2 and module.startswith("numpy.core."):
            module = "numpy._core." + module[len("numpy.core.") :]  # numpy 2 renamed the private module
        return super().find_class(module, name)


def _fix_hint(layout: CifarLayout) -> str:
    return (
        f"re-download it with --download (which replaces the damaged files) or rebuild it; the official archive is "
        f"{layout.url}"
    )


def read_pickle(path: Path, layout: CifarLayout) -> dict[str, object]:
    """Load one CIFAR pickle as a dict with str keys; a missing, truncated or foreign file raises `DataError`."""
    if not path.is_file():
        raise DataError(f"{layout.name}: missing file {path}; {_fix_hint(layout)}")
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="latin1").load()  # latin1: the official files are Python 2 pickles
    except Exception as e:  # any failure to unpickle means the file is damaged or not a CIFAR batch
        raise DataError(
            f"{layout.name}: cannot read {path} ({type(e).__name__}: {e}); the file is truncated or corrupt; "
            f"{_fix_hint(layout)}"
        ) from e
    if not isinstance(obj, dict):
        raise DataError(
            f"{layout.name}: {path} holds a {type(obj).__name__}, not the dict of a CIFAR batch; {_fix_hint(layout)}"
        )
    # Pickles loaded with encoding="bytes" elsewhere and re-saved carry bytes keys: accept both spellings.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _require_keys(batch: dict, keys: tuple[str, ...], path: Path, layout: CifarLayout) -> None:
    missing = [k for k in keys if k not in batch]
    if missing:
        raise DataError(
            f"{layout.name}: {path} lacks the key(s) {', '.join(missing)} (has: {', '.join(map(str, batch))}); "
            f"{_fix_hint(layout)}"
        )


def _checked_labels(batch: dict, key: str, n: int, num_classes: int, path: Path, layout: CifarLayout) -> np.ndarray:
    """The labels under `key` as int64, checked for length n and range [0, num_classes)."""
    labels = np.asarray(batch[key])
    if labels.ndim != 1 or labels.shape[0] != n:
        raise DataError(
            f"{layout.name}: {path} has {labels.shape[0] if labels.ndim else 'no'} {key!r} entries for {n} images "
            f"(shape {labels.shape}); {_fix_hint(layout)}"
        )
    if n and labels.dtype.kind not in "iu":
        raise DataError(f"{layout.name}: {path} has {key!r} of type {labels.dtype}, not integers; {_fix_hint(layout)}")
    labels = labels.astype(np.int64)
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise DataError(
            f"{layout.name}: {path} has {key!r} out of range [0, {num_classes}) (e.g. {int(bad[0])}, "
            f"{bad.size} in all); {_fix_hint(layout)}"
        )
    return labels


def read_batch(path: Path, layout: CifarLayout) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One batch file: its N x 3072 uint8 pixels and its label arrays (by key), all checked."""
    batch = read_pickle(path, layout)
    label_keys = (layout.label_key,) + ((layout.coarse_label_key,) if layout.coarse_label_key else ())
    _require_keys(batch, ("data", *label_keys), path, layout)
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(
            f"{layout.name}: {path} has 'data' as a {what}; expected a uint8 array of shape (N, {PIXELS}); "
            f"{_fix_hint(layout)}"
        )
    n = data.shape[0]
    labels = {layout.label_key: _checked_labels(batch, layout.label_key, n, layout.num_classes, path, layout)}
    if layout.coarse_label_key:
        key = layout.coarse_label_key
        labels[key] = _checked_labels(batch, key, n, layout.num_superclasses, path, layout)
    return data, labels


def _read_names(meta: dict, key: str, count: int, path: Path, layout: CifarLayout) -> list[str]:
    _require_keys(meta, (key,), path, layout)
    names = meta[key]
    if not isinstance(names, (list, tuple)) or len(names) != count:
        size = len(names) if isinstance(names, (list, tuple)) else type(names).__name__
        raise DataError(f"{layout.name}: {path} has {size} {key!r}, expected {count}; {_fix_hint(layout)}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


# ------------------------------------------------------------------------------------------------------ download

DOWNLOAD_TIMEOUT_S = 30  # per socket operation: a dead host fails in seconds instead of hanging


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """torchvision's `download_url` takes no timeout: set the default socket timeout for the download only."""
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def fetch(url: str, dest: Path, md5: str, what: str) -> None:
    """Download `url` to `dest` with torchvision's md5-checked `download_url`, through a staging folder so that a
    failed or altered download never sits under the archive's name; failures raise `DataError`."""
    staging = dest.parent / f".{dest.name}.download"
    shutil.rmtree(staging, ignore_errors=True)
    how = f"check your connection, or download {url} by hand and extract it into {dest.parent}"
    from torchvision.datasets.utils import calculate_md5, download_url  # only here: torchvision is slow to import

    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S), progress.library_bars():
            download_url(url, str(staging), filename=dest.name, md5=md5)
        (staging / dest.name).replace(dest)
    except RuntimeError as e:  # download_url's "File not found or corrupted.": the md5 check failed
        got = calculate_md5(staging / dest.name) if (staging / dest.name).is_file() else "nothing"
        raise DataError(
            f"{what}: the file downloaded from {url} has md5 {got}, not the official {md5} "
            f"(incomplete or altered download); try again, or {how}"
        ) from e
    except (urllib.error.URLError, OSError, ValueError) as e:  # URLError, timeouts and disk errors are all OSError
        raise DataError(f"{what}: could not download {url} ({type(e).__name__}: {e}); {how}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def safe_extract(archive: Path, dest: Path, what: str) -> None:
    """Extract a tar archive into `dest`, refusing links, devices and any member that would land outside `dest`."""
    dest = dest.resolve()
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                target = (dest / m.name).resolve()
                if not (m.isfile() or m.isdir()) or not target.is_relative_to(dest):
                    raise DataError(
                        f"{what}: {archive} contains {m.name!r}, which is not a plain file or folder inside {dest}; "
                        f"refusing to extract it; delete {archive} and download it again"
                    )
            for m in members:
                m.mode = (m.mode | 0o600) & 0o755  # drop set-id bits; keep files writable by their owner
            extract_kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=members, **extract_kwargs)
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(
            f"{what}: cannot extract {archive} into {dest} ({type(e).__name__}: {e}); "
            f"delete {archive} and download it again, or make {dest} writable"
        ) from e


def download_and_extract(url: str, md5: str, root: Path, what: str) -> None:
    """Make sure the md5-checked archive from `url` is in `root` (reusing a good copy), then extract it there."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{what}: cannot create the data root {root} ({e}); pick a writable --data-root") from e
    archive = root / url.rsplit("/", 1)[-1]
    from torchvision.datasets.utils import check_integrity

    if check_integrity(archive, md5):
        log.info("%s: using the archive already in %s", what, archive)
    else:
        log.info("%s: downloading %s into %s", what, url, root)
        fetch(url, archive, md5, what)
    safe_extract(archive, root, what)


# ---------------------------------------------------------------------------------------------- the whole dataset


def _to_split(parts: list[tuple[np.ndarray, dict[str, np.ndarray]]], key: str) -> Split:
    import torch

    data = np.concatenate([d for d, _ in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([lab[key] for _, lab in parts])
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, *IMAGE_SHAPE))
    return Split(images=images, labels=torch.from_numpy(labels))


def derive_superclasses(fine: np.ndarray, coarse: np.ndarray, source: Path, layout: CifarLayout) -> list[int]:
    """superclasses[f] = the coarse label every image of fine class f carries (must be one, and f must occur)."""
    superclasses: list[int] = []
    for f in range(layout.num_classes):
        seen = np.unique(coarse[fine == f])
        if seen.size != 1:
            problem = "never occurs" if seen.size == 0 else f"carries several coarse labels {seen.tolist()}"
            raise DataError(
                f"{layout.name}: in {source}, fine class {f} {problem}, so its super-class is not defined; "
                f"{_fix_hint(layout)}"
            )
        superclasses.append(int(seen[0]))
    return superclasses


def read_cifar(directory: Path, layout: CifarLayout) -> Dataset:
    """Read and check every file of one CIFAR directory (e.g. `.../cifar-10-batches-py`)."""
    train_parts = [read_batch(directory / name, layout) for name in layout.train_files]
    test_part = read_batch(directory / layout.test_file, layout)
    meta_path = directory / layout.meta_file
    meta = read_pickle(meta_path, layout)
    classes = _read_names(meta, layout.names_key, layout.num_classes, meta_path, layout)
    train = _to_split(train_parts, layout.label_key)
    test = _to_split([test_part], layout.label_key)
    for split_name, split in (("training", train), ("test", test)):
        if len(split) == 0:
            raise DataError(f"{layout.name}: the {split_name} files in {directory} hold no images; {_fix_hint(layout)}")
    extra: dict = {"layout": layout.dirname}
    superclasses = None
    if layout.coarse_label_key and layout.coarse_names_key:
        parts = [*train_parts, test_part]
        fine = np.concatenate([lab[layout.label_key] for _, lab in parts])
        coarse = np.concatenate([lab[layout.coarse_label_key] for _, lab in parts])
        superclasses = derive_superclasses(fine, coarse, directory, layout)
        extra["superclass_names"] = _read_names(
            meta, layout.coarse_names_key, layout.num_superclasses, meta_path, layout
        )
    return Dataset(
        name=layout.name,
        classes=classes,
        train=train,
        test=test,
        superclasses=superclasses,
        source=str(directory),
        extra=extra,
    )


def locate(data_root: Path | None, layout: CifarLayout) -> Path | None:
    """The CIFAR directory under `data_root` (or `data_root` itself when it is that directory); None if absent."""
    if data_root is None:
        return None
    root = data_root.expanduser().resolve()
    if root.name == layout.dirname or (root / layout.meta_file).is_file():
        return root if root.is_dir() else None
    candidate = root / layout.dirname
    return candidate if candidate.is_dir() else None


def _missing_message(data_root: Path | None, layout: CifarLayout) -> str:
    archive = layout.url.rsplit("/", 1)[-1]
    how = (
        f"pass --download to fetch it, or download {layout.url} yourself and extract it there "
        f"(`tar xzf {archive}` gives {layout.dirname}/)"
    )
    if data_root is None:
        return (
            f"{layout.name} needs a data root: pass --data-root DIR, the directory holding {layout.dirname}/ "
            f"(add --download to fetch it there from {layout.url})"
        )
    root = data_root.expanduser().resolve()
    if not root.exists():
        return f"{layout.name}: the data root {root} does not exist; {how}"
    return f"{layout.name}: no {layout.dirname}/ found in {root} (looked for {root / layout.dirname}); {how}"


def load_cifar(data_root: Path | None, layout: CifarLayout, download: bool) -> Dataset:
    """Find, optionally download, and read one CIFAR variant."""
    directory = locate(data_root, layout)
    if directory is not None:
        try:
            return read_cifar(directory, layout)
        except DataError as e:
            if not download:
                raise
            log.warning("%s; downloading a fresh copy because --download was given", e)
    if not download or data_root is None:
        raise DataError(_missing_message(data_root, layout))
    root = data_root.expanduser().resolve()
    if directory is not None and directory == root:
        root = directory.parent  # data_root named the dataset directory itself: extract beside it
    download_and_extract(layout.url, layout.archive_md5, root, what=layout.name)
    directory = root / layout.dirname
    if not directory.is_dir():
        raise DataError(
            f"{layout.name}: the archive from {layout.url} did not contain {layout.dirname}/; "
            f"download and extract it by hand into {root}"
        )
    return read_cifar(directory, layout)


def load_cifar_subset(
    data_root: Path | None, layout: CifarLayout, download: bool, per_class: int | None, subset: str | None
) -> Dataset:
    """`load_cifar`, then the training subset the options ask for (samples keep their original index)."""
    from lnlbench.data.subset import check_subset_options, subset_indices, take_training_subset

    check_subset_options(layout.name, per_class, subset)  # a bad option fails before any image is read
    data = load_cifar(data_root, layout, download)
    return take_training_subset(data, subset_indices(layout.name, data.train.labels.numpy(), per_class, subset))


@register_dataset(
    "cifar10",
    "CIFAR-10 (10 classes, 32x32), official python layout cifar-10-batches-py/; options per_class=N (the first N "
    "training images of each class) or subset=first:N, keeping original indices",
)
def load_cifar10(
    data_root: Path | None, download: bool = False, per_class: int | None = None, subset: str | None = None
) -> Dataset:
    """CIFAR-10 from `data_root/cifar-10-batches-py` (or `data_root` itself), optionally a training subset."""
    return load_cifar_subset(data_root, CIFAR10, download, per_class, subset)


@register_dataset(
    "cifar100",
    "CIFAR-100 (100 classes in 20 super-classes, 32x32), official layout cifar-100-python/; options per_class=N "
    "or subset=first:N, keeping original indices",
)
def load_cifar100(
    data_root: Path | None, download: bool = False, per_class: int | None = None, subset: str | None = None
) -> Dataset:
    """CIFAR-100 from `data_root/cifar-100-python` (or `data_root` itself), with super-classes from coarse labels,
    optionally a training subset."""
    return load_cifar_subset(data_root, CIFAR100, download, per_class, subset)
