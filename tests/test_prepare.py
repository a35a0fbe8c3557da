"""`lnlbench prepare` on complete and damaged tiny copies; the resized cache; batch loading and crops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lnlbench.cli import main
from lnlbench.data.image_cache import CacheSpec, ImageCache, build_cache, decode_square, find_cache
from lnlbench.data.loading import ImageFiles, center_crop, prefetch_batches, random_crop_flip, suggested_loader
from lnlbench.data.webvision import load_webvision
from lnlbench.errors import ConfigError, DataError
from test_clothing1m import build_clothing1m, color_of, write_jpeg
from test_webvision import build_ilsvrc_folders, build_webvision


def prepare(capsys, *args: str) -> tuple[int, dict]:
    code = main(["prepare", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.fixture
def clothing(tmp_path) -> tuple[Path, dict]:
    return tmp_path, build_clothing1m(tmp_path, per_class=2)


def test_complete_clothing1m_copy(clothing, capsys):
    root, _ = clothing
    code, report = prepare(capsys, "clothing1m", "--data-root", str(root))
    assert code == 0 and report["complete"] and report["problems"] == []
    assert {k: (v["listed"], v["present"]) for k, v in report["splits"].items()} == {"train": (28, 28), "val": (14, 14), "test": (14, 14)}
    assert report["splits"]["test"]["published"] == 10_526 and report["classes"] == 14
    assert any("published size is 1000000" in note for note in report["notes"])
    assert all(f["present"] for f in report["files"])
    code = main(["prepare", "clothing1m", "--data-root", str(root)])
    text = capsys.readouterr().out
    assert code == 0 and "COMPLETE" in text and "noisy_train_key_list.txt" in text
    code, report = prepare(capsys, "clothing1m", "--data-root", str(root), "--strict-counts")
    assert code == 1 and report["problem_counts"] == {"count": 3}


def test_planted_faults_are_reported(clothing, capsys):
    root, info = clothing
    (root / info["train"][6]).unlink()  # a listed image removed
    (root / info["val"][1]).write_bytes(b"\xff\xd8 truncated")  # an image corrupted
    (root / "clean_train_key_list.txt").unlink()  # optional file: reported, not a problem
    lines = (root / "clean_label_kv.txt").read_text().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0] + " 99"  # a class index out of range
    (root / "clean_label_kv.txt").write_text("\n".join(lines) + "\n")
    code, report = prepare(capsys, "clothing1m", "--data-root", str(root), "--decode", "--image-size", "32")
    assert code == 1 and not report["complete"]
    assert report["problem_counts"] == {"missing-image": 1, "unreadable-image": 1, "label-out-of-range": 1}
    where = {(p["kind"], Path(p["path"]).name, p["line"]) for p in report["problems"]}
    assert ("missing-image", "noisy_train_key_list.txt", 7) in where
    assert ("label-out-of-range", "clean_label_kv.txt", 3) in where
    unreadable = next(p for p in report["problems"] if p["kind"] == "unreadable-image")
    assert unreadable["path"].endswith(info["val"][1]) and "clean_val_key_list.txt:2" in unreadable["message"]
    assert report["splits"]["train"] == {"listed": 28, "present": 27, "missing": 1, "unreadable": 0, "published": 1_000_000}
    assert [f["present"] for f in report["files"] if f["path"] == "clean_train_key_list.txt"] == [False]
    # A missing required annotation file is listed too, and the rest is still checked.
    (root / "noisy_label_kv.txt").unlink()
    code, report = prepare(capsys, "clothing1m", "--data-root", str(root))
    kinds = report["problem_counts"]
    assert code == 1 and kinds == {"missing-file": 1, "key-without-label": 28, "label-out-of-range": 1}
    assert report["splits"]["train"]["listed"] == 0 and report["splits"]["val"]["present"] == 14
    assert report["decoded"] is False


def test_build_cache_reports_unreadable_images_and_feeds_the_reader(tmp_path, capsys):
    info = build_webvision(tmp_path, classes=50, train_per_class=2, val_per_class=1)
    (tmp_path / info["train"][9][0]).write_bytes(b"garbage")
    code, report = prepare(capsys, "webvision", "--data-root", str(tmp_path), "--build-cache", "--image-size", "24", "--workers", "2")
    assert code == 1 and report["problem_counts"] == {"unreadable-image": 1}
    assert report["cache"]["added"] == 149 and list(report["cache"]["failed"]) == [info["train"][9][0]]
    assert report["splits"]["test"]["published"] == 2500
    # The reader finds the cache, reads every good image from it and leaves out the one the cache could not decode.
    with pytest.warns(UserWarning, match="1 unreadable-image"):
        data = load_webvision(tmp_path, image_size=24, tolerate_bad=True)
    assert len(data.train) == 99 and data.train.images.cached == 99 and data.test.images.cached == 50
    with pytest.raises(DataError, match=r"train_filelist_google\.txt:10: image .* does not decode .*recorded by the cache"):
        load_webvision(tmp_path, image_size=24)
    # Building again adds nothing; a JPEG-encoded cache is separate.
    code, report = prepare(capsys, "webvision", "--data-root", str(tmp_path), "--build-cache", "--image-size", "24")
    assert report["cache"]["already"] == 149 and report["cache"]["added"] == 0
    code, report = prepare(capsys, "webvision", "--data-root", str(tmp_path), "--build-cache", "--image-size", "24", "--encoding", "jpeg", "--classes", "10")
    assert report["cache"]["added"] == 29 and report["cache"]["directory"].endswith("24px-jpeg-q90")


def test_webvision_and_ilsvrc_reports(tmp_path, capsys):
    build_webvision(tmp_path / "wv", classes=50, train_per_class=1, val_per_class=1)
    code, report = prepare(capsys, "webvision", "--data-root", str(tmp_path / "wv"), "--classes", "50")
    assert code == 0 and report["splits"]["train"]["listed"] == 50 and report["classes"] == 50
    code, report = prepare(capsys, "webvision", "--data-root", str(tmp_path / "wv"), "--classes", "51")
    assert code == 1 and report["problem_counts"] == {"class-list": 2}  # both lists stop at class 49
    build_ilsvrc_folders(tmp_path / "in", per_class=1, classes=50)
    code, report = prepare(capsys, "ilsvrc12-val", "--data-root", str(tmp_path / "in"))
    assert code == 0 and report["splits"]["test"]["listed"] == 50 and "class folders" in report["layout"]


def test_prepare_bad_arguments(tmp_path, capsys):
    assert main(["prepare", "cifar10", "--data-root", str(tmp_path)]) == 2
    assert "clothing1m, ilsvrc12-val, webvision" in capsys.readouterr().err
    assert main(["prepare", "clothing1m", "--data-root", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["prepare", "clothing1m", "--data-root", str(tmp_path), "--classes", "5"]) == 2
    assert "unknown option(s) classes" in capsys.readouterr().err


# -- the cache itself -------------------------------------------------------------------------------------------


def test_decode_square_keeps_the_central_square(tmp_path):
    from PIL import Image

    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[:, :20] = 255  # the left quarter is white: outside the central 40 x 40 square
    image[:, 20:60, 1] = 200
    Image.fromarray(image).save(tmp_path / "wide.png")
    out = decode_square(tmp_path / "wide.png", 20)
    assert out.shape == (3, 20, 20) and out.dtype == np.uint8
    assert out[0].mean() < 5 and out[0, :, 2:].max() == 0 and abs(int(out[1].mean()) - 200) <= 2


def test_cache_spec_and_mismatch(tmp_path):
    with pytest.raises(ConfigError, match="encoding"):
        CacheSpec(encoding="png")
    with pytest.raises(ConfigError, match="size"):
        CacheSpec(size=2)
    write_jpeg(tmp_path / "a.jpg", 1)
    build_cache(tmp_path, ["a.jpg"], spec=CacheSpec(size=16))
    meta = tmp_path / ".lnlbench-cache" / "16px-raw" / "cache.json"
    meta.write_text(meta.read_text().replace('"quality": 90', '"quality": 80'))
    with pytest.raises(DataError, match="built with different settings"):
        build_cache(tmp_path, ["a.jpg"], spec=CacheSpec(size=16))


def test_interrupted_shards_are_ignored_and_rebuilt(tmp_path):
    names = [f"{i}.jpg" for i in range(6)]
    for i, name in enumerate(names):
        write_jpeg(tmp_path / name, i)
    build_cache(tmp_path, names, tmp_path / "c", CacheSpec(size=16), workers=2, shard_size=2)
    directory = tmp_path / "c" / "16px-raw"
    (directory / "shard-00001.bin").write_bytes(b"\0" * 5)  # a shard cut short
    cache = ImageCache.open(directory)
    assert len(cache) == 4 and sorted(cache.key_set()) == sorted(names[:2] + names[4:])
    report = build_cache(tmp_path, names, tmp_path / "c", CacheSpec(size=16), workers=2, shard_size=2)
    assert (report.already, report.added) == (4, 2)
    cache = find_cache(tmp_path, 16, tmp_path / "c")
    assert len(cache) == 6 and find_cache(tmp_path, 32, tmp_path / "c") is None
    rows = cache.rows(names + ["absent.jpg"])
    assert rows[-1] == -1
    for i, row in enumerate(rows[:-1]):
        assert torch.equal(cache.read(int(row)), torch.from_numpy(decode_square(tmp_path / names[i], 16)))


def test_jpeg_cache_is_close_to_raw(tmp_path):
    write_jpeg(tmp_path / "a.jpg", 7, size=(50, 40))
    build_cache(tmp_path, ["a.jpg"], spec=CacheSpec(size=32, encoding="jpeg", quality=95))
    cache = find_cache(tmp_path, 32)
    image = cache.read(0)
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert np.abs(image.float().mean(dim=(1, 2)).numpy() - color_of(7)).max() < 6


def test_process_pool_build(tmp_path):
    names = [f"{i}.jpg" for i in range(4)]
    for i, name in enumerate(names):
        write_jpeg(tmp_path / name, i)
    report = build_cache(tmp_path, names, spec=CacheSpec(size=16), workers=1, shard_size=2, pool="process")
    assert report.added == 4 and len(find_cache(tmp_path, 16)) == 4


# -- batch loading and crops ------------------------------------------------------------------------------------


def test_prefetch_batches_in_order_with_workers(tmp_path):
    names = [f"{i}.jpg" for i in range(10)]
    for i, name in enumerate(names):
        write_jpeg(tmp_path / name, i, size=(20, 20))
    images = ImageFiles(tmp_path, names, 16)
    order = [torch.tensor([3, 1, 4]), torch.tensor([9, 0]), torch.tensor([5, 6, 7, 8, 2])]
    for workers, threads in ((0, 0), (2, 0), (0, 2)):
        got = list(prefetch_batches(images, order, workers=workers, threads=threads, pin_memory=False))
        assert [idx.tolist() for idx, _ in got] == [o.tolist() for o in order]
        for idx, batch in got:
            assert batch.shape == (len(idx), 3, 16, 16) and batch.dtype == torch.uint8
            assert torch.equal(batch, torch.stack([images[int(i)] for i in idx]))
    assert list(prefetch_batches(images, [], workers=0)) == []
    # Raw-cached images are read by threads; images to decode by worker processes.
    assert suggested_loader(images)[1] == 0
    build_cache(tmp_path, names, spec=CacheSpec(size=16))
    cached = ImageFiles(tmp_path, names, 16, find_cache(tmp_path, 16))
    assert suggested_loader(cached) == (0, 4)
    got = list(prefetch_batches(cached, order, pin_memory=False))
    assert all(torch.equal(batch, torch.stack([images[int(i)] for i in idx])) for idx, batch in got)


def test_center_and_random_crops():
    batch = torch.arange(2 * 3 * 6 * 6, dtype=torch.int64).reshape(2, 3, 6, 6).to(torch.uint8)
    assert torch.equal(center_crop(batch, 4), batch[:, :, 1:5, 1:5])
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(batch, 4, g)
    assert out.shape == (2, 3, 4, 4)
    for b in range(2):  # every output is some 4 x 4 window of its own image, possibly mirrored
        windows = [batch[b, :, t : t + 4, l : l + 4] for t in range(3) for l in range(3)]
        assert any(torch.equal(out[b], w) or torch.equal(out[b], w.flip(2)) for w in windows)
    again = random_crop_flip(batch, 4, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    flips = random_crop_flip(batch.repeat(32, 1, 1, 1), 6, torch.Generator().manual_seed(1))
    mirrored = sum(torch.equal(flips[i], batch[i % 2].flip(2)) for i in range(64))
    assert 10 < mirrored < 54  # about half are mirrored; a full-size crop is otherwise the image itself
    with pytest.raises(ValueError, match="larger than the images"):
        center_crop(batch, 7)
