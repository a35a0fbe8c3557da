"""Launchers: where and how a sweep's runs execute (here, in-process, or on SLURM through submitit).

Every launcher executes the same callable, `RunJob`: a `submitit.helpers.Checkpointable` that claims its run
directory (a lock and a `running.json` heartbeat), runs `execute_run` and makes sure a run never ends without a
record. Training state lives in the run directory (`checkpoints/<phase>.pt`, written after every epoch), so a
`RunJob` requeued after a SLURM time-out or preemption, or started again after a crash, resumes where it stopped.

Launchers are looked up by name in `launcher_registry()`: the built-ins `local`, `debug`, `slurm` and any class a
plugin returns from the `lnlbench_launchers` hook.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import submitit

from lnlbench import status
from lnlbench.errors import ConfigError
from lnlbench.registry import Registry
from lnlbench.execution import (  # noqa: F401  (claim and tee_output stay importable from here)
    claim, execute, lock_is_free, slurm_job_id, tee_output, write_failure,
)
from lnlbench.runs import SCHEMA, RunConfig, RunDir, write_json_atomic

DEFAULT_TIME_MIN = 240  # SLURM time limit per run when none is given (submitit's own default, 5 min, is too short)
DEFAULT_MAX_REQUEUE = 3  # time-outs after which a run is no longer requeued (submitit's default max_num_timeout)


@dataclass
class LauncherSettings:
    """Launcher options from the sweep file's `launcher:` section and the command line (flags win)."""

    jobs: int = 1
    partition: str | None = None
    time: Any = None  # minutes or a SLURM duration string
    gpus: int | None = None
    cpus: int | None = None
    mem: Any = None  # "16G" or GB
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    sbatch: dict[str, Any] = field(default_factory=dict)
    array_parallelism: int | None = None
    setup: list[str] = field(default_factory=list)
    max_requeue: int = DEFAULT_MAX_REQUEUE
    keep_checkpoints: bool = False
    job_name: str = "lnlbench"

    @classmethod
    def from_dict(cls, d: dict[str, Any], **overrides: Any) -> LauncherSettings:
        """From a sweep file's launcher section (without `name`) plus non-None overrides."""
        merged = {k: v for k, v in d.items() if k != "name"}
        merged.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(merged) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown launcher setting(s) {', '.join(unknown)}; see docs/sweeps.md")
        return cls(**merged)


# ------------------------------------------------------------------------------------------- the run callable ---
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
        return summary(self._execute(rd))

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
            f"lnlbench: run {self.run_id} interrupted (time-out or preemption); requeued, it resumes from "
            f"{self.run_dir.checkpoints}",
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


def record_if_silent(run: RunJob, error: str) -> bool:
    """After a run's process ended: write a failed record if it left none and nobody runs it now. True if written."""
    rd = run.run_dir
    if rd.read_result() is not None or not lock_is_free(rd.path):
        return False
    write_failure(run.out, run.config, error)
    return True


# ------------------------------------------------------------------------------------------------ launchers ---
@dataclass
class Launched:
    """What a launcher did: the runs it started and, for queueing launchers, their submitit jobs."""

    runs: list[RunJob]
    jobs: list[Any] = field(default_factory=list)
    finished: bool = True  # False while the runs may still be queued or running elsewhere


