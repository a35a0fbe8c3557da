"""Launchers: where and how a sweep's runs execute (here, in-process, or on SLURM through submitit).

Every launcher executes the same callable, `RunJob`: a `submitit.helpers.Checkpointable` that claims its run
directory (a lock and a `running.json` heartbeat), runs `execute_run` and makes sure a run never ends without a
record. Training state lives in the run directory (`checkpoints/<phase>.pt`, written after every epoch), so a
`RunJob` requeued after a SLURM time-out or preemption, or started again after a crash, resumes where it stopped.

Launchers are looked up by name in `launcher_registry()`: the built-ins `local`, `debug`, `slurm` and any class a
plugin returns from the `lnlbench_launchers` hook.
"""


from lnlbench.execution import claim, lock_is_free, tee_output, write_failure
from lnlbench.launch.base import DebugLauncher, Launched, Launcher
from lnlbench.launch.job import RunJob, record_if_silent, summary
from lnlbench.launch.local import LOCAL_PRELOAD, LocalLauncher, describe_exit, visible_gpus
from lnlbench.launch.plan import Plan, check_output_dir, launch_sweep, make_plan, run_jobs
from lnlbench.launch.registry import BUILTIN_LAUNCHERS, launcher_registry
from lnlbench.launch.settings import DEFAULT_MAX_REQUEUE, DEFAULT_TIME_MIN, LauncherSettings
from lnlbench.launch.slurm import SlurmLauncher

__all__ = [
    "BUILTIN_LAUNCHERS", "DEFAULT_MAX_REQUEUE", "DEFAULT_TIME_MIN", "LOCAL_PRELOAD", "DebugLauncher", "Launched",
    "Launcher", "LauncherSettings", "LocalLauncher", "Plan", "RunJob", "SlurmLauncher", "check_output_dir", "claim",
    "describe_exit", "launch_sweep", "launcher_registry", "lock_is_free", "make_plan", "record_if_silent", "run_jobs",
    "summary", "tee_output", "visible_gpus", "write_failure",
]
