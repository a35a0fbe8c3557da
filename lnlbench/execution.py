"""The one path every run executes through (`lnlbench run`, `lnlbench demo`, every launcher's worker): claim the
run directory (a lock and a heartbeating `running.json`), copy the output into its `log.txt`, refuse code that
changed since the sweep started, run, and make sure the run never ends without a record.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from lnlbench import status, verified
from lnlbench.log import ensure_configured, get_logger
from lnlbench.config import SCHEMA, RunConfig, RunDir, write_json_atomic

LOG = get_logger("execution")

@contextlib.contextmanager
def claim(run_dir: Path, launcher: str, wait: bool = False) -> Iterator[bool]:
    """Hold the run directory's lock and a heartbeating `running.json` while the body runs.

    Yields False (and writes nothing) when another live process holds the lock, or, with `wait`, blocks until that
    process lets it go. The lock is released by the
    kernel when the process dies, so a killed run never blocks its relaunch.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / status.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if not wait:
                yield False
                return
            LOG.info(f"lnlbench: run {run_dir.name} is executing in another process; waiting for it to end")
            fcntl.flock(fd, fcntl.LOCK_EX)
        marker_path = run_dir / status.MARKER
        stat = status.proc_stat(os.getpid())
        attempt = uuid.uuid4().hex  # this attempt's token: a later attempt writes its own into running.json
        write_json_atomic(
            marker_path,
            {
                "attempt": attempt,
                "pid": os.getpid(),
                "pid_start": stat[1] if stat else None,
                "host": socket.gethostname(),
                "launcher": launcher,
                "slurm_job_id": slurm_job_id(),
                "started_at": time.time(),
            },
        )
        (run_dir / status.INTERRUPTED).unlink(missing_ok=True)  # running again: the old interruption is history
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(status.HEARTBEAT_S):
                with contextlib.suppress(OSError):
                    os.utime(marker_path)

        beat = threading.Thread(target=heartbeat, name="lnlbench-heartbeat", daemon=True)
        beat.start()
        try:
            with verified.write_guard(lambda _path: still_ours(run_dir, attempt)):
                yield True
        finally:
            stop.set()
            if (status.read_json(marker_path) or {}).get("attempt") == attempt:
                marker_path.unlink(missing_ok=True)  # a later attempt's marker is that attempt's to remove
    finally:
        os.close(fd)


class AttemptSuperseded(BaseException):
    """A later attempt of the run took it over (its token is in running.json): this one must write nothing more."""


def still_ours(run_dir: Path, attempt: str) -> None:
    """Raise AttemptSuperseded unless `running.json` still names this attempt (checked before every checkpoint).

    The lock keeps two attempts apart where the file system shares locks; where it does not (two nodes, a file system
    mounted without shared locks, a job SLURM requeued elsewhere before the old step was gone), this token does.
    """
    marker = status.read_json(run_dir / status.MARKER)
    if marker is not None and marker.get("attempt") == attempt:
        return
    if marker is None:
        who = "a later attempt (since ended: running.json is gone)"
    else:
        job = marker.get("slurm_job_id")
        who = f"a later attempt on {marker.get('host')}:{marker.get('pid')}" + (f" (slurm job {job})" if job else "")
    msg = (f"run {run_dir.name}: {who} took over this run; this attempt stops and writes no further checkpoint or "
           "record, so the two cannot race")
    print(f"lnlbench: {msg}", file=sys.stderr, flush=True)
    raise AttemptSuperseded(msg)


def lock_is_free(run_dir: Path) -> bool:
    """Whether no process executes the run now (tries the lock and lets it go at once)."""
    try:
        fd = os.open(run_dir / status.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class _Tee:
    """A text stream writing to two streams (the process's own and the run's log.txt); when the log cannot be written
    (a full disk) the output goes on to the process's own stream alone."""

    def __init__(self, a: TextIO, b: TextIO) -> None:
        self.a, self.b = a, b
        self.b_failed = False

    def write(self, s: str) -> int:
        self.a.write(s)
        self._to_b(lambda: self.b.write(s))
        return len(s)

    def flush(self) -> None:
        self.a.flush()
        self._to_b(self.b.flush)

    def _to_b(self, act: Any) -> None:
        if self.b_failed:
            return
        try:
            act()
        except OSError:
            self.b_failed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.a, name)


@contextlib.contextmanager
def tee_output(log: Path) -> Iterator[None]:
    """Copy sys.stdout and sys.stderr into `log` (appended: every attempt of a run is in one file)."""
    f = open(log, "a", buffering=1)
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(old[0], f), _Tee(old[1], f)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = old
        with contextlib.suppress(OSError):  # the last lines may not fit on a full disk
            f.close()


def write_failure(out: Path | str, config: dict[str, Any], error: str, tb: str | None = None) -> dict[str, Any]:
    """Write a failed record for a run that could not record itself (crash outside the harness, killed worker)."""
    rd = RunDir(out, str(config["run_id"]))
    rd.path.mkdir(parents=True, exist_ok=True)
    if tb:
        rd.traceback.write_text(tb)
    from lnlbench.record import BackboneInfo, ResultRecord

    record = ResultRecord(
        schema=SCHEMA,
        run_id=str(config["run_id"]),
        status="failed",
        error=error,
        method=config.get("method"),
        dataset=config.get("dataset"),
        hparams=config.get("hparams"),
        seed=config.get("seed"),
        backbone=BackboneInfo(name=str(config.get("backbone")), weights=str(config.get("weights"))),
        config={k: v for k, v in config.items() if k not in ("data_root", "noise_file", "run_id")},
    ).to_json()
    write_json_atomic(rd.result, record)
    return record




