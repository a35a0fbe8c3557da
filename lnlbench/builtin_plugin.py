"""lnlbench's own datasets, noise models and launchers, contributed through the hooks a third-party plugin implements.

Each is declared at its definition site (`@register_dataset`, `@register_noise_model`, `BUILTIN_LAUNCHERS`); this
plugin hands those collections to the registries in `lnlbench.plugin_manager`. The built-in methods come through the
`lnlbench` entry-point group instead (`plugins/`), exactly as a third-party method would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lnlbench.hookspecs import hookimpl

if TYPE_CHECKING:
    from lnlbench.data.base import DatasetReader
    from lnlbench.launch.base import Launcher
    from lnlbench.noise.base import NoiseModel


@hookimpl
def lnlbench_datasets() -> list[DatasetReader]:
    """Every reader registered with `@register_dataset` (importing `lnlbench.data` registers the built-ins)."""
    from lnlbench import data  # noqa: F401  (import fills DATASETS)
    from lnlbench.data.base import DATASETS

    return [DATASETS.get(name) for name in DATASETS.names()]


@hookimpl
def lnlbench_noise_models() -> list[NoiseModel]:
    """Every model registered with `@register_noise_model` (importing `lnlbench.noise` registers the built-ins)."""
    from lnlbench import noise  # noqa: F401  (import fills NOISE_MODELS)
    from lnlbench.noise.base import NOISE_MODELS

    return [NOISE_MODELS.get(name) for name in NOISE_MODELS.names()]


@hookimpl
def lnlbench_launchers() -> list[type[Launcher]]:
    """The `local`, `debug` and `slurm` launchers."""
    from lnlbench.launch.registry import BUILTIN_LAUNCHERS

    return list(BUILTIN_LAUNCHERS)
