"""Content fingerprints of datasets: what enters a run id in place of the local path the data was read from.

A fingerprint is the SHA-256 of everything a run reads from its data: the dataset's name and classes, the size,
labels and image bytes of the training and test splits, any shipped noisy labels and extra evaluation splits. For
images held in memory the bytes are the decoded pixels; for lazily read image files they are each file's bytes and
its path relative to the data root. Where the data came from never enters it: a copy of the same files anywhere has
the same fingerprint, a changed byte or label gives another.

Computing it reads every image once, so it is cached: in memory for the process, and on disk under
`CACHE/fingerprints/` keyed by a stat signature of the data root (every file's relative path, size and mtime),
so the second look at unchanged files costs a directory walk, not a read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lnlbench.hashing import canonical_json, json_digest

if TYPE_CHECKING:
    from lnlbench.data.base import Dataset, Split

FINGERPRINT_VERSION = 1  # part of every on-disk cache key: bump when what the fingerprint covers changes
_MEMO: dict[str, str] = {}


def _update_split(h: "hashlib._Hash", name: str, split: Split) -> None:
    import torch

    h.update(f"split:{name}:{len(split)}".encode())
    h.update(split.labels.numpy().astype("int64").tobytes())
    if isinstance(split.images, torch.Tensor):
        h.update(str(tuple(split.images.shape)).encode())
        h.update(split.images.contiguous().numpy().tobytes())
        return
    root, relpaths = getattr(split.images, "root", None), getattr(split.images, "relpaths", None)
    if root is None or relpaths is None:  # a lazy sequence of tensors that names no files: hash the pixels
        for i in range(len(split.images)):
            h.update(split.images[i].contiguous().numpy().tobytes())
        return
    for rel in relpaths:
        h.update(str(rel).encode() + b"\0")
        with open(Path(root) / rel, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)


def content_fingerprint(data: Dataset) -> str:
    """SHA-256 over the dataset's content (labels, split sizes, image bytes); no paths."""
    h = hashlib.sha256()
    h.update(f"lnlbench-dataset-fingerprint:{FINGERPRINT_VERSION}:{data.name}".encode())
    h.update(json.dumps(list(data.classes)).encode())
    _update_split(h, "train", data.train)
    _update_split(h, "test", data.test)
    if data.noisy_train_labels is not None:
        h.update(b"noisy_train_labels")
        h.update(data.noisy_train_labels.numpy().astype("int64").tobytes())
    for name, split in sorted((data.extra.get("eval_splits") or {}).items()):
        _update_split(h, f"eval:{name}", split)
    indices = data.extra.get("train_indices")  # a training subset: which images of the full set (lnlbench.data.subset)
    if indices is not None:
        h.update(f"train_indices:{data.extra.get('full_train_size')}".encode())
        h.update(np.asarray(indices).astype("<i8").tobytes())
    return h.hexdigest()


def stat_signature(root: Path) -> str:
    """SHA-256 of every file's relative path, size and mtime below `root` (a walk, no reads)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:
                continue
            h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def dataset_fingerprint(
    name: str,
    data_root: str | Path | None,
    options: dict[str, Any],
    cache_dir: Path | None,
    load: Any = None,
) -> str:
    """The content fingerprint of dataset `name` read from `data_root` with `options`, cached by stat signature.

    `load()` returns the Dataset; it is called only when no cached fingerprint matches the files as they are now.
    """
    if data_root is None:  # embedded datasets (digits): small, fingerprinted from content every time
        key = canonical_json({"name": name, "options": options})
        if key not in _MEMO:
            _MEMO[key] = content_fingerprint(load())
        return _MEMO[key]
    root = Path(data_root).expanduser().resolve()
    paths = {k: str(Path(v).expanduser().resolve()) for k, v in options.items() if isinstance(v, str) and Path(v).exists()}
    signature = {
        "version": FINGERPRINT_VERSION,
        "name": name,
        "options": options,
        "root_path": str(root),  # the cache key may name the path; the fingerprint never does
        "root": stat_signature(root),
        "paths": {k: stat_signature(Path(p)) if Path(p).is_dir() else p for k, p in sorted(paths.items())},
    }
    key = json_digest(signature)
    if key in _MEMO:
        return _MEMO[key]
    cached = Path(cache_dir) / "fingerprints" / f"{key}.json" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            value = json.loads(cached.read_text())["fingerprint"]
            if isinstance(value, str) and len(value) == 64:
                _MEMO[key] = value
                return value
        except (OSError, ValueError, KeyError, TypeError):
            pass  # an unreadable entry is recomputed, never trusted
    value = content_fingerprint(load())
    _MEMO[key] = value
    if cached is not None:
        from lnlbench.config import write_json_atomic

        try:
            write_json_atomic(cached, {"fingerprint": value, "dataset": name})
        except OSError:
            pass  # a read-only cache costs a recomputation next time, nothing else
    return value
