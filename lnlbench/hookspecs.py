"""The plugin contract: every hook lnlbench calls, as documented stubs (pytest's `hookspec.py` habit).

A plugin is a module or object with functions marked `@lnlbench.hookimpl`, registered through the `lnlbench`
entry-point group (`[project.entry-points.lnlbench]` in its pyproject). The built-in methods in `plugins/` use the
same group, and the built-in datasets, noise models and launchers the same hooks (`lnlbench.builtin_plugin`), so the
public path is the one that is tested. Each registry (`lnlbench.plugin_manager.method_registry()`, `dataset_registry()`,
`noise_registry()`, `launcher_registry()`) calls its hook once, on first use; names must be unique across plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from lnlbench.data.base import DatasetReader
    from lnlbench.launch.base import Launcher
    from lnlbench.methods import Method
    from lnlbench.noise.base import NoiseModel

PROJECT = "lnlbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def lnlbench_methods() -> list[type[Method]]:
    """Return the method classes this plugin provides.

    Called once, when `method_registry()` is first filled. Each class subclasses `lnlbench.methods.Method` and
    declares its `name`, `description` (one line naming the source paper), `needs` and hyperparameters.
    """


@hookspec
def lnlbench_launchers() -> list[type[Launcher]]:
    """Return launcher classes (subclasses of `lnlbench.launch.Launcher` with a `name`) this plugin provides.

    Called once, when `launcher_registry()` is first filled (`lnlbench sweep --launcher NAME`); the built-ins are
    `local`, `debug` and `slurm`.
    """


@hookspec
def lnlbench_datasets() -> list[DatasetReader]:
    """Return dataset readers (`lnlbench.data.base.DatasetReader`) this plugin provides.

    Called once, when `dataset_registry()` is first filled; their names join `lnlbench datasets`, `--dataset` and
    sweep files. `load(data_root, download=False, **options)` returns an `lnlbench.data.base.Dataset`.
    """


@hookspec
def lnlbench_noise_models() -> list[NoiseModel]:
    """Return noise models (`lnlbench.noise.base.NoiseModel`) this plugin provides.

    Called once, when `noise_registry()` is first filled; their names join `lnlbench noise-models` and `--noise`.
    `make(clean, num_classes, rate, rng, inputs)` returns the noisy labels; `expected_wrong_fraction(rate, C)` tells
    methods that use the declared rate as a prior (co-teaching) what fraction of labels to expect wrong.
    """


@hookspec
def lnlbench_run_finished(record: dict) -> None:
    """Called after a run's `result.json` has been written (done or failed), with the record as written.

    For observers (experiment trackers, notifiers). Must not modify the record; exceptions are reported and ignored.
    """
