"""The report's peak memory is each run's own: two runs in one process get independent peaks (issue 14, item 6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lnlbench.harness as harness
from lnlbench import memory
from lnlbench.harness import execute_run, resolve_config
from lnlbench.memory import RunPeakMemory, current_rss_mb

BLOCK_MB = 256  # what the first "run" allocates and touches, then frees
TINY = dict(dataset="digits", noise="sym", rate=0.4, backbone="test_efficientnet", weights="random", image_size=8)

needs_rss = pytest.mark.skipif(current_rss_mb() is None, reason="this system does not expose the resident set")


def _allocate_and_free(mb: int) -> None:
    block = np.ones(mb * 2**20, dtype=np.uint8)  # np.ones writes every page: resident, not just reserved
    assert int(block[-1]) == 1
    del block


def _two_measurements(monkeypatch, *, sampled: bool) -> tuple[float, float]:
    if sampled:
        monkeypatch.setattr(memory, "_reset_high_water_mark", lambda: False)
    first = RunPeakMemory("cpu").start()
    _allocate_and_free(BLOCK_MB)
    if sampled:  # give the sampler a look at the block before it goes
        block = np.ones(BLOCK_MB * 2**20, dtype=np.uint8)
        first._sampler._take()
        del block
    peak1 = first.peak_mb()
    second = RunPeakMemory("cpu").start()
    peak2 = second.peak_mb()
    assert ("sampled" in second.how) == sampled, second.how
    return peak1, peak2


@needs_rss
@pytest.mark.parametrize("sampled", [False, True], ids=["high-water-mark-reset", "sampling-thread"])
def test_a_second_measurement_in_the_same_process_does_not_inherit_the_first_peak(monkeypatch, sampled):
    if not sampled and not memory._reset_high_water_mark():
        pytest.skip("this kernel does not reset VmHWM through /proc/self/clear_refs")
    peak1, peak2 = _two_measurements(monkeypatch, sampled=sampled)
    assert math.isfinite(peak1) and math.isfinite(peak2)
    assert peak1 - peak2 > BLOCK_MB / 2, (peak1, peak2)


@needs_rss
def test_two_runs_in_one_process_record_independent_peaks(monkeypatch, tmp_path):
    """The first run also allocates BLOCK_MB; the second run's recorded peak must not carry it."""
    real = harness._execute
    calls: list[int] = []

    def execute(*args, **kwargs):
        real(*args, **kwargs)
        if not calls:
            _allocate_and_free(BLOCK_MB)
        calls.append(1)

    monkeypatch.setattr(harness, "_execute", execute)
    cache = tmp_path / "cache"
    first = execute_run(resolve_config(method="lp", hparams={"epochs": 1}, seed=0, **TINY), tmp_path / "out",
                        cache_dir=cache, device="cpu", verbose=False)
    second = execute_run(resolve_config(method="lp", hparams={"epochs": 1}, seed=1, **TINY), tmp_path / "out",
                         cache_dir=cache, device="cpu", verbose=False)
    assert first["status"] == second["status"] == "done", (first.get("error"), second.get("error"))
    peak1, peak2 = first["cost"]["peak_mem_mb"], second["cost"]["peak_mem_mb"]
    assert peak1 - peak2 > BLOCK_MB / 2, (peak1, peak2)


@needs_rss
def test_heap_an_earlier_run_freed_is_not_counted_as_the_next_runs_peak():
    """glibc keeps freed chunks that sit between live ones (as a training run leaves them); the next run's peak
    must not start from them. Reproduced: 256 MB freed between small survivors stayed resident until malloc_trim."""
    if not memory._reset_high_water_mark():
        pytest.skip("this kernel does not reset VmHWM through /proc/self/clear_refs")
    blocks, survivors = [], []
    for _ in range(BLOCK_MB * 16):  # 64 KB blocks (heap, not mmap), each followed by a small live allocation
        blocks.append(np.ones(2**16, dtype=np.uint8))
        survivors.append(np.ones(2**12, dtype=np.uint8))
    del blocks
    resident_before = current_rss_mb()
    run = RunPeakMemory("cpu").start()
    if "freed heap returned first" not in run.how:
        pytest.skip("no malloc_trim in this C library: freed heap cannot be handed back")
    assert resident_before - run.peak_mb() > BLOCK_MB / 2, (resident_before, run.peak_mb())
    del survivors
