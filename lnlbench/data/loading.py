"""Reading large image sets fast: lazy per-image access (through the resized cache when there is one), batches
read ahead by loader threads or DataLoader worker processes into pinned memory, and ImageNet-style crops as batch
tensor ops.

`ImageFiles` is the lazy `Split.images` the Clothing1M / WebVision / ILSVRC2012 readers return: item i is a
3 x S x S uint8 tensor (the cache's geometry: shorter side resized to S, central square). `prefetch_batches` turns
a sequence of index batches into (indices, uint8 batch) pairs read ahead of use, in order, which is how the
engine's `ImageBatcher` can feed a GPU from such a split (benchmarks/bench_loading.py measures each way).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from lnlbench.data.annotations import UNREADABLE, IssueLog, SplitIndex, drop_missing
from lnlbench.data.base import Split
from lnlbench.data.image_cache import ImageCache, decode_square, find_cache
from lnlbench.errors import ConfigError, DataError

VERIFY_LEVELS = ("none", "exists", "decode")


class ImageFiles(Sequence[torch.Tensor]):
    """Images decoded on access: item i is `relpaths[i]` under `root` as a 3 x size x size uint8 tensor.

    Images present in `cache` (built at the same size) are read from it; the others are decoded from their files.
    An image that fails to decode raises DataError naming the file and the annotation line that listed it
    (`sources[i]`, line `lines[i]`), or, with `tolerate_bad`, comes back as a black image with a warning, counted
    in `bad_seen` (run `lnlbench prepare DATASET --build-cache` first to find such images before training).
    """

    def __init__(
        self,
        root: Path,
        relpaths: Sequence[str],
        size: int,
        cache: ImageCache | None = None,
        sources: Sequence[str] | None = None,
        lines: Sequence[int] | None = None,
        tolerate_bad: bool = False,
        dataset: str = "",
    ) -> None:
        self.root = Path(root)
        self.relpaths = list(relpaths)
        self.size = int(size)
        self.cache = cache if cache is not None and cache.spec.size == self.size else None
        self.rows = self.cache.rows(self.relpaths) if self.cache is not None else np.full(len(self.relpaths), -1)
        self.sources = list(sources) if sources is not None else None
        self.lines = np.asarray(lines, dtype=np.int64) if lines is not None else None
        self.tolerate_bad = tolerate_bad
        self.dataset = dataset
        self.bad_seen = 0

    def __len__(self) -> int:
        return len(self.relpaths)

    @property
    def cached(self) -> int:
        """How many of the images are read from the cache."""
        return int((self.rows >= 0).sum())

    def path(self, i: int) -> Path:
        return self.root / self.relpaths[i]

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        row = int(self.rows[i])
        if row >= 0:
            return self.cache.read(row)  # type: ignore[union-attr]
        try:
            return torch.from_numpy(decode_square(self.path(i), self.size))
        except Exception as exc:  # PIL raises many types for bad files
            listed = ""
            if self.sources is not None:
                line = f":{int(self.lines[i])}" if self.lines is not None and self.lines[i] > 0 else ""
                listed = f" (listed at {self.sources[i]}{line})"
            message = f"{self.dataset}: cannot decode image {self.path(i)}{listed}: {type(exc).__name__}: {exc}"
            if not self.tolerate_bad:
                raise DataError(
                    f"{message}; replace the file, or find every such image with `lnlbench prepare "
                    f"{self.dataset or 'DATASET'} --build-cache` and pass tolerate_bad=True to skip them"
                ) from None
            self.bad_seen += 1
            warnings.warn(f"{message}; using a black image instead (tolerate_bad=True)", stacklevel=2)
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8)


def find_unreadable(root: Path, relpaths: Sequence[str], size: int, workers: int | None = None) -> dict[int, str]:
    """Position -> error of every image among `relpaths` that does not decode (decodes them all, in threads)."""

    def check(i: int) -> tuple[int, str | None]:
        try:
            decode_square(root / relpaths[i], size)
            return i, None
        except Exception as exc:
            return i, f"{type(exc).__name__}: {exc}"

    workers = max(1, workers or min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return {i: err for i, err in pool.map(check, range(len(relpaths))) if err is not None}


def check_reader_options(dataset: str, image_size: object, verify: object) -> None:
    """ConfigError for an image size that is not a positive integer or an unknown verify level."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= 4096:
        raise ConfigError(f"{dataset}: image_size must be an integer number of pixels in 8..4096, got {image_size!r}")
    if verify not in VERIFY_LEVELS:
        raise ConfigError(f"{dataset}: verify must be one of {', '.join(VERIFY_LEVELS)}, got {verify!r}")


