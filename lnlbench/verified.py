"""Files that verify and heal: checkpoints and cache entries written with a SHA-256, the previous version kept until
the new one is on disk and verified, a corrupt file named and moved aside (`*.corrupt`) instead of blocking a run.

Beside `X` lies `X.sha256.json` (the manifest): the SHA-256 (and, for checkpoints, the epoch) of the current and the
previous version. A write goes: the current file is hard-linked to `X.prev`; the manifest is written naming the new
and the current hash; the new bytes are written atomically to `X` and read back. A process killed at any step leaves
`X` or `X.prev` with a hash the manifest names, so a SIGKILL never looks like corruption; a file whose hash the
manifest does not name (truncated, bit-flipped) is corrupt. A file without a manifest (written by older code) is
trusted only if it loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from lnlbench.atomic import atomic_write

MANIFEST_SUFFIX = ".sha256.json"
PREVIOUS_SUFFIX = ".prev"
CORRUPT_SUFFIX = ".corrupt"


# Called with the path before every verified write; it raises to stop a write (an attempt another one superseded).
_WRITE_GUARD: ContextVar[Callable[[Path], None] | None] = ContextVar("lnlbench_write_guard", default=None)


@contextlib.contextmanager
def write_guard(check: Callable[[Path], None]) -> Iterator[None]:
    """Call `check(path)` before every `write_verified` in this context (this thread); it may raise to refuse."""
    token = _WRITE_GUARD.set(check)
    try:
        yield
    finally:
        _WRITE_GUARD.reset(token)


class CorruptFileError(ValueError):
    """A file failed its checksum or could not be decoded."""


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + MANIFEST_SUFFIX)


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + PREVIOUS_SUFFIX)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of `path` ({"current": {...}, "previous": {...}}), or None when absent or unreadable."""
    try:
        obj = json.loads(manifest_path(path).read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_write(path: Path) -> None:
    """Ask this context's write guard (if any) whether `path` may still be written; it raises when it may not."""
    guard = _WRITE_GUARD.get()
    if guard is not None:
        guard(Path(path))


def write_verified(path: Path, data: bytes, meta: dict[str, Any] | None = None) -> None:
    """Write `data` to `path` atomically with its SHA-256, keeping the version it replaces as `path.prev` until the
    new one is on disk and has read back with the right hash."""
    path = Path(path)
    check_write(path)
    digest = sha256_bytes(data)
    manifest = read_manifest(path) or {}
    previous = None
    if path.exists():
        current = manifest.get("current")
        previous = current if isinstance(current, dict) else {"sha256": sha256_bytes(path.read_bytes())}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.link")
        tmp.unlink(missing_ok=True)
        os.link(path, tmp)  # no copy: the inode of the current version stays reachable as .prev
        os.replace(tmp, previous_path(path))
    entry = {"sha256": digest, "bytes": len(data), "written_at": time.time(), **(meta or {})}
    text = json.dumps({"current": entry, "previous": previous}, indent=1, sort_keys=True)
    atomic_write(manifest_path(path), lambda handle: handle.write(text.encode()))
    try:
        atomic_write(path, lambda handle: handle.write(data))
    except OSError:  # a full disk, say: `path` is still the version before; the manifest says so again
        if manifest:
            before = json.dumps(manifest, indent=1, sort_keys=True)
            with contextlib.suppress(OSError):
                atomic_write(manifest_path(path), lambda handle: handle.write(before.encode()))
        raise
    if sha256_bytes(path.read_bytes()) != digest:
        raise OSError(f"{path} did not read back with the SHA-256 just written; the disk may be failing "
                      f"(the previous version is kept as {previous_path(path)})")


def read_verified(path: Path) -> bytes:
    """The bytes of `path`, checked against the hashes its manifest names; CorruptFileError when they differ."""
    data = Path(path).read_bytes()
    manifest = read_manifest(Path(path))
    if manifest is None:
        return data  # older file without a manifest: the decoder decides
    known = {e.get("sha256") for e in (manifest.get("current"), manifest.get("previous")) if isinstance(e, dict)}
    if sha256_bytes(data) not in known:
        raise CorruptFileError(f"its SHA-256 is not the one written ({len(data)} bytes on disk)")
    return data


def quarantine(path: Path) -> Path:
    """Move a corrupt file aside to `path.corrupt` (numbered if taken) and return where it went."""
    path = Path(path)
    target = path.with_name(path.name + CORRUPT_SUFFIX)
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}{CORRUPT_SUFFIX}.{n}")
        n += 1
    os.replace(path, target)
    return target


def say(message: str) -> None:
    """A healing message on stderr (a run's stderr goes to its log.txt)."""
    print(f"lnlbench: {message}", file=sys.stderr, flush=True)


def torch_bytes(obj: object) -> bytes:
    """`torch.save(obj)` as bytes."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def load_torch(data: bytes) -> Any:
    """torch.load of bytes with weights_only=True (no code from files); CorruptFileError when they do not decode."""
    import torch

    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise CorruptFileError(f"it does not load ({first})") from None


def load_healing(path: Path, what: str, check: Callable[[Any], None] | None = None,
                 report: Callable[[str], None] = say) -> tuple[Any, Path | None]:
    """Load `path`, else its previous version; move every corrupt one aside, saying so. Returns (object, the file it
    came from), or (None, None) when neither exists or loads: the caller starts over (and says so).

    `check(obj)` may raise CorruptFileError for a file that decodes but is not what was expected.
    """
    path = Path(path)
    for candidate in (path, previous_path(path)):
        if not candidate.exists():
            continue
        try:
            obj = load_torch(read_verified(candidate))
            if check is not None:
                check(obj)
        except (CorruptFileError, OSError) as exc:
            with contextlib.suppress(OSError):
                moved = quarantine(candidate)
                report(f"{what} {candidate} is corrupt ({exc}); moved aside to {moved.name}")
            continue
        if candidate != path:
            os.replace(candidate, path)  # the previous version becomes the current one again
            entry = (read_manifest(path) or {}).get("previous")
            text = json.dumps({"current": entry, "previous": None}, indent=1, sort_keys=True)
            atomic_write(manifest_path(path), lambda handle: handle.write(text.encode()))
            report(f"{what}: resuming from the previous checkpoint {path.name} (restored from {candidate.name})")
        return obj, path
    return None, None
