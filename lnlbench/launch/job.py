"""`RunJob`: one run as a picklable `submitit.helpers.Checkpointable`, the callable every launcher executes.

It runs through `lnlbench.execution.execute` (lock, log, code-hash check, failure record); training state lives in
the run directory, so a job requeued after a time-out or pre-emption, or started again after a crash, resumes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import submitit

from lnlbench import status
from lnlbench.errors import ConfigError
from lnlbench.execution import execute, lock_is_free, slurm_job_id, write_failure
from lnlbench.config import RunConfig, RunDir
from lnlbench.launch.attempt import AttemptEnded, stop_when_slurm_ends_job


class RunJob(submitit.helpers.Checkpointable):
    """One run as a callable: `RunJob(config.to_json(), out)()` executes it and returns a short summary.

    Picklable (plain data only), so submitit can ship it to a SLURM node; `checkpoint()` (called by submitit on a
    time-out or preemption signal) resubmits the same callable, which resumes from the run directory's checkpoints.
    """

    def __init__(
        self,
        config: dict[str, Any],
        out: Path | str,
        *,
        cache_dir: Path | str | None = None,
        device: str | None = None,
        keep_checkpoints: bool = False,
        launcher: str = "debug",
        tee_log: bool = True,
        code_sha256: str | None = None,
    ) -> None:
        self.config = dict(config)
        self.out = str(Path(out).resolve())
        self.cache_dir = str(Path(cache_dir).resolve()) if cache_dir is not None else None
        self.device = device
        self.keep_checkpoints = keep_checkpoints
        self.launcher = launcher
        self.tee_log = tee_log
        self.threads: int | None = None  # torch threads; None: $SLURM_CPUS_PER_TASK, else torch's default
        self.code_sha256 = code_sha256  # the code the sweep started with; a worker on other code refuses

    @property
    def run_id(self) -> str:
        return str(self.config["run_id"])

    @property
    def run_dir(self) -> RunDir:
        return RunDir(self.out, self.run_id)

    def __call__(self) -> dict[str, Any]:
        rd = self.run_dir
        rd.path.mkdir(parents=True, exist_ok=True)
        try:
            with stop_when_slurm_ends_job(self.run_id, lambda: resumes_from(rd)) if self.launcher == "slurm" \
                    else contextlib.nullcontext():
                return summary(self._execute(rd))
        except AttemptEnded:
            # SLURM ended the job: leave no result for submitit to find (a requeued attempt writes the real one)
            raise SystemExit(128 + signal.SIGTERM) from None

    def _execute(self, rd: RunDir) -> dict[str, Any]:
        restart = os.environ.get("SLURM_RESTART_COUNT")
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        banner = (
            f"lnlbench: run {self.run_id} starting on {socket.gethostname()} pid {os.getpid()} ({self.launcher}"
            + (f", slurm job {slurm_job_id()}, restart {restart or 0}" if slurm_job_id() else "")
            + (f", CUDA_VISIBLE_DEVICES={gpus}" if gpus is not None else "")
            + f") at {time.strftime('%Y-%m-%d %H:%M:%S')}"
        )
        cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
        threads = self.threads or (int(cpus) if cpus.isdigit() else None)
        try:
            config = RunConfig.from_json(self.config)
            if config.run_id != self.run_id:
                raise ConfigError(
                    f"config of run {self.run_id} hashes to {config.run_id}: written by another lnlbench version; "
                    "rerun the sweep into a fresh output directory"
                )
        except Exception as exc:
            return write_failure(self.out, self.config, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        record = execute(
            config, self.out, cache_dir=self.cache_dir, device=self.device, threads=threads,
            keep_checkpoints=self.keep_checkpoints, launcher=self.launcher, tee_log=self.tee_log,
            expected_code_sha256=self.code_sha256, banner=banner, verbose=True,
        )
        if record.get("status") != "skipped":
            print(f"lnlbench: run {self.run_id} {record.get('status')}", file=sys.stderr, flush=True)
        return record

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on a time-out or preemption: resubmit this callable; it resumes from checkpoints/."""
        print(
            f"lnlbench: run {self.run_id} interrupted (time-out or preemption); asking SLURM to requeue it to resume "
            f"from {self.run_dir.checkpoints}. If this was its last allowed time-out (launcher setting max_requeue), "
            "it is not requeued and is recorded failed instead",
            file=sys.stderr,
            flush=True,
        )
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    def __repr__(self) -> str:
        return f"RunJob({self.run_id}, {self.config.get('method')} on {self.config.get('dataset')}, out={self.out})"


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """run_id, status, test_acc and error of a record."""
    return {
        "run_id": record.get("run_id"),
        "status": record.get("status"),
        "test_acc": (record.get("metrics") or {}).get("test_acc"),
        "error": record.get("error"),
    }


def resumes_from(rd: RunDir) -> str:
    """What a new attempt of the run resumes from: `checkpoint finetune (3 epochs done)`, or the start."""
    ck = status.checkpoint_epochs(rd.path)
    return f"checkpoint {ck}" if ck else "the start (no checkpoint yet)"


def record_if_silent(run: RunJob, error: str) -> bool:
    """After a run's process ended: write a failed record if it left none and nobody runs it now. True if written."""
    rd = run.run_dir
    if rd.read_result() is not None or not lock_is_free(rd.path):
        return False
    write_failure(run.out, run.config, error)
    return True