def open_cache(root: Path, size: int, cache_dir: str | Path | None, use_cache: bool) -> ImageCache | None:
    """The resized cache of `root` at `size` pixels when there is one and it is wanted."""
    return find_cache(root, size, cache_dir) if use_cache else None


def lazy_split(
    split: SplitIndex,
    root: Path,
    log: IssueLog,
    *,
    size: int,
    cache: ImageCache | None,
    verify: str,
    tolerate_bad: bool,
    dataset: str,
    workers: int | None = None,
) -> tuple[Split, SplitIndex]:
    """A lazy `Split` of the listed images that can be read, and the index of those images.

    Images the cache recorded as unreadable, images whose file is missing (`verify` "exists" or "decode"; cached
    images count as present) and, with `verify="decode"`, uncached images that do not decode, go to `log`: an
    error naming the annotation line, or a skipped sample when bad samples are tolerated.
    """
    if cache is not None and cache.failed:
        keep = np.ones(len(split), dtype=bool)
        for i, rel in enumerate(split.relpaths):
            if rel in cache.failed:
                log.add(UNREADABLE, split.sources[i], int(split.lines[i]) or None, f"image {rel} does not decode ({cache.failed[rel]}, recorded by the cache in {cache.directory})")
                keep[i] = False
        split = split.take(keep)
    cached = cache.key_set() if cache is not None else set()
    if verify in ("exists", "decode"):
        split = drop_missing(split, root, log, known=cached.__contains__ if cached else None)
    if verify == "decode":
        todo = [i for i, rel in enumerate(split.relpaths) if rel not in cached]
        bad = find_unreadable(root, [split.relpaths[i] for i in todo], size, workers)
        keep = np.ones(len(split), dtype=bool)
        for k, error in sorted(bad.items()):
            i = todo[k]
            log.add(UNREADABLE, split.sources[i], int(split.lines[i]) or None, f"image {split.relpaths[i]} does not decode ({error})")
            keep[i] = False
        split = split.take(keep)
    images = ImageFiles(root, split.relpaths, size, cache, split.sources, split.lines, tolerate_bad, dataset)
    return Split(images=images, labels=torch.from_numpy(split.labels.astype(np.int64))), split


class _BatchReader(torch.utils.data.Dataset):
    """A map-style dataset whose batched fetch (`__getitems__`) returns one stacked uint8 batch."""

    def __init__(self, images: Sequence[torch.Tensor]) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return torch.stack([self.images[i] for i in indices])


def _as_is(batch: torch.Tensor) -> torch.Tensor:
    return batch


