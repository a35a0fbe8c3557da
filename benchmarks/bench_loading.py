"""Images per second for reading large image sets: decoding JPEG files, building the resized cache, reading the
cache (raw and JPEG-encoded), and the full training input pipeline (read a shuffled batch through DataLoader
workers, random 224 crop + flip, normalise to float) from the cache and, for contrast, from the JPEG files.

The images are synthetic web-photo-like JPEGs (500 x 375, smooth colour fields plus noise, quality 90, about the
size and decoding cost of Clothing1M / WebVision originals), written to a temporary directory.

Run as a script for the table:   python benchmarks/bench_loading.py [--images 512] [--workers 0 2] [--threads 2]
or with the other benchmarks:     pytest benchmarks/bench_loading.py --benchmark-only
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lnlbench.data.image_cache import CacheSpec, ImageCache, build_cache, decode_square, find_cache
from lnlbench.data.loading import ImageFiles, prefetch_batches, random_crop_flip
from lnlbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD, preprocess
from lnlbench.engine import index_batches

CACHE_SIZE = 256  # shorter side of the cache, as Resize(256) in DivideMix's Clothing1M loader
CROP = 224  # the backbones' input size
BATCH = 64


def make_images(directory: Path, n: int, size: tuple[int, int] = (500, 375), seed: int = 0) -> list[str]:
    """n JPEGs with photo-like content (smooth fields and noise compress and decode like photos, not like flat colour)."""
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
        noisy = np.clip(field + rng.integers(-20, 21, field.shape), 0, 255).astype(np.uint8)
        name = f"images/{i % 10}/{i:06d}.jpg"
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(noisy).save(directory / name, format="JPEG", quality=90)
        names.append(name)
    return names


def rate(n: int, fn: Callable[[], object]) -> float:
    """Images per second of `fn`, which processes n images."""
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def read_all(images: ImageFiles, order: list[int]) -> None:
    for i in order:
        images[i]


Loader = tuple[str, int]  # ("workers", n): DataLoader worker processes; ("threads", n): a thread pool


def pipeline(images: ImageFiles, loader: Loader, augment: bool = True, device: str = "cpu", seed: int = 0) -> int:
    """One shuffled epoch of the training input pipeline; returns the number of images produced.

    With `augment` False only the uint8 batches are produced (what a GPU run reads on the CPU). With a CUDA
    `device` the uint8 batches go there from pinned memory and the crop, flip and normalisation run there.
    """
    order = torch.Generator().manual_seed(seed)
    aug = torch.Generator().manual_seed(seed + 1)
    seen = 0
    batches = index_batches(torch.arange(len(images)), BATCH, order)
    kind, n = loader
    workers, threads = (n, 0) if kind == "workers" else (0, n)
    for _, raw in prefetch_batches(images, batches, workers=workers, threads=threads, pin_memory=device != "cpu"):
        raw = raw.to(device, non_blocking=True)
        if augment:
            raw = preprocess(random_crop_flip(raw, CROP, aug), CROP, IMAGENET_MEAN, IMAGENET_STD)
        seen += raw.shape[0]
    if device != "cpu":
        torch.cuda.synchronize()
    return seen


def measure(n: int, loaders: list[Loader], build_workers: int) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = make_images(root, n)
        shuffled = np.random.default_rng(1).permutation(n).tolist()
        rows.append(("decode JPEG file -> 256 square (1 thread)", rate(n, lambda: [decode_square(root / p, CACHE_SIZE) for p in names])))
        rows.append((f"build raw cache ({build_workers} threads)", rate(n, lambda: build_cache(root, names, spec=CacheSpec(CACHE_SIZE), workers=build_workers))))
        rows.append((f"build jpeg cache ({build_workers} threads)", rate(n, lambda: build_cache(root, names, spec=CacheSpec(CACHE_SIZE, "jpeg"), workers=build_workers))))
        raw = ImageFiles(root, names, CACHE_SIZE, find_cache(root, CACHE_SIZE))
        assert raw.cached == n and raw.cache.spec.encoding == "raw"
        read_all(raw, shuffled)  # warm the page cache, as any epoch after the first
        rows.append(("read raw cache items (views, copied when batched)", rate(n, lambda: read_all(raw, shuffled))))
        jpeg_dir = root / ".lnlbench-cache" / CacheSpec(CACHE_SIZE, "jpeg").dirname
        jpeg = ImageFiles(root, names, CACHE_SIZE, ImageCache.open(jpeg_dir))
        rows.append(("read jpeg cache, shuffled (1 thread)", rate(n, lambda: read_all(jpeg, shuffled))))
        files = ImageFiles(root, names, CACHE_SIZE)
        sources = {"raw cache": raw, "jpeg cache": jpeg, "JPEG files": files}
        for source, images in sources.items():
            for kind, k in loaders:
                rows.append((f"uint8 batches, {source}, {k} {kind}", rate(n, lambda: pipeline(images, (kind, k), augment=False))))
        for kind, k in loaders:
            rows.append((f"CPU train pipeline, raw cache, {k} {kind}", rate(n, lambda: pipeline(raw, (kind, k)))))
        if torch.cuda.is_available():
            pipeline(raw, ("workers", 0), device="cuda")  # CUDA context and kernels warmed up outside the timing
            for source in ("raw cache", "jpeg cache"):
                for kind, k in loaders:
                    rows.append((f"GPU train pipeline, {source}, {k} {kind}", rate(n, lambda: pipeline(sources[source], (kind, k), device="cuda"))))
    return rows


def test_loading_throughput(benchmark, figures) -> None:
    """A small run (128 images) for `pytest benchmarks --benchmark-only`; the script gives the full table."""
    rows = benchmark.pedantic(lambda: measure(128, [("workers", 0), ("workers", 2), ("threads", 2)], 2), rounds=1, iterations=1)
    for name, value in rows:
        figures(f"{name}: {value:,.0f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker processes to try")
    parser.add_argument("--threads", type=int, nargs="*", default=[2], help="loader threads to try")
    parser.add_argument("--build-workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"{args.images} images 500x375 JPEG q90; cache {CACHE_SIZE}px square; crop {CROP}; batch {BATCH}; "
          f"{os.cpu_count()} CPU cores (load average {load:.1f} at start), torch {torch.__version__}, {gpu}")
    loaders = [("workers", w) for w in args.workers] + [("threads", t) for t in args.threads]
    for name, value in measure(args.images, loaders, args.build_workers):
        print(f"  {name:<48} {value:>9,.0f} images/s")


if __name__ == "__main__":
    main()
