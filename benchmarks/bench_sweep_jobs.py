"""Thread placement: the throughput of a 4-run local sweep with `--jobs 2` against `--jobs 1`, side by side.

Each sweep runs as `lnlbench sweep` in a fresh process without an inherited OMP_WAIT_POLICY or OMP_NUM_THREADS, as a
user would start it: with --jobs 2 each worker takes cores / 2 threads and waits passively (lnlbench.launch.local);
with --jobs 1 the one worker takes every core. Four fft runs (one epoch) on the embedded digits at 32 px with the
packaged EfficientNet-Lite0. Target: ratio (jobs 1 time / jobs 2 time) >= 1.0, never a collapse.

Run: pytest benchmarks/bench_sweep_jobs.py --benchmark-only
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SWEEP = """\
datasets: [digits]
noise: [[sym, 0.2], [sym, 0.5]]
methods: [{name: fft, hparams: {epochs: 1}}]
backbones: [{name: tf_efficientnet_lite0, weights: packaged, image_size: 32}]
seeds: [0, 1]
"""


def sweep_seconds(tmp_path: Path, jobs: int) -> float:
    """Wall-clock seconds of the whole sweep, process start included (the same for both)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "grid.yaml"
    path.write_text(SWEEP)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lnlbench.cli", "-q", "sweep", str(path), "--out", str(tmp_path / f"out{jobs}"),
                    "--jobs", str(jobs), "--cache-dir", str(tmp_path / f"cache{jobs}")], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def test_sweep_throughput_jobs2_vs_jobs1(benchmark, tmp_path, figures):
    times: dict[int, float] = {}

    def measure() -> None:
        for jobs in (1, 2):
            times[jobs] = sweep_seconds(tmp_path / f"jobs{jobs}", jobs)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    ratio = times[1] / times[2]
    figures(f"4-run sweep on {os.cpu_count()} cores: --jobs 1 {times[1]:.1f} s, --jobs 2 {times[2]:.1f} s -> "
            f"throughput ratio (jobs 2 / jobs 1) {ratio:.2f} (target >= 1.0)")
