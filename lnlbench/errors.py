"""User-facing errors: each names the problem and the fix; the CLI turns them into exit code 2."""

from __future__ import annotations


class LnlbenchError(Exception):
    """An error caused by the user's input or environment, with a message that says how to fix it."""


class ConfigError(LnlbenchError):
    """A bad name, value or combination in a run or sweep configuration."""


class DataError(LnlbenchError):
    """A dataset that is missing, incomplete or corrupt."""


class WeightsError(LnlbenchError):
    """Pre-trained weights that cannot be found or loaded."""


class TrainingError(LnlbenchError):
    """Training that cannot continue (e.g. a NaN loss)."""
