"""Deprecated name of `lnlbench.harness` (renamed for clarity); import `lnlbench.harness` instead."""

import sys

from lnlbench import harness as _module

sys.modules[__name__] = _module
