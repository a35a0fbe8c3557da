"""WebVision (mini and more classes) and ILSVRC2012-val readers on tiny copies in their real on-disk layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from lnlbench.data import load_dataset
from lnlbench.data.synsets import MINI_WEBVISION_SYNSETS, imagenet_synsets, read_devkit_meta
from lnlbench.data.webvision import load_ilsvrc12_val, load_webvision
from lnlbench.errors import ConfigError, DataError
from test_clothing1m import color_of, write_jpeg, write_lines

PRESENT = 60  # classes the tiny copies hold


def build_webvision(root: Path, classes: int = PRESENT, train_per_class: int = 2, val_per_class: int = 2) -> dict:
    """A WebVision 1.0 copy: Google training images in query folders, validation images, info/ lists.

    Image number n (its colour) is 1000 * class + k for training image k, 1000 * class + 500 + k for validation.
    """
    train, val = [], []
    for c in range(classes):
        for k in range(train_per_class):
            query = f"q{2 * c + k % 2 + 1:04d}"  # WebVision has several queries per class
            key = f"google/{query}/{c:04d}{k:03d}.jpg"
            write_jpeg(root / key, 1000 * c + k, size=(30, 24))
            train.append((key, c))
        for k in range(val_per_class):
            name = f"val{len(val) + 1:06d}.jpg"
            write_jpeg(root / "val_images_256" / name, 1000 * c + 500 + k, size=(24, 30))
            val.append((name, c))
    write_lines(root / "info" / "train_filelist_google.txt", [f"{k} {c}" for k, c in train])
    write_lines(root / "info" / "val_filelist.txt", [f"{k} {c}" for k, c in val])
    synsets = [f"{wnid} {name}, more words" for wnid, name in imagenet_synsets()]
    write_lines(root / "info" / "synsets.txt", synsets)
    return {"train": train, "val": val}


def build_ilsvrc_folders(root: Path, per_class: int = 2, classes: int = PRESENT, numeric: bool = False) -> None:
    """ILSVRC2012 val as class folders: val/<wnid>/ (valprep.sh) or imagenet/val/<k>/ (DivideMix)."""
    table = imagenet_synsets()
    n = 0
    for c in list(range(classes)) + [700]:
        folder = root / "imagenet" / "val" / str(c) if numeric else root / "val" / table[c][0]
        for k in range(per_class):
            n += 1
            write_jpeg(folder / f"ILSVRC2012_val_{n:08d}.JPEG", 1000 * c + 900 + k, size=(32, 28))


def build_ilsvrc_flat(root: Path, labels: str, classes: int = PRESENT) -> None:
    """ILSVRC2012 val as distributed: one flat folder plus Kaggle's CSV or the devkit's ground truth + meta.mat.

    Image i (1-based) belongs to ImageNet class (i - 1) % classes, except every 7th image, which belongs to class
    classes + 3 (outside the selection).
    """
    table = imagenet_synsets()
    count = 2 * classes + 3
    cls = [(i - 1) % classes if i % 7 else classes + 3 for i in range(1, count + 1)]
    for i, c in enumerate(cls, start=1):
        write_jpeg(root / "ILSVRC2012_img_val" / f"ILSVRC2012_val_{i:08d}.JPEG", 1000 * c + i, size=(28, 32))
    if labels == "csv":
        rows = [f"ILSVRC2012_val_{i:08d},{table[c][0]} 1 2 20 25" for i, c in enumerate(cls, start=1)]
        write_lines(root / "LOC_val_solution.csv", ["ImageId,PredictionString"] + rows[::-1])
    else:
        # Devkit ids are a permutation of the sorted-wnid order: here id = 1000 - index.
        write_lines(root / "ILSVRC2012_validation_ground_truth.txt", [str(1000 - c) for c in cls])
        write_meta_mat(root / "ILSVRC2012_devkit_t12" / "data" / "meta.mat", {1000 - k: wnid for k, (wnid, _) in enumerate(table)})


def write_meta_mat(path: Path, ids: dict[int, str]) -> None:
    """A devkit meta.mat: a struct array `synsets` with the 1,000 leaves plus one inner node (num_children > 0)."""
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O"), ("children", "O"), ("wordnet_height", "O"), ("num_train_images", "O")]
    records = [(i, wnid, "w", "g", 0, np.zeros(0), 0, 1300) for i, wnid in sorted(ids.items())]
    records.append((1001, "n00001740", "entity", "g", 2, np.array([1, 2]), 18, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"synsets": np.array(records, dtype=dtype)})


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("webvision")
    return root, build_webvision(root)


def color_close(image: torch.Tensor, n: int) -> bool:
    return bool(np.abs(image.float().mean(dim=(1, 2)).numpy() - color_of(n)).max() < 6)


def test_embedded_mini_webvision_synsets_are_imagenet_classes_0_to_49():
    table = imagenet_synsets()
    assert len(table) == 1000
    assert list(MINI_WEBVISION_SYNSETS) == table[:50]
    assert table[0] == ("n01440764", "tench") and table[49][0] == "n01697457"


def test_mini_webvision_selects_the_first_50_classes(copy):
    root, info = copy
    data = load_dataset("webvision", root, image_size=32)
    assert data.num_classes == 50 and data.classes[0] == "tench" and data.classes[49] == "African crocodile"
    assert data.extra["synsets"] == [w for w, _ in MINI_WEBVISION_SYNSETS]
    assert (len(data.train), len(data.test)) == (100, 100)
    assert data.noisy_train_labels.tolist() == [c for _, c in info["train"] if c < 50]
    assert (data.train.labels == -1).all()  # web labels were never checked: clean labels unknown
    assert data.test.labels.tolist() == [c for _, c in info["val"] if c < 50]
    assert data.extra["train_per_class"] == [2] * 50
    assert data.extra["eval_splits"] == {}
    image = data.train.images[3]
    assert tuple(image.shape) == (3, 32, 32) and color_close(image, 1000 * 1 + 1)
    assert color_close(data.test.images[4], 1000 * 2 + 500)


def test_more_classes_and_limits(copy):
    root, _ = copy
    data = load_webvision(root, classes=60, image_size=16, max_per_class=1)
    assert data.num_classes == 60 and len(data.train) == 60 and len(data.test) == 60
    assert data.classes[55] == "green snake"
    assert len(load_webvision(root, classes=10, image_size=16, limit=7).train) == 7


def test_class_count_beyond_the_files(copy):
    root, _ = copy
    with pytest.raises(DataError, match=r"train_filelist_google\.txt: lists training images for classes 0\.\.59 only; classes=61"):
        load_webvision(root, classes=61)
    with pytest.raises(ConfigError, match="1..1000"):
        load_webvision(root, classes=1001)
    with pytest.raises(ConfigError, match="1..1000"):
        load_webvision(root, classes=0)


def test_a_class_without_images_is_named(tmp_path):
    info = build_webvision(tmp_path, classes=5, train_per_class=1, val_per_class=1)
    write_lines(tmp_path / "info" / "val_filelist.txt", [f"{k} {c}" for k, c in info["val"] if c != 2])
    with pytest.raises(DataError, match=r"val_filelist\.txt: lists no validation images for class\(es\) 2"):
        load_webvision(tmp_path, classes=5)


def test_bad_lines_missing_and_undecodable_images(tmp_path):
    info = build_webvision(tmp_path, classes=50, train_per_class=1, val_per_class=1)
    path = tmp_path / "info" / "train_filelist_google.txt"
    lines = path.read_text().splitlines()
    lines.insert(2, "google/q9999/x.jpg 1000")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train_filelist_google\.txt:3: class index 1000 is outside the declared classes 0\.\.999"):
        load_webvision(tmp_path)
    (tmp_path / info["train"][5][0]).unlink()
    (tmp_path / "val_images_256" / info["val"][7][0]).write_bytes(b"not an image")
    with pytest.warns(UserWarning, match=r"skipped 3 bad sample\(s\) \(1 label-out-of-range, 1 missing-image, 1 unreadable-image\)"):
        data = load_webvision(tmp_path, image_size=16, verify="decode", tolerate_bad=True)
    assert (len(data.train), len(data.test)) == (49, 49)
    with pytest.raises(DataError, match=r"train_filelist_google\.txt:3"):
        load_webvision(tmp_path, tolerate_bad=False)


def test_synsets_file_out_of_imagenet_order_is_named(tmp_path):
    build_webvision(tmp_path, classes=50, train_per_class=1, val_per_class=1)
    path = tmp_path / "info" / "synsets.txt"
    lines = path.read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"synsets\.txt:4: class 3 is n01494475, but ImageNet \(ILSVRC2012\) class 3 is n01491361"):
        load_webvision(tmp_path)
    path.unlink()  # without the file, ImageNet's order is used
    assert load_webvision(tmp_path, image_size=16).classes[3] == "tiger shark"


@pytest.mark.parametrize("numeric", [False, True], ids=["wnid-folders", "dividemix-index-folders"])
def test_ilsvrc12_val_class_folders(tmp_path, numeric):
    build_ilsvrc_folders(tmp_path, numeric=numeric)
    data = load_dataset("ilsvrc12-val", tmp_path, image_size=16)
    assert data.num_classes == 50 and len(data.train) == 0 and len(data.test) == 100
    labels = data.test.labels
    assert torch.bincount(labels, minlength=50).tolist() == [2] * 50  # class 700's folder is left out
    for i in (0, 33, 99):
        assert color_close(data.test.images[i], 1000 * int(labels[i]) + 900 + i % 2)
    assert len(load_ilsvrc12_val(tmp_path, classes=60, image_size=16).test) == 120


@pytest.mark.parametrize("labels", ["csv", "devkit"])
def test_ilsvrc12_val_flat_folder_with_label_files(tmp_path, labels):
    build_ilsvrc_flat(tmp_path, labels)
    data = load_ilsvrc12_val(tmp_path, image_size=16)
    names = data.test.images.relpaths
    assert len(data.test) == len([i for i in range(1, 124) if i % 7 and (i - 1) % 60 < 50])
    for k in range(len(names)):
        i = int(names[k][-13:-5])
        assert int(data.test.labels[k]) == (i - 1) % 60
    assert color_close(data.test.images[0], 1000 * int(data.test.labels[0]) + int(names[0][-13:-5]))


def test_devkit_meta_maps_ids_to_wnids(tmp_path):
    table = imagenet_synsets()
    write_meta_mat(tmp_path / "meta.mat", {1000 - k: w for k, (w, _) in enumerate(table)})
    ids = read_devkit_meta(tmp_path / "meta.mat")
    assert len(ids) == 1000 and ids[1000] == "n01440764" and ids[1] == table[999][0]


def test_ilsvrc12_val_bad_inputs(tmp_path):
    build_ilsvrc_flat(tmp_path, "devkit")
    shutil.rmtree(tmp_path / "ILSVRC2012_devkit_t12")
    with pytest.raises(DataError, match=r"meta\.mat.*maps the ids"):
        load_ilsvrc12_val(tmp_path)
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").unlink()
    with pytest.raises(DataError, match="no labels for the flat validation folder"):
        load_ilsvrc12_val(tmp_path)
    with pytest.raises(DataError, match="no ILSVRC2012 validation images found"):
        load_ilsvrc12_val(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def test_ilsvrc12_val_unknown_folder(tmp_path):
    build_ilsvrc_folders(tmp_path, per_class=1, classes=50)
    (tmp_path / "val" / "n99999999").mkdir()
    with pytest.raises(DataError, match=r"n99999999: folder name 'n99999999' is not an ILSVRC2012 class"):
        load_ilsvrc12_val(tmp_path)
    with pytest.warns(UserWarning, match="1 class-list"):
        assert len(load_ilsvrc12_val(tmp_path, tolerate_bad=True, image_size=16).test) == 50


def test_webvision_with_ilsvrc12_eval_split(copy, tmp_path):
    root, _ = copy
    build_ilsvrc_folders(tmp_path)
    data = load_webvision(root, image_size=16, ilsvrc12_root=str(tmp_path))
    extra = data.extra["eval_splits"]["ilsvrc12-val"]
    assert len(extra) == 100 and extra.labels.max() == 49 and extra.images.size == 16
    with pytest.raises(DataError, match="ilsvrc12-val needs --data-root"):
        load_webvision(root, ilsvrc12_root=str(tmp_path / "missing"))
