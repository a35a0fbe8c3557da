"""Deprecated name of `lnlbench.plugin_manager` (renamed for clarity); import `lnlbench.plugin_manager` instead."""

import sys

from lnlbench import plugin_manager as _module

sys.modules[__name__] = _module
