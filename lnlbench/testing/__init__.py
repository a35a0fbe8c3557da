"""Helpers for method plugin authors' own test suites: the conformance kit.

    from lnlbench.testing import conformance

    def test_my_method_conforms():
        conformance("mymethod")          # raises AssertionError listing every failed check

`run_conformance` returns the report instead of raising; `lnlbench check-plugin NAME` prints it. The checks and what
each verifies: `lnlbench.testing.kit.CHECKS`.
"""

from __future__ import annotations

from lnlbench.testing.kit import CHECKS, CheckResult, ConformanceReport, conformance, run_conformance

__all__ = ["CHECKS", "CheckResult", "ConformanceReport", "conformance", "run_conformance"]
