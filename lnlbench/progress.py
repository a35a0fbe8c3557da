"""Progress bars for long loops: drawn on a terminal, absent from pipes, files and SLURM logs.

A bar redraws itself with carriage returns, which a log file keeps as one endless line; so bars appear only when
stderr is a terminal, lnlbench's logger shows progress (not `-q`) and `LNLBENCH_PROGRESS` is not `0`. Off a terminal
the per-epoch log lines are the progress. Bars are transient (`leave=False`): what stays on screen is the log.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from lnlbench.log import get_logger

T = TypeVar("T")


def enabled() -> bool:
    """Whether bars are drawn now (terminal stderr, progress-level logging, not switched off by the environment)."""
    if os.environ.get("LNLBENCH_PROGRESS", "").strip() == "0":
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) and get_logger().getEffectiveLevel() <= logging.INFO


def bar(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterable[T]:
    """`iterable` wrapped in a transient tqdm bar when bars are enabled, else `iterable` itself."""
    if not enabled():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, file=sys.stderr)


@contextlib.contextmanager
def library_bars() -> Iterator[None]:
    """Let a library's own tqdm bars (e.g. torchvision's download) through only where ours would be drawn."""
    if enabled():
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        yield
