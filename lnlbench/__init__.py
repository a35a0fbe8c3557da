"""lnlbench: a benchmark suite for learning with noisy labels on pre-trained models."""

from lnlbench.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]
