"""The built-in launchers; `launcher_registry()` (from `lnlbench.plugins`) adds those plugins return."""

from __future__ import annotations

from lnlbench.launch.base import DebugLauncher, Launcher
from lnlbench.launch.local import LocalLauncher
from lnlbench.launch.slurm import SlurmLauncher
from lnlbench.plugins import launcher_registry

BUILTIN_LAUNCHERS: tuple[type[Launcher], ...] = (LocalLauncher, DebugLauncher, SlurmLauncher)

__all__ = ["BUILTIN_LAUNCHERS", "launcher_registry"]
