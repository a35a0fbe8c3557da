"""Clothing1M reader on tiny copies in the real on-disk layout (generated JPEGs, real file names and formats)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lnlbench.data import load_dataset
from lnlbench.data.clothing1m import CLASSES, load_clothing1m
from lnlbench.sampling import balanced_epoch_indices
from lnlbench.data.image_cache import CacheSpec, build_cache
from lnlbench.errors import ConfigError, DataError

NUM_CLASSES = 14


def color_of(n: int) -> tuple[int, int, int]:
    """A solid colour that identifies image number n (survives JPEG compression to within a few levels)."""
    return (40 + (37 * n) % 180, 40 + (91 * n) % 180, 40 + (53 * n) % 180)


def write_jpeg(path: Path, n: int, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color_of(n)).save(path, format="JPEG", quality=95)


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def build_clothing1m(root: Path, per_class: int = 3, annotations_subdir: bool = False) -> dict:
    """A Clothing1M copy: per class `per_class` noisy-train images, one val and one test image, one clean-train.

    In the noisy training set, image k=0 of class c has clean label (c + 1) % 14 (a wrong noisy label), k=1 has
    clean label c, the others have no clean label. Returns what the files say, for the tests to compare with.
    """
    adir = root / "annotations" if annotations_subdir else root
    n = 0
    keys: dict[str, int] = {}  # key -> image number (its colour)
    noisy_kv, clean_kv = [], []
    train, val, test, clean_train = [], [], [], []
    expected_clean = []

    def image(c: int) -> str:
        nonlocal n
        key = f"images/{n % 10}/{n % 100:02d}/{1000 + n}.jpg"
        write_jpeg(root / key, n)
        keys[key] = n
        n += 1
        return key

    for c in range(NUM_CLASSES):
        for k in range(per_class):
            key = image(c)
            train.append(key)
            noisy_kv.append(f"{key} {c}")
            if k == 0:
                clean_kv.append(f"{key} {(c + 1) % NUM_CLASSES}")
                expected_clean.append((c + 1) % NUM_CLASSES)
            elif k == 1:
                clean_kv.append(f"{key} {c}")
                expected_clean.append(c)
            else:
                expected_clean.append(-1)
    extra = image(0)  # in noisy_label_kv but not in the training list, as in the real files
    noisy_kv.append(f"{extra} 5")
    for c in range(NUM_CLASSES):
        for target in (val, test):
            key = image(c)
            target.append(key)
            clean_kv.append(f"{key} {c}")
    key = image(3)
    clean_train.append(key)
    clean_kv.append(f"{key} 3")
    write_lines(adir / "category_names_eng.txt", list(CLASSES))
    write_lines(adir / "noisy_label_kv.txt", noisy_kv)
    write_lines(adir / "clean_label_kv.txt", clean_kv)
    write_lines(adir / "noisy_train_key_list.txt", train)
    write_lines(adir / "clean_train_key_list.txt", clean_train)
    write_lines(adir / "clean_val_key_list.txt", val)
    write_lines(adir / "clean_test_key_list.txt", test)
    return {
        "keys": keys,
        "train": train,
        "val": val,
        "test": test,
        "noisy": [c for c in range(NUM_CLASSES) for _ in range(per_class)],
        "clean": expected_clean,
    }


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("clothing1m")
    return root, build_clothing1m(root)


@pytest.fixture
def fresh(tmp_path) -> tuple[Path, dict]:
    """A copy a test may damage."""
    return tmp_path, build_clothing1m(tmp_path, per_class=2)


def mean_color(image: torch.Tensor) -> np.ndarray:
    return image.float().mean(dim=(1, 2)).numpy()


def test_standard_protocol_splits_and_labels(copy):
    root, info = copy
    data = load_dataset("clothing1m", root, image_size=32)
    assert data.classes == list(CLASSES)
    assert (len(data.train), len(data.test), len(data.extra["eval_splits"]["val"])) == (42, 14, 14)
    assert data.noisy_train_labels.tolist() == info["noisy"]
    assert data.train.labels.tolist() == info["clean"]
    assert data.extra["clean_label_known"] == 28
    assert data.test.labels.tolist() == list(range(NUM_CLASSES))
    assert data.extra["eval_splits"]["val"].labels.tolist() == list(range(NUM_CLASSES))
    assert not data.train.in_memory and data.train.images.relpaths == info["train"]


def test_images_decode_lazily_to_the_listed_file(copy):
    root, info = copy
    data = load_clothing1m(root, image_size=32)
    for split, keys in ((data.train, info["train"]), (data.test, info["test"])):
        for i in (0, 7, len(keys) - 1):
            image = split.images[i]
            assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 32, 32)
            assert np.abs(mean_color(image) - color_of(info["keys"][keys[i]])).max() < 6
    assert tuple(data.train.images[-1].shape) == (3, 32, 32)


def test_max_per_class_and_limit(copy):
    root, info = copy
    data = load_clothing1m(root, image_size=32, max_per_class=1)
    assert len(data.train) == NUM_CLASSES and sorted(data.noisy_train_labels.tolist()) == list(range(NUM_CLASSES))
    assert data.train.images.relpaths == info["train"][::3]
    small = load_clothing1m(root, image_size=32, limit=5)
    assert (len(small.train), len(small.test)) == (5, 5)
    assert small.train.images.relpaths[0] == info["train"][0] and small.train.images.relpaths[-1] == info["train"][-1]
    assert small.source != data.source  # different selections hash differently (names feature caches)


def test_annotations_subdirectory_layout(tmp_path):
    build_clothing1m(tmp_path, per_class=1, annotations_subdir=True)
    data = load_clothing1m(tmp_path, image_size=16)
    assert len(data.train) == NUM_CLASSES and len(data.test) == NUM_CLASSES


def test_bad_options_and_download(copy):
    root, _ = copy
    with pytest.raises(ConfigError, match="max_per_class"):
        load_clothing1m(root, max_per_class=0)
    with pytest.raises(ConfigError, match="verify"):
        load_clothing1m(root, verify="sometimes")
    with pytest.raises(ConfigError, match="no option 'classes'"):
        load_dataset("clothing1m", root, classes=3)
    with pytest.raises(DataError, match="cannot be downloaded"):
        load_clothing1m(root, download=True)
    with pytest.raises(DataError, match="--data-root"):
        load_clothing1m(root / "nowhere")


def test_missing_annotation_file_is_named(fresh):
    root, _ = fresh
    (root / "clean_test_key_list.txt").unlink()
    with pytest.raises(DataError, match=r"clean_test_key_list\.txt.*missing annotation file"):
        load_clothing1m(root)
    with pytest.raises(DataError, match="clean_test_key_list"):
        load_clothing1m(root, tolerate_bad=True)  # a whole file missing is never tolerated


def test_key_without_image_names_file_and_line(fresh):
    root, info = fresh
    (root / info["train"][4]).unlink()
    with pytest.raises(DataError, match=r"noisy_train_key_list\.txt:5: lists images/.* does not exist"):
        load_clothing1m(root)
    with pytest.warns(UserWarning, match=r"skipped 1 bad sample\(s\) \(1 missing-image\)"):
        data = load_clothing1m(root, tolerate_bad=True)
    assert len(data.train) == 27 and info["train"][4] not in data.train.images.relpaths
    assert data.extra["skipped"] == 1 and "noisy_train_key_list.txt:5" in data.extra["skipped_files"][0]


def test_undecodable_image(fresh):
    root, info = fresh
    bad = info["test"][2]
    (root / bad).write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    with pytest.raises(DataError, match=r"clean_test_key_list\.txt:3: image .* does not decode"):
        load_clothing1m(root, verify="decode", image_size=16)
    with pytest.warns(UserWarning, match="1 unreadable-image"):
        data = load_clothing1m(root, verify="decode", image_size=16, tolerate_bad=True)
    assert len(data.test) == 13
    # Without decoding at load time, the bad image is found when read: an error naming it, or a counted black image.
    data = load_clothing1m(root, image_size=16)
    with pytest.raises(DataError, match=r"cannot decode image .*listed at .*clean_test_key_list\.txt:3"):
        data.test.images[2]
    data = load_clothing1m(root, image_size=16, tolerate_bad=True)
    with pytest.warns(UserWarning, match="black image"):
        image = data.test.images[2]
    assert int(image.sum()) == 0 and data.test.images.bad_seen == 1


def test_class_index_out_of_range_and_malformed_lines(fresh):
    root, info = fresh
    path = root / "noisy_label_kv.txt"
    lines = path.read_text().splitlines()
    lines[3] = f"{info['train'][3]} 14"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"noisy_label_kv\.txt:4: class index 14 is outside the declared classes 0\.\.13"):
        load_clothing1m(root)
    with pytest.warns(UserWarning, match="1 key-without-label, 1 label-out-of-range"):
        data = load_clothing1m(root, tolerate_bad=True)
    assert len(data.train) == 27
    lines[3] = "images/0/00/x.jpg three"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"noisy_label_kv\.txt:4: class index 'three' is not an integer"):
        load_clothing1m(root)


def test_training_key_without_noisy_label(fresh):
    root, info = fresh
    path = root / "noisy_label_kv.txt"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if not line.startswith(info["train"][0])))
    with pytest.raises(DataError, match=r"noisy_train_key_list\.txt:1: .* has no label in noisy_label_kv\.txt"):
        load_clothing1m(root)


def test_wrong_class_list_is_fatal(fresh):
    root, _ = fresh
    write_lines(root / "category_names_eng.txt", list(CLASSES[:13]))
    with pytest.raises(DataError, match=r"category_names_eng\.txt: lists 13 class names; Clothing1M has 14"):
        load_clothing1m(root, tolerate_bad=True)


def test_reader_uses_the_resized_cache(fresh):
    root, info = fresh
    relpaths = info["train"] + info["test"] + info["val"]
    report = build_cache(root, relpaths, spec=CacheSpec(size=32), workers=2, shard_size=16)
    assert report.added == len(relpaths) and not report.failed
    data = load_clothing1m(root, image_size=32)
    assert data.train.images.cached == len(data.train) and data.extra["cache"] is not None
    uncached = load_clothing1m(root, image_size=32, use_cache=False)
    for i in (0, 5, len(data.train) - 1):
        assert torch.equal(data.train.images[i], uncached.train.images[i])
    # The cache answers for images whose files are gone; a cache of another size is not used.
    shutil.rmtree(root / "images")
    assert len(load_clothing1m(root, image_size=32).train) == 28
    with pytest.raises(DataError, match="does not exist"):
        load_clothing1m(root, image_size=48)


def test_balanced_epoch_indices():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20 + [-1] * 10)
    g = torch.Generator().manual_seed(0)
    idx = balanced_epoch_indices(labels, 30, g)
    assert len(idx) == 30 and len(set(idx.tolist())) == 30
    assert torch.bincount(labels[idx], minlength=3).tolist() == [10, 10, 10]  # ceil(30 / 3) per class
    assert torch.equal(idx, balanced_epoch_indices(labels, 30, torch.Generator().manual_seed(0)))
    assert not torch.equal(idx, balanced_epoch_indices(labels, 30, torch.Generator().manual_seed(1)))
    # Each class gives ceil(n / C), then the pool is cut at random to n.
    counts = torch.bincount(labels[balanced_epoch_indices(labels, 29, g)], minlength=3)
    assert counts.sum() == 29 and counts.max() <= 10
    # A small class gives all it has; the total is then below num_samples, as in DivideMix.
    few = balanced_epoch_indices(labels, 90, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[few], minlength=3).tolist() == [30, 30, 20]
    # num_classes beyond the labels present: the quota shrinks accordingly.
    assert len(balanced_epoch_indices(labels, 14, torch.Generator().manual_seed(0), num_classes=14)) == 3


def test_balanced_epoch_indices_rejects_empty_request():
    with pytest.raises(ValueError):
        balanced_epoch_indices(torch.tensor([0, 1]), 0, torch.Generator())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(balanced_epoch_indices(torch.zeros(0, dtype=torch.long), 5, torch.Generator())) == 0
