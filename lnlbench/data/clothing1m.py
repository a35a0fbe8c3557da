"""Clothing1M (Xiao et al., CVPR 2015) as distributed: `images/` plus the annotation files, read lazily.

Layout (the files sit in DATA_ROOT or in DATA_ROOT/annotations/; image keys are paths relative to DATA_ROOT):

    images/0/00/<id>.jpg ...          about 1M JPEGs, in images/0 .. images/9 (one tar per folder)
    category_names_eng.txt            the 14 class names, one per line, in class-index order
    noisy_label_kv.txt                '<key> <label>': the labels taken from the shops' text (noisy)
    clean_label_kv.txt                '<key> <label>': labels checked by annotators
    noisy_train_key_list.txt          keys of the noisy training set (1,000,000)
    clean_train_key_list.txt          keys of the clean training set (47,570; not used by the standard protocol)
    clean_val_key_list.txt            keys of the clean validation set (14,313)
    clean_test_key_list.txt           keys of the clean test set (10,526)

The standard protocol (Xiao et al. 2015; DivideMix, Li et al. 2020, `dataloader_clothing1M.py`): train on the
noisy set with the noisy labels, select on the clean validation set, report accuracy on the clean test set.
The reader returns exactly that: `train` = the noisy training keys, `noisy_train_labels` = their noisy labels,
`train.labels` = their clean label where one exists in clean_label_kv.txt, else -1 (unknown); `test` = the clean
test set; the clean validation set is `extra["eval_splits"]["val"]`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lnlbench.data.annotations import (
    BAD_LINE,
    CLASS_LIST,
    NO_LABEL,
    UNKNOWN,
    IssueLog,
    SplitIndex,
    check_positive,
    make_split,
    parse_keys,
    parse_labelled,
    read_lines,
    select,
)
from lnlbench.data.base import Dataset, register_dataset
from lnlbench.data.manifest import DatasetIndex, Manifest, RequiredFile, register_manifest
from lnlbench.errors import DataError

NAME = "clothing1m"
NUM_CLASSES = 14
# category_names_eng.txt, in class-index order (as listed in the Clothing1M README and papers that use it).
CLASSES = (
    "T-Shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker",
    "Jacket", "Downcoat", "Suit", "Shawl", "Dress", "Vest", "Underwear",
)  # fmt: skip
# Split sizes of the distributed key lists (Xiao et al. 2015, Sec. 3; the three clean lists sum to the 72,409
# entries of clean_label_kv.txt).
PUBLISHED = {"train": 1_000_000, "val": 14_313, "test": 10_526}
SOURCE = "Clothing1M is given on request by its authors (Tong Xiao, tong.xiao.work@gmail.com): see https://github.com/Cysu/noisy_label"

NOISY_KV = "noisy_label_kv.txt"
CLEAN_KV = "clean_label_kv.txt"
NOISY_TRAIN = "noisy_train_key_list.txt"
CLEAN_TRAIN = "clean_train_key_list.txt"
CLEAN_VAL = "clean_val_key_list.txt"
CLEAN_TEST = "clean_test_key_list.txt"
NAMES = "category_names_eng.txt"
WHAT = {
    NOISY_KV: "noisy labels, '<key> <label>'",
    CLEAN_KV: "clean labels, '<key> <label>'",
    NOISY_TRAIN: "keys of the noisy training set",
    CLEAN_TRAIN: "keys of the clean training set",
    CLEAN_VAL: "keys of the clean validation set",
    CLEAN_TEST: "keys of the clean test set",
    NAMES: "the 14 class names",
}


def annotation_dir(root: Path) -> Path:
    """Where the annotation files are: DATA_ROOT, or DATA_ROOT/annotations/ (a common way to unpack them)."""
    nested = root / "annotations"
    return nested if not (root / NOISY_KV).exists() and nested.is_dir() else root


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def read_class_names(path: Path, log: IssueLog, notes: list[str]) -> list[str]:
    """The class names of category_names_eng.txt; the published names when the file is missing or wrong."""
    names = [text for _, text in read_lines(path, WHAT[NAMES], log)]
    if not path.is_file():
        return list(CLASSES)
    if len(names) != NUM_CLASSES:
        log.add(CLASS_LIST, path, None, f"lists {len(names)} class names; Clothing1M has {NUM_CLASSES}", fatal=True)
        return list(CLASSES)
    differ = [f"{k}: {got!r} (published {want!r})" for k, (got, want) in enumerate(zip(names, CLASSES)) if _normalise(got) != _normalise(want)]
    if differ:
        notes.append(f"{path} names differ from the published class names: {'; '.join(differ)}")
    return names


def read_kv(path: Path, log: IssueLog) -> dict[str, int]:
    """key -> label of a '<key> <label>' file; a key listed twice with different labels is a bad line."""
    out: dict[str, int] = {}
    first: dict[str, int] = {}
    for key, label, number in parse_labelled(path, WHAT[path.name], NUM_CLASSES, log):
        if key in out and out[key] != label:
            log.add(BAD_LINE, path, number, f"{key} is listed again with label {label} (line {first[key]} says {out[key]})")
            continue
        out.setdefault(key, label)
        first.setdefault(key, number)
    return out


def _keyed_split(
    adir: Path, list_name: str, labels: dict[str, int], label_file: str, log: IssueLog,
    noisy: dict[str, int] | None = None,
) -> SplitIndex:
    """The keys of `list_name` with their label from `labels` (clean) and, for training, `noisy`."""
    path = adir / list_name
    entries, noisy_labels = [], []
    for key, number in parse_keys(path, WHAT[list_name], log):
        if noisy is not None:
            if key not in noisy:
                log.add(NO_LABEL, path, number, f"{key} has no label in {label_file}")
                continue
            noisy_labels.append(noisy[key])
            entries.append((key, labels.get(key, UNKNOWN), number))
        else:
            if key not in labels:
                log.add(NO_LABEL, path, number, f"{key} has no label in {label_file}")
                continue
            entries.append((key, labels[key], number))
    return make_split(entries, str(path), noisy_labels if noisy is not None else None)


def scan_clothing1m(root: Path, options: dict[str, Any], log: IssueLog) -> DatasetIndex:
    """The three splits of the standard protocol, from the annotation files (images are not opened)."""
    adir = annotation_dir(root)
    notes: list[str] = []
    classes = read_class_names(adir / NAMES, log, notes)
    noisy = read_kv(adir / NOISY_KV, log)
    clean = read_kv(adir / CLEAN_KV, log)
    splits = {
        "train": _keyed_split(adir, NOISY_TRAIN, clean, NOISY_KV, log, noisy=noisy),
        "val": _keyed_split(adir, CLEAN_VAL, clean, CLEAN_KV, log),
        "test": _keyed_split(adir, CLEAN_TEST, clean, CLEAN_KV, log),
    }
    prefix = "" if adir == root else "annotations/"
    files = [RequiredFile(prefix + name, what, optional=name == CLEAN_TRAIN) for name, what in WHAT.items()]
    files.append(RequiredFile("images/", "the images, images/0 .. images/9"))
    known = int((splits["train"].labels >= 0).sum())
    notes.append(f"{known} of {len(splits['train'])} noisy training images also have a clean label")
    return DatasetIndex(NAME, root, classes, splits, files, notes, extra={"layout": f"annotations in {adir}"})


register_manifest(Manifest(NAME, SOURCE, scan_clothing1m, lambda options: dict(PUBLISHED)))


@register_dataset(NAME, "Clothing1M (14 classes, ~38% real label noise): noisy train, clean val/test; lazy, cacheable")
def load_clothing1m(
    data_root: Path | None,
    download: bool = False,
    image_size: int = 256,
    max_per_class: int | None = None,
    limit: int | None = None,
    tolerate_bad: bool = False,
    verify: str = "exists",
    cache_dir: str | None = None,
    use_cache: bool = True,
    samples_per_epoch: int | None = None,
) -> Dataset:
    """Clothing1M's standard protocol with lazily decoded images (3 x image_size x image_size, the resized cache's
    geometry; read from the cache `lnlbench prepare clothing1m --build-cache` made, when present).

    max_per_class / limit: keep at most that many images per class (training: per noisy label) / in all, per split.
    verify: "exists" checks that every listed image file exists, "decode" also decodes each uncached one, "none"
    trusts the lists. tolerate_bad: skip bad samples (missing, undecodable, bad lines) with one counted warning
    instead of raising an error that names the file and line.
    samples_per_epoch: train each epoch on a fresh class-balanced draw of this many images (`lnlbench.sampling.balanced_epoch_indices`)
    instead of a full pass; DivideMix's protocol is 1000 batches of 32 = 32,000 (`Train_clothing1M.py`).
    """
    import torch

    from lnlbench.data.loading import check_reader_options, lazy_split, open_cache  # torch-backed image access

    check_reader_options(NAME, image_size, verify)
    check_positive(NAME, "samples_per_epoch", samples_per_epoch)
    check_positive(NAME, "max_per_class", max_per_class)
    check_positive(NAME, "limit", limit)
    if download:
        raise DataError(f"clothing1m cannot be downloaded automatically: {SOURCE}; then pass --data-root DIR")
    if data_root is None or not Path(data_root).is_dir():
        raise DataError(f"clothing1m needs --data-root DIR holding images/ and the annotation files ({SOURCE})")
    root = Path(data_root).expanduser().resolve()
    log = IssueLog(NAME, tolerate=bool(tolerate_bad))
    index = scan_clothing1m(root, {}, log)
    cache = open_cache(root, image_size, cache_dir, use_cache)
    splits, kept = {}, {}
    for name, split in index.splits.items():
        split = select(split, max_per_class, limit)
        splits[name], kept[name] = lazy_split(
            split, root, log, size=image_size, cache=cache, verify=verify, tolerate_bad=bool(tolerate_bad), dataset=NAME
        )
        if len(kept[name]) == 0:
            raise DataError(f"clothing1m: no usable images in split {name} under {root}; run `lnlbench prepare clothing1m --data-root {root}`")
    log.warn_skipped()
    train = kept["train"]
    digest = train.digest()
    return Dataset(
        name=NAME,
        classes=index.classes,
        train=splits["train"],
        test=splits["test"],
        noisy_train_labels=torch.from_numpy(train.noisy_labels.astype(np.int64)),  # type: ignore[union-attr]
        source=f"{root} [index {digest[:12]}]",
        extra={
            "eval_splits": {"val": splits["val"]},
            "clean_label_known": int((train.labels >= 0).sum()),
            "skipped": len(log.issues),
            "skipped_files": [i.describe() for i in log.issues[:100]],
            "cache": str(cache.directory) if cache is not None else None,
            "index_sha256": digest,
            "samples_per_epoch": samples_per_epoch,
        },
    )