def execute(
    config: RunConfig,
    out: Path | str,
    *,
    cache_dir: Path | str | None = None,
    device: str | None = None,
    threads: int | None = None,
    keep_checkpoints: bool = False,
    launcher: str = "run",
    tee_log: bool = True,
    expected_code_sha256: str | None = None,
    wait_for_lock: bool = False,
    banner: str | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Execute one run under its lock and return its record (a run another process holds comes back as
    {"status": "skipped"}, or, with `wait_for_lock`, as that process's record once it has finished).

    A finished run is never recomputed. A worker whose code hash is not `expected_code_sha256` (the hash the sweep
    started with) refuses, with a failed record saying why.
    """
    ensure_configured()  # worker processes (forkserver, SLURM) start with logging unconfigured
    rd = RunDir(out, config.run_id)
    try:
        return _execute(config, rd, launcher, tee_log, wait_for_lock, banner, cache_dir, device, threads,
                        keep_checkpoints, expected_code_sha256, verbose)
    except OSError as exc:  # the claim itself could not be written (running.json, log.txt): nothing ran
        if not disk_full(exc):
            raise
        msg = disk_full_message(rd.path, exc)
        print(f"lnlbench: run {config.run_id} failed: {msg}; no record could be written", file=sys.stderr,
              flush=True)
        return {"run_id": config.run_id, "status": "failed", "error": msg}


def _execute(config: RunConfig, rd: RunDir, launcher: str, tee_log: bool, wait_for_lock: bool, banner: str | None,
             *args: Any) -> dict[str, Any]:
    rd.path.mkdir(parents=True, exist_ok=True)
    with claim(rd.path, launcher, wait=wait_for_lock) as claimed:
        if not claimed:
            msg = f"run {config.run_id} is already executing in another process (see {rd.path / status.MARKER})"
            LOG.warning(f"lnlbench: {msg}; not started twice")
            return {"run_id": config.run_id, "status": "skipped", "error": msg}
        with (tee_output(rd.log) if tee_log else contextlib.nullcontext()):
            if banner:
                LOG.info(banner)
            try:
                return _execute_claimed(config, rd, *args)
            except AttemptSuperseded as exc:
                return {"run_id": config.run_id, "status": "skipped", "error": str(exc)}


def _execute_claimed(
    config: RunConfig,
    rd: RunDir,
    cache_dir: Path | str | None,
    device: str | None,
    threads: int | None,
    keep_checkpoints: bool,
    expected_code_sha256: str | None,
    verbose: bool,
) -> dict[str, Any]:
    try:
        import torch

        from lnlbench.provenance import run_code_sha256
        from lnlbench.harness import execute_run

        if threads:
            torch.set_num_threads(int(threads))
        if expected_code_sha256 is not None:
            now = run_code_sha256(config.method)
            if now != expected_code_sha256:
                raise CodeChangedError(
                    f"the lnlbench or plugin source changed since this sweep started (code hash {now[:12]}, the "
                    f"sweep's {expected_code_sha256[:12]}): a run must not mix code versions; finish or stop the "
                    "sweep, then launch it again so every run uses the code as it is now"
                )
        record = execute_run(
            config, rd.path.parent, cache_dir=Path(cache_dir) if cache_dir is not None else None, device=device,
            verbose=verbose, keep_checkpoints=keep_checkpoints,
        )
        said = str(record.get("error") or "")
        if record.get("status") == "failed" and any(f"[Errno {e}]" in said for e in DISK_FULL):
            record = {**record, "error": disk_full_message(rd.path, said)}  # name the disk and the fix
            LOG.error(f"lnlbench: run {config.run_id} failed: {record['error']}")
            write_json_atomic(rd.result, record)
    except Exception as exc:  # a run never ends without a record: errors outside execute_run land here
        error = disk_full_message(rd.path, exc) if disk_full(exc) else f"{type(exc).__name__}: {exc}"
        try:
            record = write_failure(rd.path.parent, config.to_json(), error, traceback.format_exc())
        except OSError as again:
            if not disk_full(again):
                raise
            LOG.error(f"lnlbench: run {config.run_id} failed: {error}; no record could be written (the disk is full), "
                      "so it shows pending in `lnlbench status` until it runs again")
            record = {"run_id": config.run_id, "status": "failed", "error": error}
    return record


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: BaseException) -> bool:
    """Whether an error is a full disk or an exceeded disk quota."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def disk_full_message(run_dir: Path, error: object) -> str:
    """The error of a run that filled its output disk: what happened, where, and the fix."""
    return (f"the output disk is full ({error}): no space left on the file system holding {run_dir}; free space "
            f"there (see `df -h {run_dir.parent}`) or launch into another --out, then run it again: it resumes from "
            "its last checkpoint")


def slurm_job_id() -> str | None:
    """`<array job>_<task>` or `<job>` of the SLURM job this process runs in."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


class CodeChangedError(RuntimeError):
    """The source on disk is not the source the sweep started with."""
