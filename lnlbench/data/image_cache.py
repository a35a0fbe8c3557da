"""A resized image cache: every image decoded once to a square uint8 S x S crop and stored in memory-mapped shards.

Layout of one cache (`<cache root>/<S>px-<encoding>/`, the cache root being `<data root>/.lnlbench-cache` unless
given):

    cache.json            {"format": 1, "size": S, "encoding": "raw" | "jpeg", "quality": q, "geometry": ...}
    shard-00000.bin       the images of shard 0, back to back
    shard-00000.json      {"keys": [relative path, ...], "offsets": [...], "nbytes": [...], "failed": {key: error}}

`raw` stores each image as 3 x S x S planar uint8 (C, H, W), so reading one is a slice of a memory map and a
copy; `jpeg` stores it re-encoded (quality q), about 10x smaller and decoded on read (for sets like Clothing1M whose
raw cache would not fit on disk). A shard's .json is written after its .bin, both by rename, so a cache interrupted
while building keeps every finished shard and is completed by building again.

Geometry: the shorter side is resized to S (bilinear, antialiased by PIL) and the central S x S square kept, the
image a `Resize(S)` + `CenterCrop(S)` pipeline sees; random crops of the backbone's size are then taken inside it.
"""

from __future__ import annotations

from typing import BinaryIO

import io
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lnlbench.atomic import atomic_write
from lnlbench.errors import ConfigError, DataError

CACHE_FORMAT = 1
CACHE_DIRNAME = ".lnlbench-cache"
ENCODINGS = ("raw", "jpeg")
GEOMETRY = "shorter side resized to size, central square kept"


@dataclass(frozen=True)
class CacheSpec:
    """What a cache stores: square side in pixels, encoding, JPEG quality (for `jpeg`)."""

    size: int = 256
    encoding: str = "raw"
    quality: int = 90

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 8 <= self.size <= 4096:
            raise ConfigError(f"cache size must be an integer number of pixels in 8..4096, got {self.size!r}")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"cache encoding must be one of {', '.join(ENCODINGS)}, got {self.encoding!r}")
        if not 1 <= int(self.quality) <= 100:
            raise ConfigError(f"cache JPEG quality must be in 1..100, got {self.quality!r}")

    @property
    def dirname(self) -> str:
        return f"{self.size}px-{self.encoding}" + (f"-q{self.quality}" if self.encoding == "jpeg" else "")

    def to_json(self) -> dict:
        return {"format": CACHE_FORMAT, **asdict(self), "geometry": GEOMETRY}


def cache_root(data_root: Path, cache_dir: str | Path | None = None) -> Path:
    """Where caches of `data_root` live: `cache_dir` when given, else `<data_root>/.lnlbench-cache`."""
    return Path(cache_dir).expanduser() if cache_dir is not None else Path(data_root) / CACHE_DIRNAME


def decode_square(path: Path | str, size: int) -> np.ndarray:
    """An image file as a 3 x size x size uint8 array: shorter side resized to `size`, central square kept.

    JPEGs are decoded at a reduced scale (libjpeg's 1/2, 1/4, 1/8 via `draft`) when that still leaves at least
    `size` pixels on both sides, which makes large photos several times faster to decode.
    """
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("RGB", (size, size))
        rgb = img.convert("RGB")  # loads the pixels: a truncated or corrupt file fails here
    w, h = rgb.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    if (w, h) != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side))
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))


def encode(image: np.ndarray, spec: CacheSpec) -> bytes:
    """The bytes a cache stores for one 3 x S x S image."""
    if spec.encoding == "raw":
        return image.tobytes()
    buf = io.BytesIO()
    Image.fromarray(image.transpose(1, 2, 0)).save(buf, format="JPEG", quality=int(spec.quality))
    return buf.getvalue()


def _shard_paths(directory: Path, number: int) -> tuple[Path, Path]:
    return directory / f"shard-{number:05d}.bin", directory / f"shard-{number:05d}.json"


