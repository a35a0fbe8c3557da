"""User-facing errors: each names the problem and the fix; the CLI turns them into exit code 2."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class LnlbenchError(Exception):
    """An error caused by the user's input or environment, with a message that says how to fix it."""


class ConfigError(LnlbenchError):
    """A bad name, value or combination in a run or sweep configuration; `problems` lists each one when a
    validation pass found several."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


class Problems:
    """One validation pass that reports every problem: `check()` blocks collect ConfigErrors instead of stopping at
    the first; `raise_any()` raises them together as one ConfigError."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    @contextlib.contextmanager
    def check(self) -> Iterator[None]:
        try:
            yield
        except ConfigError as exc:
            self.messages.extend(exc.problems)

    def add(self, message: str) -> None:
        self.messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def raise_any(self) -> None:
        """Raise the collected problems (none: return)."""
        unique = list(dict.fromkeys(self.messages))
        if len(unique) == 1:
            raise ConfigError(unique[0])
        if unique:
            listed = "\n".join(f"  - {m}" for m in unique)
            raise ConfigError(f"{len(unique)} configuration problems:\n{listed}", problems=unique)


class DataError(LnlbenchError):
    """A dataset that is missing, incomplete or corrupt."""


class WeightsError(LnlbenchError):
    """Pre-trained weights that cannot be found or loaded."""


class TrainingError(LnlbenchError):
    """Training that cannot continue (e.g. a NaN loss)."""