class Launcher:
    """Base class of launchers. Subclasses set `name` and `description` and implement `launch`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, settings: LauncherSettings, out: Path | str, echo: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.out = Path(out).resolve()
        self.echo = echo

    def check(self) -> None:
        """Raise ConfigError when this launcher cannot work here; called before anything is written."""

    def describe(self) -> str:
        return self.name

    def launch(self, runs: Sequence[RunJob]) -> Launched:
        raise NotImplementedError

    def wait(self, launched: Launched) -> None:
        """Block until every launched run has ended (launchers that run in the foreground have nothing to do)."""


def _run_label(run: RunJob) -> str:
    c = run.config
    return f"{run.run_id} {c.get('method')} {c.get('dataset')} {c.get('noise')} {c.get('rate')} seed {c.get('seed')}"


def _ended(run: RunJob, echo: Callable[[str], None], prefix: str) -> None:
    rec = run.run_dir.read_result() or {}
    if rec.get("status") == "done":
        acc = (rec.get("metrics") or {}).get("test_acc")
        wall = (rec.get("cost") or {}).get("wall_clock_s")
        extra = f" test_acc {acc:.4f}" if isinstance(acc, float) else ""
        extra += f" ({wall:.0f} s)" if isinstance(wall, (int, float)) else ""
        echo(f"{prefix} done {_run_label(run)}{extra}")
    elif rec:
        echo(f"{prefix} {rec.get('status')} {_run_label(run)}: {rec.get('error', '')}")
    else:
        state = status.run_state(run.run_dir.path)
        echo(f"{prefix} {state.state} {_run_label(run)}" + (f": {state.detail}" if state.detail else ""))


class DebugLauncher(Launcher):
    name = "debug"
    description = "in this process, one run after another (for pdb and print debugging)"

    def launch(self, runs: Sequence[RunJob]) -> Launched:
        for i, run in enumerate(runs, 1):
            self.echo(f"[{i}/{len(runs)}] start {_run_label(run)}")
            run()
            _ended(run, self.echo, f"[{i}/{len(runs)}]")
        return Launched(list(runs))


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


class SlurmLauncher(Launcher):
    name = "slurm"
    description = "SLURM through submitit: one job array per sweep, requeued on time-out/preemption, resumed"

    def check(self) -> None:
        if shutil.which("sbatch") is None:
            raise ConfigError(
                "launcher 'slurm' needs the SLURM client (`sbatch` is not on PATH); run on a login node of the "
                "cluster, or use --launcher local"
            )

    def describe(self) -> str:
        s = self.settings
        parts = [f"partition {s.partition}" if s.partition else "default partition", f"time {self.time_min()} min"]
        if s.gpus:
            parts.append(f"{s.gpus} GPU")
        if s.array_parallelism:
            parts.append(f"{s.array_parallelism} at a time")
        return f"slurm ({', '.join(parts)})"

    def time_min(self) -> int:
        from lnlbench.sweep import parse_time_min

        return parse_time_min(self.settings.time) if self.settings.time is not None else DEFAULT_TIME_MIN

    def parameters(self) -> dict[str, Any]:
        """submitit SlurmExecutor parameters from the settings."""
        from lnlbench.sweep import parse_mem_gb

        s = self.settings
        params: dict[str, Any] = {
            "job_name": s.job_name,
            "time": self.time_min(),
            "partition": s.partition,
            "cpus_per_task": s.cpus,
            "gpus_per_node": s.gpus or None,
            "mem": parse_mem_gb(s.mem) if s.mem is not None else None,
            "account": s.account,
            "qos": s.qos,
            "constraint": s.constraint,
            "array_parallelism": s.array_parallelism,
            "setup": list(s.setup) or None,
            "additional_parameters": {str(k).replace("-", "_"): v for k, v in s.sbatch.items()} or None,
        }
        return {k: v for k, v in params.items() if v is not None}

    def executor(self) -> submitit.SlurmExecutor:
        ex = submitit.SlurmExecutor(folder=self.out / ".submitit" / "%j", max_num_timeout=self.settings.max_requeue)
        try:
            ex.update_parameters(**self.parameters())
        except ValueError as exc:
            raise ConfigError(f"invalid SLURM settings: {exc}") from None
        return ex

    def launch(self, runs: Sequence[RunJob]) -> Launched:
        if not runs:
            return Launched([])
        ex = self.executor()
        for run in runs:
            write_json_atomic(run.run_dir.config, run.config)
        with ex.batch():
            jobs = [ex.submit(run) for run in runs]
        now = time.time()
        for run, job in zip(runs, jobs):
            write_json_atomic(
                run.run_dir.path / status.SUBMITTED,
                {"launcher": "slurm", "job_id": str(job.job_id), "submitted_at": now, "logs": str(job.paths.folder)},
            )
        first = str(jobs[0].job_id).split("_")[0]
        self.echo(f"submitted {len(jobs)} run(s) as SLURM job {first}" + (" (array)" if len(jobs) > 1 else ""))
        return Launched(list(runs), jobs, finished=False)

    def wait(self, launched: Launched) -> None:
        n = len(launched.jobs)
        for i, (run, job) in enumerate(zip(launched.runs, launched.jobs), 1):
            try:
                job.result()
                error = ""
            except Exception as exc:  # UncompletedJobError (killed, out of memory, timed out too often), ...
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                error = f"SLURM job {job.job_id} ended without a record ({first}); logs: {job.paths.stderr}"
            if error:
                record_if_silent(run, error)
            _ended(run, self.echo, f"[{i}/{n}]")
        launched.finished = True


BUILTIN_LAUNCHERS: tuple[type[Launcher], ...] = (LocalLauncher, DebugLauncher, SlurmLauncher)


@functools.cache
def launcher_registry() -> Registry:
    """Name -> launcher class: the built-ins and every class returned by a plugin's `lnlbench_launchers` hook."""
    from lnlbench.plugins import plugin_manager, plugin_source

    registry: Registry = Registry("launcher")
    for cls in BUILTIN_LAUNCHERS:
        registry.add(cls.name, cls)
    pm = plugin_manager()
    for plugin in pm.get_plugins():
        impl = getattr(plugin, "lnlbench_launchers", None)
        if impl is None:
            continue
        for cls in impl() or []:
            if not (isinstance(cls, type) and issubclass(cls, Launcher) and cls.name):
                raise ConfigError(
                    f"plugin {plugin_source(plugin)} returned {cls!r} from lnlbench_launchers, not a named "
                    "lnlbench.launch.Launcher subclass"
                )
            registry.add(cls.name, cls)
    return registry


# ------------------------------------------------------------------------------------------ planning a sweep ---
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
            if self.states[c.run_id].state in ("failed", "pending") and not status.is_queued(self.states[c.run_id])
        ]

    def describe(self) -> str:
        failed, pending = len(self.ids("failed")), len(self.ids("pending")) - len(self.queued)
        return (
            f"{len(self.configs)} runs: {len(self.ids('done'))} done, {len(self.ids('running'))} running, "
            f"{len(self.queued)} queued, {failed} failed (relaunched), {pending} pending; "
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
    from lnlbench.runner import default_cache_dir

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
    out = check_output_dir(out, create=not dry_run)
    plan = make_plan(configs, out)
    echo(plan.describe())
    todo = plan.to_launch
    if dry_run or not todo:
        if not todo:
            echo("nothing to launch")
        return plan, None
    echo(f"launching {len(todo)} run(s) with {launcher.describe()} into {out}")
    jobs = run_jobs(todo, out, launcher_name, cache_dir=cache_dir, device=device,
                    keep_checkpoints=settings.keep_checkpoints)
    for job in jobs:  # every run shows as pending in `lnlbench status` from now on
        write_json_atomic(job.run_dir.config, job.config)
    launched = launcher.launch(jobs)
    if wait and not launched.finished:
        launcher.wait(launched)
    return plan, launched
