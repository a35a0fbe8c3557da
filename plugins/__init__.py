"""lnlbench's built-in method plugins, registered through the `lnlbench` entry-point group like any third party's.

The entry point is this package. Each module below is a complete plugin (its own `lnlbench_methods` hook, as a third
party would write it); this package's hook imports them only when the method registry is first built, so commands
that never touch a method (`--help`, `datasets`, `noise-models`, an unknown dataset) do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from lnlbench import hookimpl

if TYPE_CHECKING:
    from lnlbench.methods import Method

BUILTIN_METHOD_MODULES = ("lp", "fft", "turn", "coteaching", "dividemix", "gce", "sce", "elr", "jocor", "unicon")


@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    """Every built-in method, from each module's own hook."""
    out: list[type[Method]] = []
    for name in BUILTIN_METHOD_MODULES:
        out.extend(importlib.import_module(f"{__name__}.{name}").lnlbench_methods())
    return out
