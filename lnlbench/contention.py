"""How loaded the host was while a run measured its wall-clock: recorded with every run, read by the report.

A run asks for `threads` CPU threads. From /proc/stat (Linux) we know how many core-seconds the whole host spent busy
during the run, and from the process's own CPU time how many of them were ours: the rest is other work. The cores
left for the run are `host_cpus - others_busy_cores`; the run is **contended** when that is less than
`CONTENDED_SHARE` of the threads it asked for (on a GPU run, of one core: the host thread that feeds the GPU).
The 1-minute load average at start and end is recorded too, for hosts without /proc/stat.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

CONTENDED_SHARE = 0.8


def _host_busy_seconds() -> float | None:
    """Core-seconds the host has spent busy since boot (user+nice+system+irq+softirq+steal), or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:]]
    busy = sum(ticks[i] for i in (0, 1, 2, 5, 6, 7) if i < len(ticks))  # user nice system irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _load1() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


@dataclass
class ContentionProbe:
    """Start it when the run starts; `finish()` gives the record's `contention` block."""

    threads: int
    on_gpu: bool = False

    def __post_init__(self) -> None:
        self.wall0 = time.perf_counter()
        self.cpu0 = _own_cpu_seconds()
        self.busy0 = _host_busy_seconds()
        self.load0 = _load1()

    def finish(self) -> dict[str, object]:
        wall = max(time.perf_counter() - self.wall0, 1e-9)
        cpu = _own_cpu_seconds() - self.cpu0
        busy1 = _host_busy_seconds()
        host_cpus = os.cpu_count() or 1
        others = None
        if self.busy0 is not None and busy1 is not None:
            others = max(0.0, (busy1 - self.busy0 - cpu) / wall)
        wanted = 1 if self.on_gpu else max(1, self.threads)
        available = None if others is None else max(0.0, host_cpus - others)
        contended = None if available is None else available < CONTENDED_SHARE * min(wanted, host_cpus)
        return {
            "host_cpus": host_cpus,
            "threads": self.threads,
            "process_cpu_s": cpu,
            "cpu_utilisation": cpu / wall,  # cores this run kept busy on average
            "others_busy_cores": others,  # cores other processes kept busy on average while it ran
            "available_cores": available,
            "load1_start": self.load0,
            "load1_end": _load1(),
            "contended": contended,
            "rule": f"contended when host_cpus - others_busy_cores < {CONTENDED_SHARE} x threads asked for",
        }
