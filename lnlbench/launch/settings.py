"""Launcher settings: the sweep file's `launcher:` section merged with command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lnlbench.errors import ConfigError

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
