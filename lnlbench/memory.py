"""Peak memory of one run, measured from the run's own start: never the lifetime maximum of the process.

Several runs can share one process (a sweep worker, the demo, the Python API), so the process's high-water mark
(`ru_maxrss`) would give every later run the peak of the largest run before it. Per device:

- CUDA: `torch.cuda.reset_peak_memory_stats` at the start, `max_memory_allocated` at the end (tensors only).
- CPU on Linux: the resident-set high-water mark `VmHWM`, reset at the start by writing "5" to
  `/proc/self/clear_refs` (Linux 4.0 and later). Before the reset, freed heap memory is handed back to the system
  (`gc.collect()`, then glibc's `malloc_trim(0)` where the C library has it): glibc keeps the chunks an earlier run
  freed between live ones, so without it a run after DivideMix started from 1.4 GB resident where 0.9 GB was live,
  and every later run in the process recorded that as its own peak.
- CPU elsewhere, or where that reset is refused: a daemon thread samples the resident set (`/proc/self/statm`, or
  psutil where installed) every `SAMPLE_S` seconds; a peak shorter than that can be missed.
- Nothing of the above available: NaN (unknown), never a lifetime figure.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
from pathlib import Path
from typing import Any, Callable

__all__ = ["RunPeakMemory", "current_rss_mb", "release_free_heap", "SAMPLE_S"]

SAMPLE_S = 0.05  # sampling period of the fallback thread
_MB = 2**20
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATM = Path("/proc/self/statm")


def _status_kb(field: str) -> float | None:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM), or None where there is none."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_mb() -> float | None:
    """The resident set of this process now, in MB; None where it cannot be read."""
    try:
        pages = int(_STATM.read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / _MB
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil  # type: ignore[import-not-found]
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / _MB


def release_free_heap() -> bool:
    """Collect garbage and return the C heap's free pages to the system; True where `malloc_trim` ran (glibc)."""
    gc.collect()
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to trim with
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


def _reset_high_water_mark() -> bool:
    """Reset VmHWM to the current resident set; True only where the kernel did."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    hwm, rss = _status_kb("VmHWM"), _status_kb("VmRSS")
    # After a reset the high-water mark is the resident set of that moment (give or take pages touched since).
    return hwm is not None and rss is not None and hwm <= rss + 4096


class _Sampler:
    """A daemon thread keeping the largest resident set it saw."""

    def __init__(self, read: Callable[[], float | None]) -> None:
        self._read = read
        self._stop = threading.Event()
        self.peak = read() or float("nan")
        self._thread = threading.Thread(target=self._loop, name="lnlbench-peak-mem", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._take()

    def _take(self) -> None:
        value = self._read()
        if value is not None and not value <= self.peak:  # also replaces the NaN of "nothing read yet"
            self.peak = value

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self._take()
        return self.peak


class RunPeakMemory:
    """Peak memory (MB) between `start()` and `peak_mb()` on one device; see the module docstring for how."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.how = "not started"
        self._sampler: _Sampler | None = None
        self._sampled = float("nan")

    def start(self) -> "RunPeakMemory":
        """Begin measuring now (resets the counters this run reads)."""
        if getattr(self.device, "type", str(self.device)) == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            self.how = "cuda max_memory_allocated since reset"
            return self
        trimmed = ", freed heap returned first" if release_free_heap() else ""
        if _reset_high_water_mark():
            self.how = "VmHWM since reset (/proc/self/clear_refs)" + trimmed
        elif current_rss_mb() is not None:
            self._sampler = _Sampler(current_rss_mb)
            self.how = f"resident set sampled every {SAMPLE_S:g} s" + trimmed
        else:
            self.how = "unavailable"
        return self

    def peak_mb(self) -> float:
        """The peak since `start()`, in MB; NaN where it cannot be measured on this system."""
        if self.how.startswith("cuda"):
            import torch

            return torch.cuda.max_memory_allocated(self.device) / _MB
        if self.how.startswith("VmHWM"):
            hwm = _status_kb("VmHWM")
            return float("nan") if hwm is None else hwm / 1024
        if self._sampler is not None:
            self._sampled, self._sampler = self._sampler.stop(), None
        return self._sampled
