"""Thread placement (issue 14, item 2): a local sweep of N workers gives each cores / N threads and, when they share
the cores, the passive OpenMP wait (libgomp's spinning wait starves a sibling worker: docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_launch import sweep_file


def sweep_in_a_fresh_process(tmp_path: Path, jobs: int) -> list[dict]:
    """`lnlbench sweep` in its own process (the fork server reads the environment once), without an inherited
    wait policy or thread count; the records it wrote."""
    path = sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}", seeds="[0, 1]", name=f"jobs{jobs}")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    out = tmp_path / f"out{jobs}"
    subprocess.run([sys.executable, "-m", "lnlbench.cli", "-q", "sweep", str(path), "--out", str(out), "--jobs",
                    str(jobs), "--cache-dir", str(tmp_path / "cache")], env=env, check=True, capture_output=True)
    return [json.loads(p.read_text()) for p in out.glob("*/result.json")]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores to share")
def test_workers_sharing_the_cores_get_their_share_and_wait_passively(tmp_path):
    cores = os.cpu_count() or 1
    shared = sweep_in_a_fresh_process(tmp_path, jobs=2)
    assert len(shared) == 2 and all(r["status"] == "done" for r in shared)
    assert {r["numerics"]["cpu_threads"] for r in shared} == {cores // 2}
    assert {r["numerics"]["omp_wait_policy"] for r in shared} == {"PASSIVE"}
