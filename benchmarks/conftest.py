"""Benchmarks: collect `bench_*.py` here and print every benchmark's ratios at the end of the session.

Run all of them with `pytest benchmarks --benchmark-only` (or `tox -e bench`); see docs/performance.md.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path

import pytest

# Threads that wait by spinning (libgomp's default) make a multi-threaded torch up to 10x slower when the cores are
# shared with other busy processes (measured on the 2-core machine of docs/performance.md); passive waiting costs
# little when they are not. OpenMP reads this once, when torch loads: it only applies if torch is not loaded yet.
OMP_WAIT_POLICY = os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE") if "torch" not in sys.modules else None

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import benchkit` from the bench files

_LINES: list[str] = []


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Collect `bench_*.py` as test modules (pyproject's `python_files` names only `test_*.py`)."""
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if parent.session.isinitpath(file_path) or any(
        fnmatch.fnmatch(file_path.name, pat) for pat in parent.config.getini("python_files")
    ):
        return None  # the python plugin collects it already (named on the command line, or `-o python_files=...`)
    return pytest.Module.from_parent(parent, path=file_path)


@pytest.fixture
def figures(request: pytest.FixtureRequest):
    """`figures(line)` adds a line to the summary printed after the benchmarks (visible without -s)."""

    def add(line: str) -> None:
        _LINES.append(f"[{request.node.name}] {line}")
        print(line)

    return add


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _LINES:
        terminalreporter.section("lnlbench benchmark figures (ratios measured side by side in this process)")
        for line in _LINES:
            terminalreporter.write_line(line)
