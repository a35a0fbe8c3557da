"""The plugin manager: loads built-in and third-party plugins from the `lnlbench` entry-point group."""

from __future__ import annotations

import functools

import pluggy

from lnlbench import hookspecs
from lnlbench.errors import ConfigError
from lnlbench.log import get_logger
from lnlbench.registry import Registry


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every installed plugin loaded and its hooks checked."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    pm.check_pending()  # a hookimpl for a hook that does not exist is an error, not a silent no-op
    return pm


def plugin_source(plugin: object) -> str:
    """The distribution (package name) a plugin was installed from, or its module name."""
    for plug, dist in plugin_manager().list_plugin_distinfo():
        if plug is plugin:
            return dist.project_name
    return getattr(plugin, "__name__", repr(plugin))


@functools.cache
def method_registry() -> Registry:
    """Name -> method class, over every loaded plugin; each class gets `source` set to its distribution."""
    from lnlbench.methods import Method

    registry: Registry = Registry("method")
    pm = plugin_manager()
    for plugin in pm.get_plugins():
        impl = getattr(plugin, "lnlbench_methods", None)
        if impl is None:
            continue
        for cls in impl() or []:
            if not (isinstance(cls, type) and issubclass(cls, Method)):
                raise ConfigError(f"plugin {plugin_source(plugin)} returned {cls!r}, not a Method subclass")
            cls.source = plugin_source(plugin)
            registry.add(cls.name, cls)
    return registry


def register_plugin_datasets() -> None:
    """Add dataset readers contributed by plugins to the dataset registry."""
    from lnlbench.data.base import DATASETS

    for readers in plugin_manager().hook.lnlbench_datasets():
        for reader in readers or []:
            DATASETS.add(reader.name, reader)


def notify_run_finished(record: dict) -> None:
    """Tell observers a record was written; an observer's exception is reported, never fatal."""
    try:
        plugin_manager().hook.lnlbench_run_finished(record=record)
    except Exception as exc:  # observers must not break a finished run
        get_logger("plugins").warning(f"warning: a lnlbench_run_finished hook failed: {exc}")