def build_shard(root: str, relpaths: Sequence[str], directory: str, number: int, spec_json: dict) -> dict:
    """Decode `relpaths` (relative to `root`) into shard `number` of the cache in `directory`; return its index.

    Runs in a worker thread or process. Unreadable images are listed under "failed" with their error.
    """
    spec = CacheSpec(size=spec_json["size"], encoding=spec_json["encoding"], quality=spec_json["quality"])
    bin_path, json_path = _shard_paths(Path(directory), number)
    index: dict = {"keys": [], "offsets": [], "nbytes": [], "failed": {}}

    def write_shard(out: BinaryIO) -> None:
        offset = 0
        for rel in relpaths:
            try:
                data = encode(decode_square(Path(root) / rel, spec.size), spec)
            except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
                index["failed"][rel] = f"{type(exc).__name__}: {exc}"
                continue
            out.write(data)
            index["keys"].append(rel)
            index["offsets"].append(offset)
            index["nbytes"].append(len(data))
            offset += len(data)

    atomic_write(bin_path, write_shard)
    atomic_write(json_path, lambda handle: handle.write(json.dumps(index).encode()))
    return index


@dataclass
class BuildReport:
    """What one `build_cache` call did."""

    directory: Path
    spec: CacheSpec
    requested: int
    already: int  # cached before this call
    added: int
    failed: dict[str, str] = field(default_factory=dict)  # relative path -> error
    seconds: float = 0.0
    bytes_written: int = 0

    def to_json(self) -> dict:
        return {
            "directory": str(self.directory),
            "spec": self.spec.to_json(),
            "requested": self.requested,
            "already": self.already,
            "added": self.added,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "bytes_written": self.bytes_written,
            "images_per_s": round(self.added / self.seconds, 1) if self.seconds > 0 else None,
        }


def _write_spec(directory: Path, spec: CacheSpec) -> None:
    meta = directory / "cache.json"
    if meta.is_file():
        try:
            found = json.loads(meta.read_text())
        except (OSError, ValueError):
            found = None
        if found != spec.to_json():
            raise DataError(
                f"the cache in {directory} was built with different settings ({meta} says {found}); "
                f"delete that directory or pass another --cache-dir"
            )
        return
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(meta, lambda handle: handle.write(json.dumps(spec.to_json(), indent=1).encode()))


def _next_shard_number(directory: Path) -> int:
    numbers = [int(p.stem.split("-")[1]) for p in directory.glob("shard-*.*") if p.stem.split("-")[1].isdigit()]
    return max(numbers, default=-1) + 1


def build_cache(
    root: Path,
    relpaths: Sequence[str],
    cache_dir: str | Path | None = None,
    spec: CacheSpec = CacheSpec(),
    workers: int | None = None,
    shard_size: int = 1024,
    pool: str = "thread",
    progress: Callable[[int, int], None] | None = None,
) -> BuildReport:
    """Add the images `relpaths` (relative to `root`) that the cache lacks; return what was done.

    Images already cached are skipped, images that failed before are tried again. `pool` is "thread" (PIL releases
    the GIL while decoding, resizing and encoding) or "process". `progress(done, total)` is called per shard.
    """
    if pool not in ("thread", "process"):
        raise ConfigError(f"pool must be 'thread' or 'process', got {pool!r}")
    if shard_size < 1:
        raise ConfigError(f"shard_size must be positive, got {shard_size}")
    directory = cache_root(root, cache_dir) / spec.dirname
    _write_spec(directory, spec)
    existing = ImageCache.open(directory)
    have = existing.key_set() if existing is not None else set()
    todo = list(dict.fromkeys(rel for rel in relpaths if rel not in have))  # unique, in order
    report = BuildReport(directory, spec, requested=len(set(relpaths)), already=len(set(relpaths) & have), added=0)
    if not todo:
        return report
    workers = max(1, workers or min(8, os.cpu_count() or 1))
    first = _next_shard_number(directory)
    chunks = [todo[i : i + shard_size] for i in range(0, len(todo), shard_size)]
    start = time.perf_counter()
    executor: Executor
    if pool == "process":
        import multiprocessing

        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    else:
        executor = ThreadPoolExecutor(max_workers=workers)
    done = 0
    with executor:
        pending = {
            executor.submit(build_shard, str(root), chunk, str(directory), first + k, spec.to_json())
            for k, chunk in enumerate(chunks)
        }
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = future.result()
                    report.added += len(index["keys"])
                    report.failed.update(index["failed"])
                    report.bytes_written += int(sum(index["nbytes"]))
                    done += len(index["keys"]) + len(index["failed"])
                    if progress is not None:
                        progress(done, len(todo))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    report.seconds = time.perf_counter() - start
    return report


