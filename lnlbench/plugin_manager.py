"""The plugin manager and the four registries it fills: methods, datasets, noise models and launchers.

Every registry is filled the same way, once and lazily: each plugin's hook (`lnlbench_methods`, `lnlbench_datasets`,
`lnlbench_noise_models`, `lnlbench_launchers`; see `hookspecs`) is called and what it returns is checked and added
by name. lnlbench's own datasets, noise models and launchers come through the same hooks (`builtin_plugin`), its
methods through the `lnlbench` entry-point group like any third-party package's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pluggy

from lnlbench import hookspecs
from lnlbench.errors import ConfigError
from lnlbench.log import get_logger
from lnlbench.registry import Registry

BUILTIN_PLUGIN = "lnlbench"  # the name the built-in datasets, noise models and launchers register under


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every installed plugin loaded and its hooks checked."""
    from lnlbench import builtin_plugin

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin_plugin, name=BUILTIN_PLUGIN)
    pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    pm.check_pending()  # a hookimpl for a hook that does not exist is an error, not a silent no-op
    return pm


def plugin_source(plugin: object) -> str:
    """The distribution (package name) a plugin was installed from, or its module name."""
    pm = plugin_manager()
    if pm.get_name(plugin) == BUILTIN_PLUGIN:
        return BUILTIN_PLUGIN
    for plug, dist in pm.list_plugin_distinfo():
        if plug is plugin:
            return dist.project_name
    return getattr(plugin, "__name__", repr(plugin))


def _collect(hook: str, valid: Callable[[Any], bool], expected: str) -> list[tuple[Any, str]]:
    """Every object the plugins return from `hook`, checked, with the distribution it came from."""
    out = []
    for plugin in plugin_manager().get_plugins():
        impl = getattr(plugin, hook, None)
        if impl is None:
            continue
        for obj in impl() or []:
            if not valid(obj):
                raise ConfigError(f"plugin {plugin_source(plugin)} returned {obj!r} from {hook}, not {expected}")
            out.append((obj, plugin_source(plugin)))
    return out


def _registry(kind: str, hook: str, valid: Callable[[Any], bool], expected: str) -> Registry:
    """A registry of `kind` filled from every plugin's `hook` (each object named by its `name`)."""
    registry: Registry = Registry(kind)
    for obj, source in _collect(hook, valid, expected):
        if kind == "method":
            obj.source = source  # the distribution that provided the method, shown by `lnlbench methods`
        registry.add(obj.name, obj)
    return registry


@functools.cache
def method_registry() -> Registry:
    """Name -> method class, over every loaded plugin; each class gets `source` set to its distribution."""
    from lnlbench.methods import Method

    return _registry("method", "lnlbench_methods", lambda o: isinstance(o, type) and issubclass(o, Method),
                     "a Method subclass")


@functools.cache
def dataset_registry() -> Registry:
    """Name -> `DatasetReader`: the built-in readers and every reader a plugin returns from `lnlbench_datasets`."""
    from lnlbench.data.base import DatasetReader

    return _registry("dataset", "lnlbench_datasets", lambda o: isinstance(o, DatasetReader),
                     "an lnlbench.data.base.DatasetReader")


@functools.cache
def noise_registry() -> Registry:
    """Name -> `NoiseModel`: the built-in models and every model a plugin returns from `lnlbench_noise_models`."""
    from lnlbench.noise.base import NoiseModel

    return _registry("noise model", "lnlbench_noise_models", lambda o: isinstance(o, NoiseModel),
                     "an lnlbench.noise.base.NoiseModel")


@functools.cache
def launcher_registry() -> Registry:
    """Name -> launcher class: the built-ins and every class a plugin returns from `lnlbench_launchers`."""
    from lnlbench.launch.base import Launcher

    return _registry("launcher", "lnlbench_launchers",
                     lambda o: isinstance(o, type) and issubclass(o, Launcher) and bool(o.name),
                     "a named lnlbench.launch.Launcher subclass")


def notify_run_finished(record: dict) -> None:
    """Tell observers a record was written; an observer's exception is reported, never fatal."""
    try:
        plugin_manager().hook.lnlbench_run_finished(record=record)
    except Exception as exc:  # observers must not break a finished run
        get_logger("plugins").warning(f"warning: a lnlbench_run_finished hook failed: {exc}")
