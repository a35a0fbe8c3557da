"""Dataset readers and transforms, on fixtures written in the real on-disk formats."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import logging
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lnlbench.data import DATASETS, Dataset, Split, load_dataset
from lnlbench.data import cifar
from lnlbench.data.transforms import augment, preprocess
from lnlbench.errors import ConfigError, DataError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TRAIN_SIZES = (3, 4, 5, 2, 6)  # batches need not be equal: the readers check consistency, not official counts
N_TEST = 7


# ------------------------------------------------------------------------------------------------ format writers


def dump(path: Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def pixels(n: int, start: int) -> np.ndarray:
    """n distinct images in the official row layout: (start + k + position) mod 256."""
    return ((np.arange(n)[:, None] + start + np.arange(3072)[None, :]) % 256).astype(np.uint8)


def write_cifar10(root: Path) -> Path:
    """cifar-10-batches-py with the official keys; batch b's labels are (k + b) % 10."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    start = 0
    for b, n in enumerate(TRAIN_SIZES, 1):
        batch = {
            "batch_label": f"training batch {b} of 5",
            "labels": [(k + b) % 10 for k in range(n)],
            "data": pixels(n, start),
            "filenames": [f"img_{b}_{k}.png" for k in range(n)],
        }
        dump(d / f"data_batch_{b}", batch)
        start += n
    dump(d / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": [k % 10 for k in range(N_TEST)],
                            "data": pixels(N_TEST, 1000), "filenames": [f"t{k}.png" for k in range(N_TEST)]})
    dump(d / "batches.meta", {"label_names": CIFAR10_NAMES, "num_cases_per_batch": 10000, "num_vis": 3072})
    return d


