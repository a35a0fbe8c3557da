"""One colour per method in every plot and every report: a fixed method -> colour map, and a marker per variant.

Built-in methods take the first colours of matplotlib's tab10 (grey left out), in the fixed order of
`BUILTIN_METHODS`; any other method (a third-party plugin, an old record) gets a colour from
the rest of the palette chosen by a hash of its name, so it keeps that colour whatever else a report holds. Rows that
are variants of one method (e.g. "lp (image_size=32)", "lp (image_size=64)") share its colour and differ in marker,
line style and hatch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

__all__ = ["RowStyle", "builtin_methods", "method_color", "row_styles", "MARKERS"]

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")
HATCHES = ("", "//", "..", "xx", "\\\\", "++")
_GREY = 7  # tab10's grey: kept for Pareto fronts and device keys, never a method
# Fixed here rather than read from the installed plugins, so that a colour never depends on what is installed.
BUILTIN_METHODS = ("coteaching", "dividemix", "fft", "lp", "turn")


@dataclass(frozen=True)
class RowStyle:
    """How one table row (a method or a variant of one) is drawn everywhere."""

    color: str
    marker: str
    linestyle: str
    variant: int  # 0 for a method's first (or only) row, in label order


def _hex(rgb: tuple) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb[:3])


@lru_cache(maxsize=1)
def _palettes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tab10 without grey, the extra colours for methods past it: tab20b)."""
    from matplotlib import colormaps

    tab10 = tuple(_hex(c) for i, c in enumerate(colormaps["tab10"].colors) if i != _GREY)
    return tab10, tuple(_hex(c) for c in colormaps["tab20b"].colors)


def builtin_methods() -> tuple[str, ...]:
    """The methods lnlbench ships, in colour order (a method added to lnlbench is appended, never inserted)."""
    return BUILTIN_METHODS


def method_color(method: str) -> str:
    """The colour of `method` in every plot: fixed for built-ins, a stable hash-chosen one for any other."""
    tab10, extra = _palettes()
    builtins = builtin_methods()
    if method in builtins and builtins.index(method) < len(tab10):
        return tab10[builtins.index(method)]
    pool = tab10[len(builtins):] + extra
    digest = int.from_bytes(hashlib.sha256(method.encode("utf-8")).digest()[:8], "big")
    return pool[digest % len(pool)]


def row_styles(groups: pd.DataFrame) -> dict[str, RowStyle]:
    """A style per row label of `groups` (columns `label`, `method`): the method's colour, a marker per variant."""
    styles: dict[str, RowStyle] = {}
    for method, g in groups.groupby("method", sort=True):
        for i, label in enumerate(sorted(g["label"].unique())):
            styles[label] = RowStyle(method_color(str(method)), MARKERS[i % len(MARKERS)],
                                     LINESTYLES[i % len(LINESTYLES)], i)
    return styles
