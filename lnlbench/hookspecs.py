"""The plugin contract: every hook lnlbench calls, as documented stubs (pytest's `hookspec.py` habit).

A plugin is a module or object with functions marked `@lnlbench.hookimpl`, registered through the `lnlbench`
entry-point group (`[project.entry-points.lnlbench]` in its pyproject). The built-in methods in `plugins/` use the
same group, so the public path is the one that is tested.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from lnlbench.data.base import DatasetReader
    from lnlbench.methods import Method

PROJECT = "lnlbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def lnlbench_methods() -> list[type[Method]]:
    """Return the method classes this plugin provides.

    Called once when the plugin manager is built. Each class subclasses `lnlbench.methods.Method` and declares its
    `name`, `description` (one line naming the source paper), `needs` and hyperparameters.
    """


@hookspec
def lnlbench_launchers() -> list[Any]:
    """Return launcher classes (subclasses of `lnlbench.launch.Launcher`) this plugin provides.

    Called when `lnlbench sweep` resolves `--launcher NAME`; the built-ins are `local`, `debug` and `slurm`.
    """


@hookspec
def lnlbench_datasets() -> list[DatasetReader]:
    """Return extra dataset readers (`lnlbench.data.base.DatasetReader`) this plugin provides.

    Called once when the plugin manager is built; their names join `lnlbench datasets`.
    """


@hookspec
def lnlbench_run_finished(record: dict) -> None:
    """Called after a run's `result.json` has been written (done or failed), with the record as written.

    For observers (experiment trackers, notifiers). Must not modify the record; exceptions are reported and ignored.
    """
