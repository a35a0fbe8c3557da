"""Deprecated name of `lnlbench.config` (renamed for clarity); import `lnlbench.config` instead."""

import sys

from lnlbench import config as _module

sys.modules[__name__] = _module