def default_workers() -> int:
    """DataLoader workers: one per CPU core but one, at most 16 (0, i.e. the main process, on one core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(16, cores - 1))


def suggested_loader(images: Sequence[torch.Tensor]) -> tuple[int, int]:
    """(workers, threads) that read `images` fastest, from bench_loading.py on a 16-core GPU host.

    Images all in a raw cache: 4 threads (a batch is a few memory copies; worker processes would add a copy of
    every batch between processes and were 2-5x slower). Images to decode (JPEG cache or files): worker processes,
    one per core but one (decoding holds the GIL too often for threads to scale).
    """
    if isinstance(images, ImageFiles) and images.cache is not None and images.cache.spec.encoding == "raw":
        if images.cached == len(images):
            return 0, 4
    return default_workers(), 0


def prefetch_batches(
    images: Sequence[torch.Tensor],
    batches: Iterable[torch.Tensor],
    workers: int | None = None,
    pin_memory: bool | None = None,
    prefetch_factor: int = 4,
    threads: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(indices, uint8 batch B x C x H x W) for each index batch, in order, read ahead of use.

    Batches are assembled by `threads` threads of this process when `threads` > 0 (torch copies and PIL decodes
    without holding the GIL, and a batch needs no copy between processes), else by `workers` DataLoader worker
    processes (0: in the calling process, on demand). Both None: `suggested_loader(images)`. `pin_memory`
    defaults to "CUDA is available", so the copy to the GPU can be non-blocking.
    """
    order = [torch.as_tensor(b, dtype=torch.long) for b in batches]
    if not order:
        return
    pin = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
    if workers is None and threads is None:
        workers, threads = suggested_loader(images)
    if threads:
        yield from _thread_batches(images, order, threads, pin, depth=max(2, prefetch_factor) * threads)
        return
    workers = default_workers() if workers is None else int(workers)
    loader = torch.utils.data.DataLoader(
        _BatchReader(images),
        batch_sampler=[b.tolist() for b in order],
        num_workers=workers,
        collate_fn=_as_is,
        pin_memory=pin,
        prefetch_factor=prefetch_factor if workers > 0 else None,
    )
    yield from zip(order, loader)


def _stack(images: Sequence[torch.Tensor], idx: torch.Tensor, pin: bool) -> torch.Tensor:
    items = [images[i] for i in idx.tolist()]
    out = torch.empty((len(items), *items[0].shape), dtype=items[0].dtype, pin_memory=pin)
    return torch.stack(items, out=out)


def _thread_batches(
    images: Sequence[torch.Tensor], order: list[torch.Tensor], threads: int, pin: bool, depth: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches assembled by a thread pool, at most `depth` ahead of the consumer, yielded in order."""
    from collections import deque

    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque = deque()
        upcoming = iter(order)
        try:
            for idx in upcoming:
                pending.append((idx, pool.submit(_stack, images, idx, pin)))
                if len(pending) >= depth:
                    break
            while pending:
                idx, future = pending.popleft()
                following = next(upcoming, None)
                if following is not None:
                    pending.append((following, pool.submit(_stack, images, following, pin)))
                yield idx, future.result()
        finally:
            for _, future in pending:
                future.cancel()


def _check(images: torch.Tensor, crop: int) -> None:
    if images.dim() != 4:
        raise ValueError(f"expected a batch B x C x H x W, got shape {tuple(images.shape)}")
    if crop > images.shape[2] or crop > images.shape[3]:
        raise ValueError(f"crop {crop} is larger than the images ({images.shape[2]} x {images.shape[3]})")


def center_crop(images: torch.Tensor, crop: int) -> torch.Tensor:
    """The central crop x crop window of every image of a batch (torchvision `CenterCrop` rounding)."""
    _check(images, crop)
    h, w = images.shape[2:]
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    return images[:, :, top : top + crop, left : left + crop]


def random_crop_flip(images: torch.Tensor, crop: int, generator: torch.Generator, flip: bool = True) -> torch.Tensor:
    """A random crop x crop window per image, mirrored left-right with probability 1/2: the ImageNet-style training
    augmentation of DivideMix's Clothing1M (`Resize(256)`, `RandomCrop(224)`, `RandomHorizontalFlip()`) and
    WebVision (`RandomCrop(227)`, flip) loaders, for a whole batch at once on the images' device.

    Offsets and flips are drawn from `generator` (CPU) in a fixed order, so the result depends on its state only.
    """
    _check(images, crop)
    b, _, h, w = images.shape
    top = torch.randint(0, h - crop + 1, (b,), generator=generator)
    left = torch.randint(0, w - crop + 1, (b,), generator=generator)
    mirror = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    out = torch.stack([images[k, :, t : t + crop, l : l + crop] for k, (t, l) in enumerate(zip(top.tolist(), left.tolist()))])
    if bool(mirror.any()):
        which = mirror.to(images.device)
        out[which] = out[which].flip(3)
    return out