def write_cifar100(root: Path, n_train: int = 200, n_test: int = 100) -> Path:
    """cifar-100-python with fine labels cycling over all 100 classes and coarse = fine // 5."""
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        fine = [k % 100 for k in range(n)]
        dump(d / name, {"filenames": [f"{name}{k}.png" for k in range(n)], "batch_label": f"{name} batch 1 of 1",
                        "fine_labels": fine, "coarse_labels": [f // 5 for f in fine], "data": pixels(n, 0)})
    dump(d / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                      "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return d


def rewrite(path: Path, **changes) -> None:
    batch = pickle.loads(path.read_bytes(), encoding="latin1")
    batch.update(changes)
    dump(path, batch)


# ----------------------------------------------------------------------------------------------------- CIFAR-10


def test_registry_lists_every_reader():
    assert {"cifar10", "cifar100", "folder", "digits"} <= set(DATASETS.names())
    assert DATASETS.get("digits").needs_data_root is False
    assert DATASETS.get("cifar10").needs_data_root is True


def test_cifar10_reads_counts_shapes_labels(tmp_path):
    d = write_cifar10(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert isinstance(ds, Dataset) and ds.name == "cifar10"
    assert ds.classes == CIFAR10_NAMES and ds.num_classes == 10
    assert ds.train.images.shape == (sum(TRAIN_SIZES), 3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert ds.test.images.shape == (N_TEST, 3, 32, 32)
    assert ds.train.labels.dtype == torch.int64 and ds.test.labels.dtype == torch.int64
    expected = [(k + b) % 10 for b, n in enumerate(TRAIN_SIZES, 1) for k in range(n)]
    assert ds.train.labels.tolist() == expected  # batches concatenated in order 1..5
    assert ds.test.labels.tolist() == [k % 10 for k in range(N_TEST)]
    assert ds.superclasses is None
    assert Path(ds.source) == d.resolve()


def test_cifar10_pixels_are_rgb_planes_row_major(tmp_path):
    write_cifar10(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    expected = torch.from_numpy(pixels(sum(TRAIN_SIZES), 0).reshape(-1, 3, 32, 32))
    assert torch.equal(ds.train.images, expected)
    # image 0: red plane holds positions 0..1023, so pixel (row 1, col 2) of green is (1024 + 32 + 2) % 256
    assert ds.train.images[0, 1, 1, 2].item() == (1024 + 32 + 2) % 256


def test_cifar10_accepts_the_batches_dir_as_root(tmp_path):
    d = write_cifar10(tmp_path)
    ds = load_dataset("cifar10", d)
    assert len(ds.train) == sum(TRAIN_SIZES) and Path(ds.source) == d.resolve()


def test_cifar10_reads_numpy1_python2_style_pickles(tmp_path):
    """The official files name numpy.core.multiarray (numpy 1.x); numpy 2 renamed it to numpy._core."""
    d = write_cifar10(tmp_path)
    raw = (d / "data_batch_1").read_bytes()
    if b"numpy._core.multiarray" in raw:
        (d / "data_batch_1").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    ds = load_dataset("cifar10", tmp_path)
    assert len(ds.train) == sum(TRAIN_SIZES)


def test_cifar10_missing_root_names_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", missing)
    msg = str(e.value)
    assert str(missing.resolve()) in msg and "--download" in msg and "cifar-10-python.tar.gz" in msg


def test_cifar10_root_without_dataset_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match="--download") as e:
        load_dataset("cifar10", tmp_path)
    assert str(tmp_path.resolve() / "cifar-10-batches-py") in str(e.value)


def test_cifar_without_data_root_asks_for_one():
    with pytest.raises(DataError, match="--data-root"):
        load_dataset("cifar100", None)


def test_truncated_pickle_is_a_data_error_naming_the_file(tmp_path):
    d = write_cifar10(tmp_path)
    raw = (d / "data_batch_2").read_bytes()
    (d / "data_batch_2").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as e:
        load_dataset("cifar10", tmp_path)
    assert "data_batch_2" in str(e.value) and "--download" in str(e.value)


def test_garbage_file_is_a_data_error(tmp_path):
    d = write_cifar10(tmp_path)
    (d / "test_batch").write_bytes(b"<html>404 not found</html>")
    with pytest.raises(DataError, match="test_batch"):
        load_dataset("cifar10", tmp_path)


def test_foreign_pickle_is_refused_without_running_it(tmp_path):
    d = write_cifar10(tmp_path)
    dump(d / "data_batch_1", collections.Counter(a=1))  # any global beyond numpy's array helpers
    with pytest.raises(DataError, match="data_batch_1"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"data": np.zeros((3, 3000), np.uint8)}, "shape"),
        ({"data": np.zeros((3, 3072), np.float32)}, "uint8"),
        ({"labels": [0, 1, 10]}, "out of range"),
        ({"labels": [0, -1, 2]}, "out of range"),
        ({"labels": [0, 1]}, "entries for 3 images"),
        ({"labels": [0.0, 1.0, 2.0]}, "not integers"),
    ],
)
def test_bad_batch_contents_are_data_errors(tmp_path, changes, match):
    d = write_cifar10(tmp_path)
    rewrite(d / "data_batch_1", **changes)
    with pytest.raises(DataError, match=match) as e:
        load_dataset("cifar10", tmp_path)
    assert "data_batch_1" in str(e.value)


def test_missing_key_is_named(tmp_path):
    d = write_cifar10(tmp_path)
    batch = pickle.loads((d / "data_batch_4").read_bytes(), encoding="latin1")
    del batch["labels"]
    dump(d / "data_batch_4", batch)
    with pytest.raises(DataError, match="lacks the key.*labels"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize("name", ["data_batch_3", "test_batch", "batches.meta"])
def test_missing_file_is_named(tmp_path, name):
    d = write_cifar10(tmp_path)
    (d / name).unlink()
    with pytest.raises(DataError, match="missing file") as e:
        load_dataset("cifar10", tmp_path)
    assert str(d.resolve() / name) in str(e.value)


def test_wrong_number_of_label_names(tmp_path):
    d = write_cifar10(tmp_path)
    dump(d / "batches.meta", {"label_names": CIFAR10_NAMES[:9]})
    with pytest.raises(DataError, match="expected 10"):
        load_dataset("cifar10", tmp_path)


# ----------------------------------------------------------------------------------------------------- download


def make_archive(tmp_path: Path, build) -> tuple[Path, str]:
    """A .tar.gz built from what `build(dir)` writes into a scratch folder; returns (path, md5)."""
    src = tmp_path / "src"
    build(src)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


@pytest.fixture
def local_release(tmp_path, monkeypatch):
    """Point the cifar10 reader at an archive in the official layout, served over HTTP from this machine (as the
    official host would serve it; torchvision's downloader needs an HTTP response), with its own md5."""
    import functools
    import http.server
    import threading

    archive, md5 = make_archive(tmp_path, write_cifar10)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no request lines on the test's stderr
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(archive.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
    layout = dataclasses.replace(cifar.CIFAR10, url=url, archive_md5=md5)
    monkeypatch.setattr(cifar, "CIFAR10", layout)
    yield layout
    server.shutdown()
    server.server_close()


def test_download_fetches_checks_and_extracts(tmp_path, local_release):
    root = tmp_path / "data"
    ds = load_dataset("cifar10", root, download=True)
    assert len(ds.train) == sum(TRAIN_SIZES) and (root / "cifar-10-python.tar.gz").is_file()
    assert not list(root.glob("*.part"))


def test_download_off_a_terminal_draws_no_progress_bar(tmp_path, local_release, capfd):
    """torchvision's download bar redraws with carriage returns; a log file (stderr not a terminal) must get none."""
    load_dataset("cifar10", tmp_path / "data", download=True)
    assert "\r" not in capfd.readouterr().err


def test_download_repairs_a_corrupt_copy(tmp_path, local_release, caplog):
    root = tmp_path / "data"
    load_dataset("cifar10", root, download=True)
    (root / "cifar-10-batches-py" / "data_batch_5").write_bytes(b"\x80\x02}")
    with pytest.raises(DataError):
        load_dataset("cifar10", root)
    with caplog.at_level(logging.WARNING, logger="lnlbench.data.cifar"):
        ds = load_dataset("cifar10", root, download=True)
    assert len(ds.train) == sum(TRAIN_SIZES)
    assert "data_batch_5" in caplog.text


def test_download_with_wrong_md5_is_refused(tmp_path, monkeypatch, local_release):
    monkeypatch.setattr(cifar, "CIFAR10", dataclasses.replace(local_release, archive_md5="0" * 32))
    root = tmp_path / "data"
    with pytest.raises(DataError, match="md5"):
        load_dataset("cifar10", root, download=True)
    assert not (root / "cifar-10-batches-py").exists() and not list(root.glob("*.tar.gz*"))


def test_unreachable_download_fails_fast(tmp_path, monkeypatch):
    # Port 9 (discard) on localhost refuses connections at once; no outside network is touched.
    layout = dataclasses.replace(cifar.CIFAR10, url="http://127.0.0.1:9/cifar-10-python.tar.gz")
    monkeypatch.setattr(cifar, "CIFAR10", layout)
    with pytest.raises(DataError, match="could not download"):
        load_dataset("cifar10", tmp_path / "data", download=True)


def test_archive_with_path_traversal_is_refused(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"owned"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DataError, match="refusing"):
        cifar.safe_extract(archive, dest, "cifar10")
    assert not (tmp_path / "escaped.txt").exists()


def test_archive_with_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DataError, match="refusing"):
        cifar.safe_extract(archive, dest, "cifar10")
    assert not (dest / "cifar-10-batches-py" / "data_batch_1").exists()


# ---------------------------------------------------------------------------------------------------- CIFAR-100


def test_cifar100_reads_fine_labels_and_superclasses(tmp_path):
    d = write_cifar100(tmp_path)
    ds = load_dataset("cifar100", tmp_path)
    assert ds.num_classes == 100 and ds.classes[:2] == ["fine0", "fine1"]
    assert ds.train.images.shape == (200, 3, 32, 32) and ds.test.images.shape == (100, 3, 32, 32)
    assert ds.train.labels.tolist() == [k % 100 for k in range(200)]
    assert ds.superclasses == [f // 5 for f in range(100)]
    assert ds.extra["superclass_names"][3] == "coarse3"
    assert Path(ds.source) == d.resolve()


def test_cifar100_inconsistent_superclass_is_a_data_error(tmp_path):
    d = write_cifar100(tmp_path)
    coarse = [(k % 100) // 5 for k in range(200)]
    coarse[7] = (coarse[7] + 1) % 20  # fine class 7 now has two coarse labels
    rewrite(d / "train", coarse_labels=coarse)
    with pytest.raises(DataError, match="fine class 7 carries several coarse labels"):
        load_dataset("cifar100", tmp_path)


def test_cifar100_coarse_label_out_of_range(tmp_path):
    d = write_cifar100(tmp_path)
    rewrite(d / "test", coarse_labels=[20] * 100)
    with pytest.raises(DataError, match="coarse_labels.*out of range"):
        load_dataset("cifar100", tmp_path)


def test_cifar100_missing_coarse_labels_key(tmp_path):
    d = write_cifar100(tmp_path)
    batch = pickle.loads((d / "train").read_bytes(), encoding="latin1")
    del batch["coarse_labels"]
    dump(d / "train", batch)
    with pytest.raises(DataError, match="coarse_labels"):
        load_dataset("cifar100", tmp_path)


# --------------------------------------------------------------------------------------------- real CIFAR-10 copy


def test_real_cifar10_mini():
    root = SHARED_DATA / "cifar10-mini"
    if not (root / "cifar-10-batches-py").is_dir():
        pytest.skip(f"real CIFAR-10 copy not found at {root}")
    ds = load_dataset("cifar10", root)
    assert len(ds.train) == 5000 and len(ds.test) == 2000
    assert ds.classes == CIFAR10_NAMES
    assert ds.train.images.shape == (5000, 3, 32, 32) and ds.train.images.dtype == torch.uint8
    assert set(ds.train.labels.tolist()) == set(range(10)) and set(ds.test.labels.tolist()) == set(range(10))
    assert 100 < ds.train.images.float().mean() < 160  # natural images, not blank planes


# ------------------------------------------------------------------------------------------------------- folder

COLORS = {"bird": (200, 10, 10), "cat": (10, 200, 10), "dog": (10, 10, 200)}


def write_png(path: Path, color, size=(6, 5), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


@pytest.fixture
def tree(tmp_path) -> Path:
    """train/{bird,cat,dog} with 3 PNGs each (one class gets a JPEG too), test/ with cat and dog only."""
    root = tmp_path / "imgs"
    for name, color in COLORS.items():
        for k in range(3):
            write_png(root / "train" / name / f"{k}.png", color)
    write_png(root / "train" / "dog" / "3.jpg", (10, 10, 200))
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    write_png(root / "train" / "dog" / ".hidden.png", (0, 0, 0))
    for name in ("cat", "dog"):
        for k in range(2):
            write_png(root / "test" / name / f"{k}.png", COLORS[name])
    return root


def test_folder_reads_classes_labels_pixels(tree):
    ds = load_dataset("folder", tree)
    assert ds.classes == ["bird", "cat", "dog"]
    assert ds.train.images.shape == (10, 3, 5, 6) and ds.train.images.dtype == torch.uint8
    assert ds.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert ds.test.labels.tolist() == [1, 1, 2, 2] and ds.test.labels.dtype == torch.int64
    assert ds.train.images[0, :, 2, 3].tolist() == list(COLORS["bird"])  # PNG is lossless
    assert ds.test.images[0, :, 0, 0].tolist() == list(COLORS["cat"])
    jpeg = ds.train.images[9].float().mean(dim=(1, 2))
    assert torch.allclose(jpeg, torch.tensor(COLORS["dog"], dtype=torch.float32), atol=6)
    assert ds.extra["skipped"] == 0 and Path(ds.source) == tree.resolve()


def test_folder_gray_images_become_rgb(tree):
    write_png(tree / "train" / "bird" / "9.png", 77, mode="L")
    ds = load_dataset("folder", tree)
    assert ds.train.images[3, :, 0, 0].tolist() == [77, 77, 77]


def test_folder_max_per_class_takes_the_first_files(tree):
    ds = load_dataset("folder", tree, max_per_class=1)
    assert ds.train.labels.tolist() == [0, 1, 2] and ds.test.labels.tolist() == [1, 2]


def test_folder_mixed_sizes_need_image_size(tree):
    write_png(tree / "train" / "cat" / "big.png", (1, 2, 3), size=(9, 9))
    with pytest.raises(DataError, match="image_size"):
        load_dataset("folder", tree)
    ds = load_dataset("folder", tree, image_size=4)
    assert ds.train.images.shape == (11, 3, 4, 4) and ds.test.images.shape == (4, 3, 4, 4)
    assert ds.train.images[0, :, 1, 1].tolist() == list(COLORS["bird"])  # a constant image stays constant


def test_folder_unreadable_image_strict_and_skipped(tree):
    bad = tree / "train" / "cat" / "1.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated PNG
    with pytest.raises(DataError, match="skip_bad=True") as e:
        load_dataset("folder", tree)
    assert str(bad) in str(e.value)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        ds = load_dataset("folder", tree, skip_bad=True)
    assert ds.extra["skipped"] == 1
    assert ds.train.labels.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert ds.train.images.shape[0] == 9


def test_folder_test_class_missing_from_train(tree):
    write_png(tree / "test" / "eel" / "0.png", (1, 1, 1))
    with pytest.raises(DataError, match="eel"):
        load_dataset("folder", tree)


def test_folder_missing_root_and_split(tmp_path, tree):
    with pytest.raises(DataError) as e:
        load_dataset("folder", tmp_path / "absent")
    assert str((tmp_path / "absent").resolve()) in str(e.value)
    (tree / "test").rename(tree / "val")
    with pytest.raises(DataError, match="no test/ folder"):
        load_dataset("folder", tree)


def test_folder_bad_options(tree):
    with pytest.raises(ConfigError, match="image_size"):
        load_dataset("folder", tree, image_size=0)
    with pytest.raises(ConfigError, match="no option 'size'"):
        load_dataset("folder", tree, size=3)
    with pytest.raises(DataError, match="cannot be downloaded"):
        load_dataset("folder", tree, download=True)


def test_folder_reads_real_cifar_jpegs(tmp_path):
    """A few files of the real JPEG tree (train/<class>/NNNN.jpg come first in the archive), into tmp_path."""
    archive = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"real CIFAR-10 JPEG tree not found at {archive}")
    wanted = {"cat": 3, "ship": 2}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and parts[0] == "train" and wanted.get(parts[1], 0) > 0:
                wanted[parts[1]] -= 1
                split = "test" if parts[1] == "cat" and wanted["cat"] == 0 else "train"  # one cat serves as test
                target = tmp_path / split / parts[1] / parts[2]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                if not any(wanted.values()):
                    break
    ds = load_dataset("folder", tmp_path)
    assert ds.classes == ["cat", "ship"]
    assert ds.train.images.shape == (4, 3, 32, 32) and ds.test.labels.tolist() == [0]
    assert ds.train.labels.tolist() == [0, 0, 1, 1]
    assert ds.train.images.float().std() > 10  # real pictures, not flat fills


# ------------------------------------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_digits_split_sizes_and_format(digits):
    assert digits.classes == [str(d) for d in range(10)]
    assert digits.train.images.shape == (1297, 3, 8, 8) and digits.test.images.shape == (500, 3, 8, 8)
    assert digits.train.images.dtype == torch.uint8 and digits.train.labels.dtype == torch.int64
    assert int(digits.train.images.max()) == 255 and int(digits.train.images.min()) == 0
    assert torch.equal(digits.train.images[:, 0], digits.train.images[:, 2])  # gray replicated to RGB


def test_digits_split_is_stratified_and_deterministic(digits):
    assert torch.bincount(digits.test.labels, minlength=10).tolist() == [50] * 10
    again = load_dataset("digits")
    assert torch.equal(again.train.labels, digits.train.labels) and torch.equal(again.test.images, digits.test.images)


def test_digits_values_match_sklearn(digits):
    from sklearn.datasets import load_digits

    from lnlbench.data.digits import SPLIT_SEED, TEST_PER_CLASS, stratified_split

    bunch = load_digits()
    train_idx, test_idx = stratified_split(bunch.target, TEST_PER_CLASS, SPLIT_SEED)
    assert len(set(train_idx) | set(test_idx)) == 1797 and not set(train_idx) & set(test_idx)
    expected = (bunch.images[test_idx].astype(np.int64) * 255 // 16).astype(np.uint8)
    assert np.array_equal(digits.test.images[:, 1].numpy(), expected)
    assert digits.test.labels.tolist() == bunch.target[test_idx].tolist()


# --------------------------------------------------------------------------------------------------- transforms


def test_preprocess_resizes_and_normalises_a_constant_image():
    images = torch.empty(2, 3, 8, 8, dtype=torch.uint8)
    images[:, 0], images[:, 1], images[:, 2] = 255, 0, 51
    out = preprocess(images, 16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.2))
    assert out.shape == (2, 3, 16, 16) and out.dtype == torch.float32
    assert torch.allclose(out[:, 0], torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(out[:, 1], torch.tensor(-2.0), atol=1e-5)
    assert torch.allclose(out[:, 2], torch.tensor((0.2 - 0.5) / 0.2), atol=1e-5)


def test_preprocess_gray_to_rgb_and_same_size_is_exact():
    images = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
    out = preprocess(images, 4, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert out.shape == (1, 3, 4, 4)
    assert torch.allclose(out[0, 2], images[0, 0].float() / 255)


def test_preprocess_rejects_float_input():
    with pytest.raises(TypeError, match="uint8"):
        preprocess(torch.zeros(1, 3, 4, 4), 4, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _windows(image: torch.Tensor, pad: int, mode: str) -> list[torch.Tensor]:
    """Every crop (and its mirror) that pad-then-crop-then-flip can produce from one C x H x W image."""
    h, w = image.shape[1:]
    padded = F.pad(image.float().unsqueeze(0), (pad,) * 4, mode=mode)[0]
    crops = [padded[:, y : y + h, x : x + w] for y in range(2 * pad + 1) for x in range(2 * pad + 1)]
    return crops + [c.flip(2) for c in crops]


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_augment_outputs_are_padded_crops_or_their_flips(mode):
    images = torch.randint(1, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out = augment(images, torch.Generator().manual_seed(5), pad=2, pad_mode=mode)
    assert out.shape == images.shape and out.dtype == torch.uint8
    for image, result in zip(images, out):
        assert any(torch.equal(result.float(), c) for c in _windows(image, 2, mode))


def test_augment_is_deterministic_in_the_generator():
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a = augment(images, torch.Generator().manual_seed(3))
    b = augment(images, torch.Generator().manual_seed(3))
    c = augment(images, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_flips_without_padding():
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = augment(images, torch.Generator().manual_seed(0), pad=0)
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, images)]
    kept = [torch.equal(o, i) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)
    assert torch.equal(augment(images, torch.Generator().manual_seed(0), pad=0, flip=False), images)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_augment_crops_at_the_offsets_drawn_in_order_y_x_flip(mode):
    """The draw order is part of every published record's augmentation: y offsets, x offsets, then flips."""
    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    out = augment(images, torch.Generator().manual_seed(7), pad=2, pad_mode=mode)
    g = torch.Generator().manual_seed(7)
    ys, xs = torch.randint(0, 5, (8,), generator=g), torch.randint(0, 5, (8,), generator=g)
    flips = torch.rand(8, generator=g) < 0.5
    padded = F.pad(images.float(), (2,) * 4, mode=mode)
    for i in range(8):
        crop = padded[i, :, ys[i] : ys[i] + 8, xs[i] : xs[i] + 8]
        assert torch.equal(out[i].float(), crop.flip(2) if flips[i] else crop)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_transforms_on_cuda_match_the_cpu_and_never_make_the_host_wait():
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    on_gpu = images.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # a blocking copy or .item() inside raises
    try:
        crops = augment(on_gpu, torch.Generator().manual_seed(3))
        ready = preprocess(crops, 16, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(crops.cpu(), augment(images, torch.Generator().manual_seed(3)))
    expected = preprocess(augment(images, torch.Generator().manual_seed(3)), 16, (0.5, 0.4, 0.3), (0.2, 0.3, 0.4))
    assert torch.allclose(ready.cpu(), expected, atol=1e-5)


def test_augment_needs_a_cpu_generator_and_uint8():
    with pytest.raises(TypeError):
        augment(torch.zeros(1, 3, 4, 4), torch.Generator())
    with pytest.raises(ValueError, match="pad_mode"):
        augment(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.Generator(), pad_mode="wrap")


def test_split_reports_in_memory():
    s = Split(images=torch.zeros(2, 3, 4, 4, dtype=torch.uint8), labels=torch.zeros(2, dtype=torch.int64))
    assert len(s) == 2 and s.in_memory
