"""The `slurm` launcher: one submitit job array per sweep, requeued on time-out or pre-emption, resumed."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from typing import Any

import submitit

from lnlbench import status
from lnlbench.errors import ConfigError
from lnlbench.launch.base import Launched, Launcher, _ended
from lnlbench.launch.job import RunJob, record_if_silent
from lnlbench.launch.settings import DEFAULT_TIME_MIN
from lnlbench.runs import write_json_atomic


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
