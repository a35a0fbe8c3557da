"""Planning and launching a sweep: which runs are done, running, queued or to launch; then launch the rest."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lnlbench import status
from lnlbench.errors import ConfigError
from lnlbench.launch.base import Launched
from lnlbench.launch.job import RunJob
from lnlbench.launch.slurm import SubmissionError
from lnlbench.launch.registry import launcher_registry
from lnlbench.launch.settings import LauncherSettings
from lnlbench.config import SCHEMA, RunConfig, write_json_atomic


@dataclass
class Plan:
    """The sweep's runs and what each needs: skipped (done, running, queued) or launched (the rest)."""

    configs: list[RunConfig]
    states: dict[str, status.RunState]

    def ids(self, state: str) -> list[str]:
        return [c.run_id for c in self.configs if self.states[c.run_id].state == state]

    @property
    def queued(self) -> list[str]:
        return [c.run_id for c in self.configs if status.is_queued(self.states[c.run_id])]

    @property
    def to_launch(self) -> list[RunConfig]:
        return [
            c for c in self.configs
            if self.states[c.run_id].state in ("failed", "pending", status.INTERRUPTED_STATE)
            and not status.is_queued(self.states[c.run_id])
        ]

    def describe(self) -> str:
        failed, pending = len(self.ids("failed")), len(self.ids("pending")) - len(self.queued)
        stopped = len(self.ids(status.INTERRUPTED_STATE))
        return (
            f"{len(self.configs)} runs: {len(self.ids('done'))} done, {len(self.ids('running'))} running, "
            f"{len(self.queued)} queued, {failed} failed (relaunched), "
            + (f"{stopped} interrupted (resumed), " if stopped else "") + f"{pending} pending; "
            f"{len(self.to_launch)} to launch"
        )


def make_plan(configs: Sequence[RunConfig], out: Path | str) -> Plan:
    states = {s.run_id: s for s in status.scan(out, [c.run_id for c in configs])}
    return Plan(list(configs), states)


def check_output_dir(out: Path | str, create: bool) -> Path:
    """The output directory, resolved; raise ConfigError if it cannot be written or holds older-schema runs."""
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output directory {out} is a file; pass a directory to --out")
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / f".write-test.{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"output directory {out} is not writable ({exc.strerror or exc}); pass a writable --out"
            ) from None
    else:
        existing = out
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"output directory {out} cannot be created in {existing}; pass a writable --out")
    old = status.old_schema_dirs(out)
    if old:
        raise ConfigError(
            f"{len(old)} run director{'y' if len(old) == 1 else 'ies'} in {out} were written by another lnlbench "
            f"schema (this one writes schema {SCHEMA}), e.g. {old[0]}; use a fresh --out, or move them away"
        )
    return out


def run_jobs(
    configs: Sequence[RunConfig],
    out: Path | str,
    launcher: str,
    *,
    cache_dir: Path | str | None = None,
    device: str | None = None,
    keep_checkpoints: bool = False,
) -> list[RunJob]:
    """One `RunJob` per config (the cache directory and the code hash fixed now: remote jobs use the same cache,
    and a worker whose code changed since this moment refuses to run)."""
    from lnlbench.provenance import run_code_sha256
    from lnlbench.config import default_cache_dir

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    code = {m: run_code_sha256(m) for m in sorted({c.method for c in configs})}
    return [
        RunJob(c.to_json(), out, cache_dir=cache, device=device, keep_checkpoints=keep_checkpoints,
               launcher=launcher, tee_log=launcher != "local", code_sha256=code[c.method])
        for c in configs
    ]


def launch_sweep(
    configs: Sequence[RunConfig],
    out: Path | str,
    launcher_name: str = "local",
    settings: LauncherSettings | None = None,
    *,
    cache_dir: Path | str | None = None,
    device: str | None = None,
    dry_run: bool = False,
    wait: bool = False,
    echo: Callable[[str], None] = print,
) -> tuple[Plan, Launched | None]:
    """Check everything, then launch every run of `configs` that is not done, running or queued.

    Returns the plan and what was launched (None for a dry run or when nothing is left to do).
    """
    settings = settings or LauncherSettings()
    launcher = launcher_registry().get(launcher_name)(settings, out, echo)
    launcher.check()
    existed = Path(out).expanduser().resolve().exists()
    out = check_output_dir(out, create=not dry_run)
    if dry_run:
        plan = make_plan(configs, out)
        echo(plan.describe())
        return plan, None
    claimed: list[RunJob] = []
    with launch_lock(out, echo):  # plan and claim under one lock: two sweeps on one grid never both launch a run
        plan = make_plan(configs, out)
        echo(plan.describe())
        todo = plan.to_launch
        if not todo:
            echo("nothing to launch")
            return plan, None
        echo(f"launching {len(todo)} run(s) with {launcher.describe()} into {out}")
        jobs = run_jobs(todo, out, launcher_name, cache_dir=cache_dir, device=device,
                        keep_checkpoints=settings.keep_checkpoints)
        fresh = [job.run_dir.path for job in jobs if not job.run_dir.path.exists()]
        for job in jobs:  # every run shows as pending in `lnlbench status` from now on
            write_json_atomic(job.run_dir.config, job.config)
        if getattr(launcher, "queues", False):  # submits under the lock; writes each submitted.json (job id) itself
            try:
                launched = launcher.launch(jobs)
            except SubmissionError:
                for path in fresh:  # a refused submission leaves nothing behind
                    shutil.rmtree(path, ignore_errors=True)
                if not existed:
                    (out / LAUNCH_LOCK).unlink(missing_ok=True)
                    with contextlib.suppress(OSError):
                        out.rmdir()
                raise
        else:
            for job in jobs:
                write_json_atomic(job.run_dir.path / status.SUBMITTED, local_claim(launcher_name))
            claimed = jobs
    if not getattr(launcher, "queues", False):
        try:
            launched = launcher.launch(jobs)
        finally:
            for job in claimed:  # the claim ends with this process's launch; a record or a marker says the rest
                with contextlib.suppress(OSError):
                    if (status.read_json(job.run_dir.path / status.SUBMITTED) or {}).get("pid") == os.getpid():
                        (job.run_dir.path / status.SUBMITTED).unlink()
    if wait and not launched.finished:
        launcher.wait(launched)
    return plan, launched


LAUNCH_LOCK = ".launch.lock"  # flock-ed by a sweep while it plans and claims or submits its runs


@contextlib.contextmanager
def launch_lock(out: Path, echo: Callable[[str], None]) -> Iterator[None]:
    """Hold OUT/.launch.lock: one sweep at a time decides what to launch into `out` and claims it."""
    fd = os.open(out / LAUNCH_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            echo(f"another lnlbench sweep is launching into {out}; waiting for it to claim its runs")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def local_claim(launcher: str) -> dict[str, object]:
    """submitted.json of a run handed to a launcher of this process: valid while this process lives."""
    stat = status.proc_stat(os.getpid())
    return {"launcher": launcher, "host": socket.gethostname(), "pid": os.getpid(),
            "pid_start": stat[1] if stat else None, "argv": " ".join(sys.argv[:3]), "submitted_at": time.time()}
