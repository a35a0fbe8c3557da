"""SHA-256 of files and the one canonical JSON form (and its digest) that every key, id and report hash is made of."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, remembered per (path, mtime, size) for the life of the process."""
    resolved = Path(path).expanduser().resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with resolved.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def canonical_json(obj: Any, *, compact: bool = False) -> str:
    """`obj` as canonical JSON: keys sorted, values JSON cannot hold written as `str(value)`.

    Two spellings of the same form, fixed by what is already published with each: run ids (and the cache keys made
    beside them) hash the spaced form (`json.dumps` separators); report columns and hashes (`hparams_hash` in
    leaderboards) use the compact one. Changing either changes published ids or tables, so both stay, here only.
    """
    separators = (",", ":") if compact else (", ", ": ")
    return json.dumps(obj, sort_keys=True, default=str, separators=separators)


def json_digest(obj: Any, n: int | None = None, *, compact: bool = False) -> str:
    """SHA-256 hex digest of `canonical_json(obj)`, cut to its first `n` digits when `n` is given."""
    digest = hashlib.sha256(canonical_json(obj, compact=compact).encode()).hexdigest()
    return digest if n is None else digest[:n]
