"""Deprecated name of `lnlbench.sample_selection` (renamed for clarity); import `lnlbench.sample_selection` instead."""

import sys

from lnlbench import sample_selection as _module

sys.modules[__name__] = _module
