"""Command-line start-up: `lnlbench --help`, a listing and a configuration error, against a bare interpreter start.

Each command runs in a fresh process (as a user types it); the figure is the fastest of REPEATS. Target (issue 14):
under 0.5 s on an idle machine for --help and for `run --dataset nosuch ...`, which import neither torch nor timm
(tests/test_cli_imports.py checks the imports; this measures the time).

Run: pytest benchmarks/bench_cli_start.py --benchmark-only
"""

from __future__ import annotations

import subprocess
import sys
import time

REPEATS = 5
COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "lnlbench --help": [sys.executable, "-m", "lnlbench.cli", "--help"],
    "lnlbench datasets": [sys.executable, "-m", "lnlbench.cli", "datasets"],
    "lnlbench run --dataset nosuch ...": [sys.executable, "-m", "lnlbench.cli", "run", "--dataset", "nosuch", "--noise",
                                          "sym", "--rate", "0.2", "--method", "lp", "--out", "unused"],
}


def fastest(argv: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def test_cli_start_up(benchmark, figures):
    measured: dict[str, float] = {}

    def measure() -> None:
        for name, argv in COMMANDS.items():
            measured[name] = fastest(argv)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    base = measured["python -c pass (baseline)"]
    for name, seconds in measured.items():
        figures(f"{name}: {seconds:.3f} s ({seconds / base:.1f}x a bare interpreter start; target < 0.5 s idle)")