class ImageCache:
    """Read access to one cache directory: which images it holds, and each as a 3 x S x S uint8 tensor.

    Memory maps are opened on first use in each process, so the object can be sent to DataLoader workers.
    """

    def __init__(self, directory: Path, spec: CacheSpec, shards: list[dict], shard_numbers: list[int]) -> None:
        self.directory = directory
        self.spec = spec
        keys: list[str] = []
        shard, offset, nbytes = [], [], []
        self.failed: dict[str, str] = {}
        for k, index in enumerate(shards):
            keys += index["keys"]
            shard.append(np.full(len(index["keys"]), k, dtype=np.int32))
            offset.append(np.asarray(index["offsets"], dtype=np.int64))
            nbytes.append(np.asarray(index["nbytes"], dtype=np.int64))
            self.failed.update(index.get("failed", {}))
        self.keys = keys
        self.shard = np.concatenate(shard) if shard else np.zeros(0, np.int32)
        self.offset = np.concatenate(offset) if offset else np.zeros(0, np.int64)
        self.nbytes = np.concatenate(nbytes) if nbytes else np.zeros(0, np.int64)
        for rel in set(keys) & set(self.failed):  # failed once, cached later
            del self.failed[rel]
        self._bins = [_shard_paths(directory, n)[0] for n in shard_numbers]
        self._maps: list[np.ndarray | None] = [None] * len(self._bins)

    @classmethod
    def open(cls, directory: Path) -> ImageCache | None:
        """The cache in `directory`, or None when there is none; shards whose files are incomplete are ignored."""
        meta = directory / "cache.json"
        if not meta.is_file():
            return None
        try:
            info = json.loads(meta.read_text())
            spec = CacheSpec(size=int(info["size"]), encoding=str(info["encoding"]), quality=int(info["quality"]))
            if info.get("format") != CACHE_FORMAT:
                raise ValueError(f"format {info.get('format')!r}, expected {CACHE_FORMAT}")
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
            raise DataError(f"cannot read the image cache description {meta} ({exc}); delete {directory} and rebuild it") from None
        shards, numbers = [], []
        for json_path in sorted(directory.glob("shard-*.json")):
            bin_path = json_path.with_suffix(".bin")
            try:
                index = json.loads(json_path.read_text())
                size = bin_path.stat().st_size
            except (OSError, ValueError):
                continue  # an interrupted write: building again replaces it
            if size != int(sum(index["nbytes"])):
                continue
            shards.append(index)
            numbers.append(int(json_path.stem.split("-")[1]))
        return cls(directory, spec, shards, numbers)

    def __len__(self) -> int:
        return len(self.keys)

    def key_set(self) -> set[str]:
        return set(self.keys)

    def rows(self, relpaths: Sequence[str]) -> np.ndarray:
        """Row of each relative path in this cache (-1 where it is not cached); later shards win."""
        where = {key: row for row, key in enumerate(self.keys)}
        return np.fromiter((where.get(rel, -1) for rel in relpaths), dtype=np.int64, count=len(relpaths))

    def _map(self, k: int) -> np.ndarray:
        mapped = self._maps[k]
        if mapped is None:
            # Copy-on-write: arrays are writable views (torch takes them without a copy); nothing is written back.
            mapped = np.memmap(self._bins[k], dtype=np.uint8, mode="c")
            self._maps[k] = mapped
        return mapped

    def read_bytes(self, row: int) -> np.ndarray:
        """The stored bytes of one row (a view into the memory map)."""
        start = int(self.offset[row])
        return self._map(int(self.shard[row]))[start : start + int(self.nbytes[row])]

    def read(self, row: int):
        """Row `row` as a 3 x S x S uint8 torch tensor: for `raw`, a view of the memory map (no copy is made until
        the images are stacked into a batch; writing to it changes a private copy, never the file)."""
        import torch

        data = self.read_bytes(row)
        if self.spec.encoding == "raw":
            return torch.from_numpy(data.reshape(3, self.spec.size, self.spec.size))
        with Image.open(io.BytesIO(data.tobytes())) as img:
            return torch.from_numpy(np.ascontiguousarray(np.asarray(img.convert("RGB")).transpose(2, 0, 1)))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_maps"] = [None] * len(self._bins)  # maps are reopened in the receiving process
        return state


def find_cache(data_root: Path, size: int, cache_dir: str | Path | None = None) -> ImageCache | None:
    """The cache of `data_root` whose images are `size` pixels square (raw preferred over jpeg), or None."""
    parent = cache_root(data_root, cache_dir)
    if not parent.is_dir():
        return None
    candidates = sorted(parent.glob(f"{size}px-*"), key=lambda p: (not p.name.endswith("-raw"), p.name))
    for directory in candidates:
        cache = ImageCache.open(directory)
        if cache is not None and cache.spec.size == size:
            return cache
    return None
