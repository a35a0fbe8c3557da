"""Users' own images as a class-per-subfolder tree: `root/train/<class>/*.jpg` and `root/test/<class>/*.jpg`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lnlbench.data.base import Dataset, Split, register_dataset
from lnlbench.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_CHUNK = 256  # images decoded per thread-pool task: big enough that scheduling costs nothing next to decoding


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def list_classes(split_dir: Path) -> list[str]:
    """Sorted names of the visible subfolders of `split_dir`."""
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and _visible(p))


def list_images(class_dir: Path, max_per_class: int | None = None) -> list[Path]:
    """Image files under `class_dir` (recursively, hidden entries skipped) in sorted order, the first k if asked."""
    files = sorted(
        p
        for p in class_dir.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and all(_visible(Path(part)) for part in p.relative_to(class_dir).parts)
        and p.is_file()
    )
    return files[:max_per_class] if max_per_class is not None else files


def scan_split(split_dir: Path, classes: Sequence[str], max_per_class: int | None) -> tuple[list[Path], list[int]]:
    """Image paths of one split with their class indices, class by class."""
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        class_dir = split_dir / name
        if not class_dir.is_dir():
            continue  # a test split may hold a subset of the training classes
        files = list_images(class_dir, max_per_class)
        paths += files
        labels += [index] * len(files)
    return paths, labels


def decode(path: Path, image_size: int | None) -> np.ndarray:
    """One image file as an H x W x 3 uint8 RGB array, resized to image_size x image_size when given."""
    with Image.open(path) as img:
        img = img.convert("RGB")  # convert() loads the pixels, so truncated files fail here
        if image_size is not None and img.size != (image_size, image_size):
            # PIL's bilinear filter widens its support when shrinking, i.e. it antialiases like preprocess() does.
            img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def _decode_chunk(paths: Sequence[Path], image_size: int | None) -> list[np.ndarray | str]:
    """Decode several files; an unreadable one yields its error message instead of an array."""
    out: list[np.ndarray | str] = []
    for path in paths:
        try:
            out.append(decode(path, image_size))
        except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, DecompressionBombError)
            out.append(f"{type(e).__name__}: {e}")
    return out


@dataclass
class LoadedSplit:
    """A decoded split and the unreadable files left out of it (with skip_bad)."""

    split: Split
    skipped: list[Path] = field(default_factory=list)


def load_split(
    paths: Sequence[Path],
    labels: Sequence[int],
    image_size: int | None,
    skip_bad: bool,
    workers: int,
    root: Path,
) -> LoadedSplit:
    """Decode every file of a split (in a thread pool; PIL releases the GIL while decoding) into one uint8 tensor."""
    images: np.ndarray | None = None  # N x 3 x H x W, allocated once the first image tells its size
    first: Path | None = None
    good = np.ones(len(paths), dtype=bool)
    skipped: list[Path] = []
    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(_decode_chunk, chunk, image_size) for chunk in chunks]
        try:
            for c, future in enumerate(futures):
                for k, result in enumerate(future.result()):
                    i = c * _CHUNK + k
                    if isinstance(result, str):
                        if not skip_bad:
                            raise DataError(
                                f"folder: cannot read image {paths[i]} ({result}); delete or replace the file, "
                                f"or pass skip_bad=True to skip unreadable images"
                            )
                        skipped.append(paths[i])
                        good[i] = False
                        continue
                    if images is None:
                        first = paths[i]
                        images = np.empty((len(paths), 3, *result.shape[:2]), dtype=np.uint8)
                    elif result.shape[:2] != images.shape[2:]:
                        h, w = images.shape[2:]
                        raise DataError(
                            f"folder: images under {root} differ in size ({first} is {w}x{h}, {paths[i]} is "
                            f"{result.shape[1]}x{result.shape[0]}); pass image_size=N to resize every image to "
                            f"N x N when loading"
                        )
                    images[i] = result.transpose(2, 0, 1)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    label_array = np.asarray(labels, dtype=np.int64)
    if images is None:  # every image was skipped (or there were none)
        size = (image_size, image_size) if image_size is not None else (0, 0)
        images = np.empty((0, 3, *size), dtype=np.uint8)
        label_array = label_array[:0]
    elif skipped:
        images, label_array = images[good], label_array[good]
    import torch

    return LoadedSplit(Split(images=torch.from_numpy(images), labels=torch.from_numpy(label_array)), skipped)


def _check_options(image_size: int | None, max_per_class: int | None, workers: int | None) -> None:
    for name, value in (("image_size", image_size), ("max_per_class", max_per_class), ("workers", workers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"folder: {name} must be a positive integer, got {value!r}")


@register_dataset("folder", "your own images: DATA_ROOT/train/<class>/*.jpg and DATA_ROOT/test/<class>/*.jpg")
def load_folder(
    data_root: Path | None,
    download: bool = False,
    image_size: int | None = None,
    max_per_class: int | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
) -> Dataset:
    """A class-folder tree; classes are the sorted subfolder names of train/ (test/ may hold a subset)."""
    _check_options(image_size, max_per_class, workers)
    layout = "DATA_ROOT/train/<class>/<image> and DATA_ROOT/test/<class>/<image>"
    if download:
        raise DataError("folder: a folder dataset is your own data and cannot be downloaded; drop --download")
    if data_root is None:
        raise DataError(f"folder needs a data root: pass --data-root DATA_ROOT laid out as {layout}")
    root = data_root.expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"folder: the data root {root} does not exist; pass --data-root DATA_ROOT laid out as {layout}")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"folder: no {split}/ folder in {root} (looked for {root / split}); lay it out as {layout}")

    classes = list_classes(root / "train")
    if not classes:
        raise DataError(f"folder: {root / 'train'} has no class subfolders; lay it out as {layout}")
    unknown = sorted(set(list_classes(root / "test")) - set(classes))
    if unknown:
        raise DataError(
            f"folder: {root / 'test'} has class folder(s) {', '.join(unknown)} that {root / 'train'} lacks; "
            f"the test classes must be among the training classes: rename or remove them"
        )
    empty = [c for c in classes if not list_images(root / "train" / c, 1)]
    if empty:
        raise DataError(
            f"folder: class folder(s) {', '.join(empty)} in {root / 'train'} hold no images "
            f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folders"
        )

    workers = workers or min(8, os.cpu_count() or 1)
    loaded = {}
    for split in ("train", "test"):
        paths, labels = scan_split(root / split, classes, max_per_class)
        if not paths:
            raise DataError(f"folder: {root / split} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add some")
        loaded[split] = load_split(paths, labels, image_size, skip_bad, workers, root)
    train, test = loaded["train"], loaded["test"]
    sizes = {tuple(s.split.images.shape[2:]) for s in (train, test) if len(s.split)}
    if len(sizes) > 1:
        raise DataError(
            f"folder: training and test images under {root} differ in size ({' vs '.join(map(str, sizes))}); "
            f"pass image_size=N to resize every image to N x N when loading"
        )
    skipped = train.skipped + test.skipped
    if skipped:
        warnings.warn(
            f"folder: skipped {len(skipped)} unreadable image(s) under {root}, e.g. {skipped[0]}", stacklevel=2
        )
    for name, s in (("train", train), ("test", test)):
        if len(s.split) == 0:
            raise DataError(f"folder: every image in {root / name} was unreadable; check the files")
    return Dataset(
        name="folder",
        classes=classes,
        train=train.split,
        test=test.split,
        source=str(root),
        extra={"skipped": len(skipped), "skipped_files": [str(p.relative_to(root)) for p in skipped]},
    )
