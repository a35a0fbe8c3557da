"""One logger hierarchy, `lnlbench.*`, for progress lines and diagnostics (the CLI's -v / -q set its level).

Messages go to whatever `sys.stderr` is when they are emitted, so a run's `log.txt` tee captures them. Lines are
plain (no carriage returns), so a SLURM log or a pipe reads the same as a terminal.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

ROOT = "lnlbench"


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to the `sys.stderr` of the moment (which a log tee may have replaced)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # logging.StreamHandler.__init__ assigns it
        pass

    def emit(self, record: logging.LogRecord) -> None:
        """Write the line; while progress bars are on screen, above them (tqdm.write), not into them."""
        tqdm_std = sys.modules.get("tqdm.std")  # only when bars were ever drawn: never imported just for this
        bars = list(getattr(tqdm_std.tqdm, "_instances", ())) if tqdm_std is not None else []
        for bar in bars:  # (tqdm.write would not clear them: a run's log tee is not the stream they draw on)
            with contextlib.suppress(Exception):
                bar.clear(nolock=True)
        super().emit(record)
        for bar in bars:
            with contextlib.suppress(Exception):
                bar.refresh(nolock=True)


def get_logger(name: str = "") -> logging.Logger:
    """The `lnlbench.<name>` logger."""
    return logging.getLogger(f"{ROOT}.{name}" if name else ROOT)


def configure(verbosity: int = 0) -> None:
    """Show lnlbench's messages on stderr: progress and results (0), also debug detail (> 0), warnings only (< 0)."""
    logger = get_logger()
    logger.setLevel(logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO)
    if not any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.propagate = False


def ensure_configured() -> None:
    """Configure at the default level unless something configured lnlbench's logger already (worker processes)."""
    if not get_logger().handlers:
        configure(0)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Show only warnings and errors while the body runs (`verbose=False` of the Python API)."""
    logger = get_logger()
    before = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(before)
