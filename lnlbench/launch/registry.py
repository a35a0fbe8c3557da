"""The built-in launchers; `launcher_registry()` (from `lnlbench.plugin_manager`) adds those plugins return."""

from __future__ import annotations

from lnlbench.launch.base import DebugLauncher, Launcher
from lnlbench.launch.local import LocalLauncher
from lnlbench.launch.slurm import SlurmLauncher
from lnlbench.plugin_manager import launcher_registry

BUILTIN_LAUNCHERS: tuple[type[Launcher], ...] = (LocalLauncher, DebugLauncher, SlurmLauncher)

__all__ = ["BUILTIN_LAUNCHERS", "launcher_registry"]
