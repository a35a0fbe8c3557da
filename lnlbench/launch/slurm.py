"""The `slurm` launcher: one submitit job array per sweep, requeued on time-out or pre-emption, resumed."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from lnlbench import status
from lnlbench.errors import ConfigError
from lnlbench.launch.base import Launched, Launcher, _ended
from lnlbench.launch.job import RunJob, record_if_silent
from lnlbench.launch.settings import DEFAULT_TIME_MIN
from lnlbench.config import write_json_atomic


class SlurmLauncher(Launcher):
    name = "slurm"
    description = "SLURM through submitit: one job array per sweep, requeued on time-out/preemption, resumed"
    queues = True

    def check(self) -> None:
        """Every setting parses, and the cluster accepts them (`sbatch --test-only`): before anything is written."""
        if shutil.which("sbatch") is None:
            raise ConfigError(
                "launcher 'slurm' needs the SLURM client (`sbatch` is not on PATH); run on a login node of the "
                "cluster, or use --launcher local"
            )
        self.executor()  # parses time and mem, checks the parameter names
        self.test_submission()

    def test_submission(self) -> None:
        """Ask sbatch whether a job with these settings could run (`--test-only`: nothing is queued); a rejection
        becomes a ConfigError naming the setting and the fix."""
        from submitit.slurm.slurm import _make_sbatch_string

        params = {k: v for k, v in self.parameters().items() if k != "array_parallelism"}
        with tempfile.TemporaryDirectory(prefix="lnlbench-sbatch-") as tmp:
            script = Path(tmp) / "test.sh"
            script.write_text(_make_sbatch_string(command="true", folder=tmp, **params))
            try:
                res = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True,
                                     timeout=60)
            except (OSError, subprocess.SubprocessError) as exc:
                raise ConfigError(f"could not run `sbatch --test-only` ({exc}); check that the SLURM client works "
                                  "on this machine (`sinfo`), or use --launcher local") from None
        if res.returncode != 0:
            raise ConfigError(explain_rejection(res.stderr + res.stdout, self.settings))

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
        from lnlbench.sweep import parse_mem_mb

        s = self.settings
        params: dict[str, Any] = {
            "job_name": s.job_name,
            "time": self.time_min(),
            "partition": s.partition,
            "cpus_per_task": s.cpus,
            "gpus_per_node": s.gpus or None,
            "mem": f"{parse_mem_mb(s.mem)}M" if s.mem is not None else None,  # sbatch wants integer units
            "account": s.account,
            "qos": s.qos,
            "constraint": s.constraint,
            "array_parallelism": s.array_parallelism,
            "setup": list(s.setup) or None,
            "additional_parameters": {str(k).replace("-", "_"): v for k, v in s.sbatch.items()} or None,
        }
        return {k: v for k, v in params.items() if v is not None}

    @property
    def submitit_dir(self) -> Path:
        return self.out / ".submitit"

    def executor(self) -> submitit.SlurmExecutor:
        ex = submitit.SlurmExecutor(folder=self.submitit_dir / "%j", max_num_timeout=self.settings.max_requeue)
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
        before = set(self.submitit_dir.iterdir()) if self.submitit_dir.is_dir() else set()
        try:
            with ex.batch():
                jobs = [ex.submit(run) for run in runs]
        except Exception as exc:  # FailedJobError, FailedSubmissionError, OSError: sbatch refused or is unreachable
            created = set(self.submitit_dir.iterdir()) if self.submitit_dir.is_dir() else set()
            for path in created - before:  # pickles, script and folders of a submission that never happened
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.submitit_dir.rmdir()  # only when empty
            raise SubmissionError(explain_rejection(str(exc), self.settings)) from None
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
                lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
                said = lines[-1] if lines else type(exc).__name__
                end = status.slurm_job_states([str(job.job_id)]).get(str(job.job_id)) or "unknown to sacct"
                ended = f"was {end}" if end.endswith(" before it started") else f"ended {end} without a record"
                error = f"SLURM job {job.job_id} {ended} ({said}); logs: {job.paths.stderr}"
            if error:
                record_if_silent(run, error)
            _ended(run, self.echo, f"[{i}/{n}]")
        launched.finished = True


class SubmissionError(ConfigError):
    """sbatch refused the submission (or could not be reached); nothing of it was left behind."""


@dataclass
class NodeSizes:
    """The largest node of a partition as `sinfo` reports it."""

    cpus: int
    mem_mb: int
    gpus: int
    features: set[str]


def partition_nodes(partition: str | None) -> dict[str, NodeSizes]:
    """Partition name -> its largest node (CPUs, memory, GPUs, features), from `sinfo`; {} when sinfo fails."""
    cmd = ["sinfo", "--noheader", "--format=%P|%c|%m|%G|%f"] + ([f"--partition={partition}"] if partition else [])
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {}
    sizes: dict[str, NodeSizes] = {}
    for line in res.stdout.splitlines() if res.returncode == 0 else []:
        fields = line.strip().split("|")
        if len(fields) != 5:
            continue
        name, cpus, mem, gres, features = fields
        gpus = sum(int(m.group(1)) for m in re.finditer(r"gpu(?::[^:,()]+)?:(\d+)", gres))
        cur = sizes.get(name.rstrip("*"))
        node = NodeSizes(int(re.sub(r"\D.*", "", cpus) or 0), int(re.sub(r"\D.*", "", mem) or 0), gpus,
                         set() if features == "(null)" else set(features.split(",")))
        if cur is not None:
            node = NodeSizes(max(cur.cpus, node.cpus), max(cur.mem_mb, node.mem_mb), max(cur.gpus, node.gpus),
                             cur.features | node.features)
        sizes[name.rstrip("*")] = node
    return sizes


def _no_node_fits(s: Any) -> str:
    """Which of cpus / mem / gpus / constraint no node of the partition can satisfy, and the largest there is."""
    from lnlbench.sweep import parse_mem_mb

    sizes = partition_nodes(s.partition)
    where = f"partition {s.partition}" if s.partition else "the default partition"
    if not sizes:
        return (f"no node of {where} can satisfy cpus={s.cpus}, mem={s.mem}, gpus={s.gpus}, "
                f"constraint={s.constraint}; lower them (see `sinfo -o '%P %c %m %G %f'`)")
    big = NodeSizes(max(n.cpus for n in sizes.values()), max(n.mem_mb for n in sizes.values()),
                    max(n.gpus for n in sizes.values()), set().union(*(n.features for n in sizes.values())))
    if s.cpus and s.cpus > big.cpus:
        return f"launcher setting cpus={s.cpus}: the largest node of {where} has {big.cpus} CPUs; set cpus <= {big.cpus}"
    if s.mem is not None and parse_mem_mb(s.mem) > big.mem_mb:
        return (f"launcher setting mem={s.mem}: the largest node of {where} has {big.mem_mb}M of memory; set mem "
                f"<= {big.mem_mb}M")
    if s.gpus and s.gpus > big.gpus:
        return (f"launcher setting gpus={s.gpus}: the nodes of {where} have {big.gpus or 'no'} GPUs; "
                + (f"set gpus <= {big.gpus}" if big.gpus else "drop gpus, or pick a GPU partition (`sinfo`)"))
    if s.constraint:
        return (f"launcher setting constraint={s.constraint}: no node of {where} has it (features: "
                f"{', '.join(sorted(big.features)) or 'none'}); drop or change the constraint")
    return f"no node of {where} can run a job with these settings; check `sbatch` options {dict(s.sbatch)}"


def explain_rejection(message: str, s: Any) -> str:
    """One line naming the launcher setting that sbatch rejected and how to fix it."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    said = next((ln for ln in lines if re.search(r"error|failure|unrecognized|invalid|unable", ln, re.I)),
                lines[-1] if lines else "no message")
    said = said.replace("sbatch: error: ", "")
    low = message.lower()
    if "--mem" in low or "memory specification" in low:
        hint = f"launcher setting mem={s.mem}: write whole units sbatch accepts, e.g. 16G or 4000M"
    elif "partition" in low:
        known = ", ".join(sorted(partition_nodes(None))) or "see `sinfo`"
        hint = f"launcher setting partition={s.partition}: no such partition here; use one of: {known}"
    elif "gres" in low or "generic resource" in low:
        hint = _no_node_fits(s) if s.gpus else "a GRES in the sbatch options is not on this cluster; fix `sbatch`"
    elif "node configuration is not available" in low or "requested node config" in low:
        hint = _no_node_fits(s)
    elif "unrecognized option" in low or "invalid option" in low:
        opt = re.search(r"option '?--?([\w-]+)", message)
        hint = (f"launcher setting sbatch: sbatch has no option --{opt.group(1) if opt else '?'}; fix or remove it "
                "(see `man sbatch`)")
    elif "invalid node name" in low:
        hint = "launcher setting sbatch: a node named in exclude/nodelist does not exist; check the names with `sinfo -N`"
    elif "account" in low:
        hint = f"launcher setting account={s.account}: not an account you may use; see `sacctmgr show assoc user=$USER`"
    elif "qos" in low:
        hint = f"launcher setting qos={s.qos}: not a QOS you may use; see `sacctmgr show qos`"
    elif "feature" in low or "constraint" in low:
        hint = f"launcher setting constraint={s.constraint}: no node offers it; check `sinfo -o '%N %f'`"
    elif "time limit" in low:
        hint = f"launcher setting time={s.time}: above the partition's limit; lower it (see `sinfo -o '%P %l'`)"
    elif "unable to contact" in low or "connection refused" in low or "slurm_persist_conn" in low:
        hint = "the SLURM controller does not answer; check `sinfo` (or ask the cluster admins), then launch again"
    else:
        hint = "fix the launcher settings (docs/sweeps.md) and launch again"
    return f"SLURM refused the submission: {said}. {hint}; nothing was submitted or written"
