"""WebVision 1.0 (Li et al. 2017), Google subset, first N classes ("mini-WebVision" for N = 50), and the ILSVRC2012
validation images of the same classes; both read lazily.

WebVision layout (DATA_ROOT):

    info/train_filelist_google.txt    'google/q0001/<id>.jpg <class>' per line (class 0..999)
    info/val_filelist.txt             'val000001.jpg <class>' per line: 50 human-checked images per class
    info/synsets.txt                  optional: the 1,000 synsets, '<wnid> <words>', class-index order
    google/q0001/...                  the training images (the "resized" download: shorter side 256)
    val_images_256/val000001.jpg ...  the validation images (shorter side 256)

The LNL protocol (MentorNet, Jiang et al. 2018; DivideMix, Li et al. 2020, `dataloader_webvision.py`): train on the
Google images of classes 0..49 with their web labels, test on WebVision's validation images of those classes and
on ILSVRC2012's validation images of the same classes. WebVision class k is ImageNet class k (see synsets.py).

ILSVRC2012 validation layouts accepted (ILSVRC12_ROOT):
  * class folders: `val/<wnid>/*.JPEG` (the common `valprep.sh` layout), or `val/<k>/` with the class index k as
    DivideMix's `imagenet/val/<k>/` has; `imagenet/val/`, `ILSVRC/Data/CLS-LOC/val/` or the root itself also work;
  * the flat official folder `ILSVRC2012_img_val/ILSVRC2012_val_00000001.JPEG ...` (or `val/`) with either
    Kaggle's `LOC_val_solution.csv`, or the devkit's `ILSVRC2012_validation_ground_truth.txt` plus `meta.mat`
    (from ILSVRC2012_devkit_t12.tar.gz, in the root or in ILSVRC2012_devkit_t12/data/).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from lnlbench.data.annotations import (
    CLASS_LIST,
    LABEL_RANGE,
    MISSING_FILE,
    UNKNOWN,
    IssueLog,
    SplitIndex,
    check_positive,
    make_split,
    parse_labelled,
    read_lines,
    select,
)
from lnlbench.data.base import Dataset, Split, register_dataset
from lnlbench.data.manifest import DatasetIndex, Manifest, RequiredFile, register_manifest
from lnlbench.data.synsets import (
    NUM_IMAGENET_CLASSES,
    WNID,
    first_synsets,
    imagenet_order_problem,
    imagenet_synsets,
    read_devkit_meta,
    read_loc_val_solution,
    read_synset_file,
    unique_names,
)
from lnlbench.errors import ConfigError, DataError

NAME = "webvision"
ILSVRC = "ilsvrc12-val"
DEFAULT_CLASSES = 50  # mini-WebVision (Jiang et al. 2018)
VAL_PER_CLASS = 50  # WebVision and ILSVRC2012 both have 50 validation images per class (their READMEs)
TRAIN_LIST = "info/train_filelist_google.txt"
VAL_LIST = "info/val_filelist.txt"
SYNSETS = "info/synsets.txt"
TRAIN_DIR = "google/"
VAL_DIR = "val_images_256/"
SOURCE = "https://data.vision.ee.ethz.ch/cvl/webvision/dataset2017.html (WebVision 1.0: Google resized images, validation images, info)"
ILSVRC_SOURCE = "https://image-net.org/challenges/LSVRC/2012/ (ILSVRC2012_img_val.tar, and the devkit or Kaggle's LOC_val_solution.csv)"
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
VAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})\.JPEG$", re.IGNORECASE)


def check_classes(dataset: str, classes: object) -> int:
    if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= NUM_IMAGENET_CLASSES:
        raise ConfigError(f"{dataset}: classes must be an integer in 1..{NUM_IMAGENET_CLASSES}, got {classes!r}")
    return classes


def _check_coverage(path: Path, labels: list[int], classes: int, log: IssueLog, what: str) -> None:
    """A fatal class-list problem when `path` has no images for some of the classes 0..classes-1."""
    present = set(labels)
    lacking = [c for c in range(classes) if c not in present]
    if not lacking:
        return
    top = max(present) + 1 if present else 0
    if top < classes:
        message = f"lists {what} for classes 0..{top - 1} only; classes={classes} needs classes up to {classes - 1}: pass classes={top} or less, or use the full file list"
    else:
        message = f"lists no {what} for class(es) {', '.join(map(str, lacking[:10]))}; classes={classes} needs every class below it"
    log.add(CLASS_LIST, path, None, message, fatal=True)


def webvision_synsets(root: Path, classes: int, log: IssueLog) -> list[tuple[str, str]]:
    """(wnid, name) of classes 0..classes-1: from info/synsets.txt when present (checked against ILSVRC2012's order),
    else ImageNet's list."""
    path = root / SYNSETS
    if not path.is_file():
        return first_synsets(classes)
    listed = read_synset_file(path, log)
    problem = imagenet_order_problem(listed, classes)
    if problem is not None:
        log.add(CLASS_LIST, path, problem[0], problem[1], fatal=True)
        return first_synsets(classes)
    return listed[:classes]


def scan_webvision(root: Path, options: dict[str, Any], log: IssueLog) -> DatasetIndex:
    """Training (web labels) and validation (clean labels) images of classes 0..classes-1."""
    classes = check_classes(NAME, options.get("classes", DEFAULT_CLASSES))
    train_path, val_path = root / TRAIN_LIST, root / VAL_LIST
    train = parse_labelled(train_path, "WebVision training list (Google subset), in info/ of the download", NUM_IMAGENET_CLASSES, log)
    val = parse_labelled(val_path, "WebVision validation list, in info/ of the download", NUM_IMAGENET_CLASSES, log)
    if train_path.is_file():
        _check_coverage(train_path, [e[1] for e in train], classes, log, "training images")
    if val_path.is_file():
        _check_coverage(val_path, [e[1] for e in val], classes, log, "validation images")
    synsets = webvision_synsets(root, classes, log)
    train = [e for e in train if e[1] < classes]
    val = [(VAL_DIR + key, label, number) for key, label, number in val if label < classes]
    splits = {
        "train": make_split([(k, UNKNOWN, n) for k, _, n in train], str(train_path), [label for _, label, _ in train]),
        "test": make_split(val, str(val_path)),
    }
    files = [
        RequiredFile(TRAIN_LIST, "training list of the Google images, '<path> <class>'"),
        RequiredFile(VAL_LIST, "validation list, '<file> <class>'"),
        RequiredFile(SYNSETS, "the 1,000 synsets in class order (else ImageNet's order is assumed)", optional=True),
        RequiredFile(TRAIN_DIR, "Google training images (resized download)"),
        RequiredFile(VAL_DIR, "validation images, shorter side 256"),
    ]
    return DatasetIndex(
        NAME, root, unique_names(synsets), splits, files,
        extra={"layout": f"WebVision 1.0, Google subset, classes 0..{classes - 1}", "synsets": [w for w, _ in synsets]},
    )


def _published_webvision(options: dict[str, Any]) -> dict[str, int]:
    return {"test": VAL_PER_CLASS * int(options.get("classes", DEFAULT_CLASSES))}


register_manifest(Manifest(NAME, SOURCE, scan_webvision, _published_webvision, options=("classes",)))


# -- ILSVRC2012 validation --------------------------------------------------------------------------------------


def _class_folders(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and (WNID.match(p.name) or p.name.isdigit()))


def _flat_images(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if VAL_NAME.match(p.name))


def find_val_dir(root: Path) -> tuple[Path | None, str]:
    """(directory, "folders" | "flat") of the ILSVRC2012 validation images under `root`, or (None, "")."""
    candidates = [root / "val", root / "imagenet" / "val", root / "ILSVRC2012_img_val", root / "ILSVRC" / "Data" / "CLS-LOC" / "val", root]
    for directory in candidates:
        if not directory.is_dir():
            continue
        if _class_folders(directory):
            return directory, "folders"
        if any(VAL_NAME.match(p.name) for p in directory.iterdir()):
            return directory, "flat"
    return None, ""


def _first_existing(root: Path, names: list[str]) -> Path | None:
    for name in names:
        if (root / name).is_file():
            return root / name
    return None


def scan_ilsvrc12_val(root: Path, options: dict[str, Any], log: IssueLog) -> DatasetIndex:
    """ILSVRC2012 validation images of ImageNet classes 0..classes-1, from any of the accepted layouts."""
    classes = check_classes(ILSVRC, options.get("classes", DEFAULT_CLASSES))
    table = imagenet_synsets()
    index_of = {wnid: k for k, (wnid, _) in enumerate(table)}
    synsets = table[:classes]
    directory, layout = find_val_dir(root)
    files: list[RequiredFile] = []
    entries: list[tuple[str, int, int]] = []
    sources: list[str] = []
    if directory is None:
        log.add(MISSING_FILE, root, None, "no ILSVRC2012 validation images found: expected val/<wnid>/*.JPEG, imagenet/val/<class>/, or ILSVRC2012_img_val/ILSVRC2012_val_*.JPEG with labels (see docs/datasets.md)", fatal=True)
        layout_text = "not found"
    elif layout == "folders":
        rel_dir = directory.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        files.append(RequiredFile(prefix or "./", "class folders of validation images"))
        for folder in _class_folders(directory):
            label = int(folder.name) if folder.name.isdigit() else index_of.get(folder.name, -1)
            if label < 0 or label >= NUM_IMAGENET_CLASSES:
                kind = LABEL_RANGE if folder.name.isdigit() else CLASS_LIST
                log.add(kind, folder, None, f"folder name {folder.name!r} is not an ILSVRC2012 class (a wnid of the 1,000, or an index 0..999); rename or remove it")
                continue
            if label >= classes:
                continue
            for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
                entries.append((prefix + folder.name + "/" + image.name, label, 0))
                sources.append(str(folder))
        layout_text = f"class folders in {directory}"
    else:
        rel_dir = directory.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        files.append(RequiredFile(prefix or "./", "ILSVRC2012_val_*.JPEG"))
        csv_path = _first_existing(root, ["LOC_val_solution.csv"])
        truth = _first_existing(root, ["ILSVRC2012_validation_ground_truth.txt", "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"])
        if csv_path is not None:
            files.append(RequiredFile("LOC_val_solution.csv", "Kaggle's validation labels"))
            for image_id, (wnid, number) in sorted(read_loc_val_solution(csv_path).items()):
                label = index_of.get(wnid, -1)
                if label < 0:
                    log.add(CLASS_LIST, csv_path, number, f"{wnid} is not one of the 1,000 ILSVRC2012 synsets")
                    continue
                if label < classes:
                    entries.append((f"{prefix}{image_id}.JPEG", label, number))
                    sources.append(str(csv_path))
            layout_text = f"flat folder {directory} with {csv_path.name}"
        elif truth is not None:
            meta = _first_existing(root, ["meta.mat", "ILSVRC2012_devkit_t12/data/meta.mat"])
            files.append(RequiredFile(truth.relative_to(root).as_posix(), "devkit validation labels (devkit ids 1..1000)"))
            files.append(RequiredFile(meta.relative_to(root).as_posix() if meta else "ILSVRC2012_devkit_t12/data/meta.mat", "devkit synsets: devkit id -> wnid"))
            if meta is None:
                log.add(MISSING_FILE, root / "ILSVRC2012_devkit_t12/data/meta.mat", None, "missing: the devkit's meta.mat maps the ids of ILSVRC2012_validation_ground_truth.txt to synsets", fatal=True)
                devkit: dict[int, str] = {}
            else:
                try:
                    devkit = read_devkit_meta(meta)
                except DataError as exc:
                    log.add(CLASS_LIST, meta, None, str(exc), fatal=True)
                    devkit = {}
            for number, text in read_lines(truth, "devkit validation labels", log):
                if not text.isdigit() or not devkit.get(int(text)):
                    if devkit:
                        log.add(LABEL_RANGE, truth, number, f"expected a devkit class id 1..1000, got {text[:20]!r}")
                    continue
                label = index_of.get(devkit[int(text)], -1)
                if 0 <= label < classes:
                    entries.append((f"{prefix}ILSVRC2012_val_{number:08d}.JPEG", label, number))
                    sources.append(str(truth))
            layout_text = f"flat folder {directory} with {truth.name} and meta.mat"
        else:
            log.add(MISSING_FILE, root / "LOC_val_solution.csv", None, "no labels for the flat validation folder: add Kaggle's LOC_val_solution.csv, or the devkit's ILSVRC2012_validation_ground_truth.txt and meta.mat", fatal=True)
            layout_text = f"flat folder {directory} without labels"
    if directory is not None:
        _check_coverage(directory, [e[1] for e in entries], classes, log, "validation images")
    split = make_split(entries, "")
    split.sources = sources
    return DatasetIndex(
        ILSVRC, root, unique_names(synsets), {"test": split}, files,
        extra={"layout": layout_text, "synsets": [w for w, _ in synsets]},
    )


def _published_ilsvrc(options: dict[str, Any]) -> dict[str, int]:
    return {"test": VAL_PER_CLASS * int(options.get("classes", DEFAULT_CLASSES))}


register_manifest(Manifest(ILSVRC, ILSVRC_SOURCE, scan_ilsvrc12_val, _published_ilsvrc, options=("classes",)))


# -- readers ----------------------------------------------------------------------------------------------------


def _root(dataset: str, data_root: Path | str | None, download: bool, source: str) -> Path:
    if download:
        raise DataError(f"{dataset} cannot be downloaded automatically: get it from {source}; then pass --data-root DIR")
    if data_root is None or not Path(data_root).expanduser().is_dir():
        raise DataError(f"{dataset} needs --data-root DIR, an existing directory holding the dataset (from {source})")
    return Path(data_root).expanduser().resolve()


def _check_common(dataset: str, image_size: object, verify: object, max_per_class: object, limit: object) -> None:
    from lnlbench.data.loading import check_reader_options

    check_reader_options(dataset, image_size, verify)
    check_positive(dataset, "max_per_class", max_per_class)
    check_positive(dataset, "limit", limit)


def _ilsvrc_split(
    root: Path, classes: int, image_size: int, max_per_class: int | None, limit: int | None,
    tolerate_bad: bool, verify: str, cache_dir: str | None, use_cache: bool,
) -> tuple[Split, SplitIndex, DatasetIndex, IssueLog]:
    from lnlbench.data.loading import lazy_split, open_cache  # torch-backed image access

    log = IssueLog(ILSVRC, tolerate=bool(tolerate_bad))
    index = scan_ilsvrc12_val(root, {"classes": classes}, log)
    cache = open_cache(root, image_size, cache_dir, use_cache)
    split = select(index.splits["test"], max_per_class, limit)
    test, kept = lazy_split(split, root, log, size=image_size, cache=cache, verify=verify, tolerate_bad=bool(tolerate_bad), dataset=ILSVRC)
    if len(kept) == 0:
        raise DataError(f"{ILSVRC}: no usable validation images under {root}; run `lnlbench prepare {ILSVRC} --data-root {root}`")
    return test, kept, index, log


@register_dataset(NAME, "WebVision 1.0 Google subset, first N classes (mini-WebVision: 50); real web-label noise; lazy")
def load_webvision(
    data_root: Path | None,
    download: bool = False,
    classes: int = DEFAULT_CLASSES,
    image_size: int = 256,
    max_per_class: int | None = None,
    limit: int | None = None,
    tolerate_bad: bool = False,
    verify: str = "exists",
    cache_dir: str | None = None,
    use_cache: bool = True,
    ilsvrc12_root: str | None = None,
) -> Dataset:
    """mini-WebVision (classes=50) or more classes: train = the Google images with their web labels
    (`noisy_train_labels`; `train.labels` are all -1, nobody checked them), test = WebVision's validation images.

    ilsvrc12_root: also load the ILSVRC2012 validation images of the same classes, as
    `extra["eval_splits"]["ilsvrc12-val"]`. Other options as for clothing1m.
    """
    classes = check_classes(NAME, classes)
    _check_common(NAME, image_size, verify, max_per_class, limit)
    root = _root(NAME, data_root, download, SOURCE)
    import torch

    from lnlbench.data.loading import lazy_split, open_cache  # torch-backed image access

    log = IssueLog(NAME, tolerate=bool(tolerate_bad))
    index = scan_webvision(root, {"classes": classes}, log)
    cache = open_cache(root, image_size, cache_dir, use_cache)
    splits, kept = {}, {}
    for name, split in index.splits.items():
        split = select(split, max_per_class, limit)
        splits[name], kept[name] = lazy_split(split, root, log, size=image_size, cache=cache, verify=verify, tolerate_bad=bool(tolerate_bad), dataset=NAME)
        if len(kept[name]) == 0:
            raise DataError(f"{NAME}: no usable images in split {name} under {root}; run `lnlbench prepare {NAME} --data-root {root}`")
    log.warn_skipped()
    eval_splits: dict[str, Split] = {}
    skipped = list(log.issues)
    if ilsvrc12_root is not None:
        ilsvrc_root = _root(ILSVRC, ilsvrc12_root, False, ILSVRC_SOURCE)
        test, _, _, ilsvrc_log = _ilsvrc_split(ilsvrc_root, classes, image_size, max_per_class, limit, tolerate_bad, verify, None, use_cache)
        ilsvrc_log.warn_skipped()
        skipped += ilsvrc_log.issues
        eval_splits[ILSVRC] = test
    train = kept["train"]
    digest = train.digest()
    counts = Counter(train.noisy_labels.tolist())  # type: ignore[union-attr]
    return Dataset(
        name=NAME,
        classes=index.classes,
        train=splits["train"],
        test=splits["test"],
        noisy_train_labels=torch.from_numpy(train.noisy_labels.astype(np.int64)),  # type: ignore[union-attr]
        source=f"{root} [index {digest[:12]}]",
        extra={
            "eval_splits": eval_splits,
            "synsets": index.extra["synsets"],
            "clean_label_known": 0,
            "train_per_class": [counts.get(c, 0) for c in range(classes)],
            "skipped": len(skipped),
            "skipped_files": [i.describe() for i in skipped[:100]],
            "cache": str(cache.directory) if cache is not None else None,
            "index_sha256": digest,
        },
    )


@register_dataset(ILSVRC, "ILSVRC2012 validation images of ImageNet classes 0..N-1 (evaluation only: empty train split)")
def load_ilsvrc12_val(
    data_root: Path | None,
    download: bool = False,
    classes: int = DEFAULT_CLASSES,
    image_size: int = 256,
    max_per_class: int | None = None,
    limit: int | None = None,
    tolerate_bad: bool = False,
    verify: str = "exists",
    cache_dir: str | None = None,
    use_cache: bool = True,
) -> Dataset:
    """The ILSVRC2012 validation images of classes 0..classes-1 as the test split (train is empty): the second test
    set of the mini-WebVision protocol. Usually loaded through webvision's `ilsvrc12_root` option instead."""
    classes = check_classes(ILSVRC, classes)
    _check_common(ILSVRC, image_size, verify, max_per_class, limit)
    root = _root(ILSVRC, data_root, download, ILSVRC_SOURCE)
    test, kept, index, log = _ilsvrc_split(root, classes, image_size, max_per_class, limit, tolerate_bad, verify, cache_dir, use_cache)
    log.warn_skipped()
    import torch

    from lnlbench.data.loading import ImageFiles

    empty = Split(images=ImageFiles(root, [], image_size), labels=torch.zeros(0, dtype=torch.long))
    return Dataset(
        name=ILSVRC,
        classes=index.classes,
        train=empty,
        test=test,
        source=f"{root} [index {kept.digest()[:12]}]",
        extra={
            "synsets": index.extra["synsets"],
            "layout": index.extra["layout"],
            "skipped": len(log.issues),
            "skipped_files": [i.describe() for i in log.issues[:100]],
        },
    )
