"""Launchers by name: the built-ins and every class a plugin returns from the `lnlbench_launchers` hook."""

from __future__ import annotations

import functools

from lnlbench.errors import ConfigError
from lnlbench.launch.base import DebugLauncher, Launcher
from lnlbench.launch.local import LocalLauncher
from lnlbench.launch.slurm import SlurmLauncher
from lnlbench.registry import Registry

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
