"""Checks of the machine a command will write on, made before anything is written: output and cache directories
that can be created and written, and the device asked for."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lnlbench.errors import ConfigError, Problems


def check_writable(path: str | Path, what: str, flag: str) -> None:
    """`path` is (or can be made as) a writable directory; tried with a scratch folder that is removed again."""
    target = Path(path).expanduser()
    existing = target
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"{what} {target}: {existing} is a file, not a directory; pass another {flag}")
    try:
        scratch = tempfile.mkdtemp(prefix=".lnlbench-write-check-", dir=existing)
    except OSError as exc:
        raise ConfigError(
            f"{what} {target} cannot be written ({exc.strerror or exc} in {existing}); pass a writable {flag}"
        ) from None
    shutil.rmtree(scratch, ignore_errors=True)
    if target.exists() and not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {target} is not writable; pass a writable {flag}")


def check_device(name: str | None) -> None:
    """The device asked for exists here (imports torch)."""
    from lnlbench import engine

    engine.select_device(name)


def check_directories(problems: Problems, *, out: str | Path | None, cache_dir: str | Path | None) -> None:
    """Add every problem with the output directory and the cache directory (default: $LNLBENCH_CACHE) to
    `problems`."""
    from lnlbench.config import default_cache_dir

    if out is not None:
        with problems.check():
            check_writable(out, "output directory", "--out")
    with problems.check():
        check_writable(cache_dir if cache_dir is not None else default_cache_dir(), "cache directory", "--cache-dir")


def check_device_if_loaded(problems: Problems, device: str | None) -> None:
    """Check the device when torch is loaded already: a configuration that failed on names alone is reported
    without importing torch (seconds), and every other one is checked here before anything is written."""
    import sys

    if "torch" in sys.modules or device is not None and device != "cpu":
        with problems.check():
            check_device(device)
