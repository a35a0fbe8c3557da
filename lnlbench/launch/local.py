"""The `local` launcher: N runs at a time in forkserver worker processes, spread over the visible GPUs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from lnlbench import status

from lnlbench.launch.base import Launched, Launcher, _ended, _run_label
from lnlbench.launch.job import RunJob, record_if_silent
from lnlbench.config import write_json_atomic


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
LOCAL_PRELOAD = ["lnlbench.harness", "lnlbench.data", "lnlbench.noise", "lnlbench.launch"]


def _local_worker(job: RunJob, log: str, env: dict[str, str], gpu: str | None, threads: int) -> None:
    """Body of a local worker process: its own process group (the launcher stops it and any children it starts with
    one signal), the launcher's environment, output to the run's log.txt, one GPU, a share of the cores; then the
    job."""
    os.setpgid(0, 0)
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

    def stop(signum: int, _frame: Any) -> None:
        raise WorkerStopped(signum)

    signal.signal(signal.SIGTERM, stop)  # unwinds: the lock, running.json and half-written temporaries are cleaned up
    try:
        result = job()
    except WorkerStopped as stopped:
        print(f"lnlbench: run {job.run_id} stopped by {signal.Signals(stopped.signum).name} from its launcher",
              file=sys.stderr, flush=True)
        os._exit(128 + stopped.signum)
    sys.stdout.flush()
    os._exit(0 if result.get("status") in ("done", "skipped") else 1)


def share_cores_politely() -> None:
    """Workers that share the cores wait passively: libgomp's default spinning wait burns the cores a sibling
    worker needs (up to 10x slower on 2 cores, docs/performance.md). OpenMP reads the setting when torch loads, so it
    is set here, before the fork server that loads torch for every worker starts; a value the user set is kept."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class WorkerStopped(BaseException):
    """SIGTERM reached a worker: not an error of the run (no failed record), a reason to stop cleanly."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


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
        if jobs > 1:
            share_cores_politely()
        # forkserver: workers fork from a clean single-threaded server that has imported torch once
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(LOCAL_PRELOAD)
        queue = list(enumerate(runs, 1))
        active: dict[int, tuple[Any, RunJob, int]] = {}  # slot -> (process, run, index)
        free = list(range(jobs))
        n = len(runs)
        with stop_signals_raise():
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
            except LauncherStopped as stop:
                self._stop_workers([(proc, run) for proc, run, _ in active.values()], stop.reason)
                raise KeyboardInterrupt(stop.reason) from None
            except KeyboardInterrupt:
                self._stop_workers([(proc, run) for proc, run, _ in active.values()], "SIGINT to the local launcher")
                raise
        return Launched(list(runs))

    def _stop_workers(self, workers: list[tuple[Any, RunJob]], reason: str) -> None:
        """SIGTERM each worker's process group, SIGKILL what is left after `STOP_GRACE_S`, stop the fork server,
        and mark every run that did not finish `interrupted`."""
        with contextlib.suppress(Exception), ignoring_stop_signals():
            self.echo(f"{reason}: stopping {len(workers)} run(s)")
            for proc, _ in workers:
                signal_group(proc.pid, signal.SIGTERM)
            end = time.monotonic() + self.STOP_GRACE_S
            for proc, _ in workers:
                proc.join(timeout=max(0.0, end - time.monotonic()))
            for proc, _ in workers:
                signal_group(proc.pid, signal.SIGKILL)  # the group: children of a worker too
                proc.join(timeout=10)
            for proc, run in workers:
                if run.run_dir.read_result() is None:
                    mark_interrupted(run, reason)
                    self.echo(f"interrupted {_run_label(run)}; `lnlbench sweep` resumes it from its last checkpoint")
            stop_fork_server()

    STOP_GRACE_S = 20.0


class LauncherStopped(Exception):
    """SIGTERM (or SIGINT) reached the local launcher."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While the body runs (in the main thread), SIGTERM and SIGINT raise LauncherStopped instead of killing the
    launcher outright and orphaning its workers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise LauncherStopped(f"{signal.Signals(signum).name} to the local launcher (pid {os.getpid()})")

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@contextlib.contextmanager
def ignoring_stop_signals() -> Iterator[None]:
    """A second SIGTERM/SIGINT while the workers are being stopped does not cut the clean-up short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def signal_group(pid: int | None, sig: int) -> None:
    """Send `sig` to the process group a worker leads (to the worker alone if it has not made its group yet)."""
    if not pid:
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_fork_server() -> None:
    """Stop multiprocessing's fork server (it would outlive an interrupted launcher otherwise)."""
    from multiprocessing import forkserver

    with contextlib.suppress(Exception):
        forkserver._forkserver._stop()


def mark_interrupted(run: RunJob, reason: str) -> None:
    """Write OUT/<run>/interrupted.json: `lnlbench status` shows the run `interrupted`, with why and when."""
    write_json_atomic(run.run_dir.path / status.INTERRUPTED,
                      {"reason": reason, "host": socket.gethostname(), "at": time.time(),
                       "checkpoint": status.checkpoint_epochs(run.run_dir.path)})


def describe_exit(rc: int) -> str:
    """'exited with code 3' or 'was killed by SIGKILL'."""
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"
