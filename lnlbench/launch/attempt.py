"""A SLURM attempt that stops as soon as SLURM has ended its job (scancel, `scancel -s KILL`, `scontrol requeue`, the
time limit), instead of training on until SIGKILL comes `KillWait` (about 30 s) later.

submitit ignores SIGTERM (`Bypassing signal SIGTERM`) so that a preemption's SIGTERM does not cut short its own
checkpoint-and-requeue on SIGUSR2. Here SIGTERM asks the controller about the job: if SLURM no longer has it
RUNNING, the attempt is over, and it stops at once, writing no further checkpoint or record (a requeued attempt
resumes from the last verified checkpoint). While the job is still RUNNING (a preemption's grace time, a signal sent
by hand) or the controller does not answer, the signal is ignored as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any


class AttemptEnded(BaseException):
    """SLURM ended this attempt's job; not an error of the run (no failed record), a reason to stop now."""


def slurm_job_state(job_id: str) -> str | None:
    """The state squeue shows for a job (RUNNING, COMPLETING, PENDING, ...), `GONE` when the controller no longer
    knows it, None when it cannot be asked."""
    try:
        res = subprocess.run(["squeue", "--noheader", f"--jobs={job_id}", "--format=%T"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return "GONE" if "invalid job id" in res.stderr.lower() else None
    states = res.stdout.split()
    return states[0] if states else "GONE"


@contextlib.contextmanager
def stop_when_slurm_ends_job(run_id: str, where_it_resumes: Callable[[], str],
                             job_id: str | None = None) -> Iterator[None]:
    """While the body runs in a SLURM job: on SIGTERM, raise AttemptEnded if SLURM no longer has the job running.

    `where_it_resumes()` says, for the log, what the next attempt resumes from. Outside SLURM this does nothing.
    """
    job_id = job_id or os.environ.get("SLURM_JOB_ID")
    if not job_id or threading.current_thread() is not threading.main_thread():  # signals reach the main thread
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        if callable(previous):
            previous(signum, frame)  # submitit's handler: logs that it bypasses the signal
        state = slurm_job_state(job_id)
        if state is None or state == "RUNNING":
            return  # still running (a preemption's grace time, a signal by hand), or nobody to ask: go on
        print(f"lnlbench: run {run_id}: SLURM job {job_id} is {state} (cancelled, requeued or out of time); this "
              f"attempt stops now and writes no further checkpoint or record; the next attempt resumes from "
              f"{where_it_resumes()}", file=sys.stderr, flush=True)
        raise AttemptEnded(f"SLURM job {job_id} is {state}")

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
