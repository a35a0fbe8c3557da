"""The `local` launcher: N runs at a time in forkserver worker processes, spread over the visible GPUs."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from lnlbench.launch.base import Launched, Launcher, _ended, _run_label
from lnlbench.launch.job import RunJob, record_if_silent
from lnlbench.runs import write_json_atomic


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (empty without GPUs)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return []


# Imported once by the local launcher's fork server, so each run starts without paying for torch/timm imports.
LOCAL_PRELOAD = ["lnlbench.runner", "lnlbench.data", "lnlbench.noise", "lnlbench.launch"]


def _local_worker(job: RunJob, log: str, env: dict[str, str], gpu: str | None, threads: int) -> None:
    """Body of a local worker process: the launcher's environment, output to the run's log.txt, one GPU, a share
    of the cores; then the job."""
    os.environ.clear()  # the fork server's environment is the one it started with; take the launcher's current one
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = sys.stderr = open(log, "a", buffering=1)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before anything touches CUDA in this process
    job.threads = threads
    result = job()
    sys.stdout.flush()
    os._exit(0 if result.get("status") in ("done", "skipped") else 1)


class LocalLauncher(Launcher):
    name = "local"
    description = "on this machine, N runs at a time in worker processes (--jobs N), spread over the visible GPUs"

    POLL_S = 0.2

    def describe(self) -> str:
        gpus = visible_gpus()
        where = f" over GPUs {','.join(gpus)}" if gpus else ""
        return f"local ({self.settings.jobs} at a time{where})"

    def launch(self, runs: Sequence[RunJob]) -> Launched:
        import multiprocessing

        jobs = max(1, int(self.settings.jobs))
        gpus = visible_gpus()
        threads = max(1, (os.cpu_count() or 1) // jobs)
        # forkserver: workers fork from a clean single-threaded server that has imported torch once
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(LOCAL_PRELOAD)
        queue = list(enumerate(runs, 1))
        active: dict[int, tuple[Any, RunJob, int]] = {}  # slot -> (process, run, index)
        free = list(range(jobs))
        n = len(runs)
        try:
            while queue or active:
                while queue and free:
                    i, run = queue.pop(0)
                    slot = free.pop(0)
                    write_json_atomic(run.run_dir.config, run.config)
                    gpu = gpus[slot % len(gpus)] if gpus else None
                    proc = ctx.Process(
                        target=_local_worker, args=(run, str(run.run_dir.log), dict(os.environ), gpu, threads),
                        name=f"lnlbench-{run.run_id}",
                    )
                    proc.start()
                    on_gpu = f" on GPU {gpu}" if gpu else ""
                    self.echo(f"[{i}/{n}] start {_run_label(run)}{on_gpu} (pid {proc.pid})")
                    active[slot] = (proc, run, i)
                time.sleep(self.POLL_S)
                for slot, (proc, run, i) in list(active.items()):
                    if proc.is_alive():
                        continue
                    proc.join()
                    rc = proc.exitcode
                    del active[slot]
                    free.append(slot)
                    if rc != 0:
                        record_if_silent(run, f"worker process {describe_exit(rc)} before writing a record; see "
                                              f"{run.run_dir.log}")
                    _ended(run, self.echo, f"[{i}/{n}]")
        except KeyboardInterrupt:
            for proc, *_ in active.values():
                with contextlib.suppress(OSError, ValueError):
                    os.kill(proc.pid, signal.SIGINT)
            for proc, *_ in active.values():
                proc.join(timeout=30)
            raise
        return Launched(list(runs))


def describe_exit(rc: int) -> str:
    """'exited with code 3' or 'was killed by SIGKILL'."""
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"
