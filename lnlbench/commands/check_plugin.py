"""`lnlbench check-plugin`: run the conformance kit (lnlbench.testing) on installed method plugins."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lnlbench.commands.common import parse_set
from lnlbench.testing.kit import CHECKS

CHECK_NAMES = list(CHECKS)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-plugin",
        help="check that a method plugin conforms: sourced hyperparameters, determinism, exact resume, no clean labels",
        description=(
            "Run the conformance kit on each method NAME (`lnlbench methods` lists them): a few tiny runs on the "
            "embedded digits at 8 px on the CPU, seconds each. Every check is listed as pass, FAIL (with the "
            "reason) or not run; the exit status is 0 only when every check of every method passed. The same "
            "kit is importable for a plugin's own tests: `from lnlbench.testing import conformance`."
        ),
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="registered method names")
    p.add_argument("--epochs", type=int, default=2, metavar="N",
                   help="budget of the compared runs (at least 2: a run is interrupted after its first epoch)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="hyperparameter override for the kit's runs (e.g. a larger batch for speed)")
    p.add_argument("--only", action="append", choices=CHECK_NAMES, metavar="CHECK",
                   help=f"run only this check (repeatable); one of {', '.join(CHECK_NAMES)}")
    p.add_argument("--workdir", default=None, metavar="DIR",
                   help="keep the kit's runs here (default: a temporary directory, removed after)")
    p.add_argument("--json", action="store_true", help="print one JSON object per method instead of text")
    p.set_defaults(func=cmd_check_plugin)


def cmd_check_plugin(args: argparse.Namespace) -> int:
    from lnlbench.plugin_manager import method_registry
    from lnlbench.testing import run_conformance

    for name in args.names:
        method_registry().get(name)  # an unknown name is a configuration error before any run
    all_passed = True
    for name in args.names:
        workdir = Path(args.workdir) / name if args.workdir else None
        report = run_conformance(name, hparams=parse_set(args.set), epochs=args.epochs, checks=args.only,
                                 workdir=workdir)
        all_passed &= report.passed
        if args.json:
            print(json.dumps({"method": report.method, "source": report.source, "passed": report.passed,
                              "checks": [{"name": r.name, "status": r.status, "reason": r.reason,
                                          "seconds": round(r.seconds, 2)} for r in report.results]}))
        else:
            print(report.text())
        sys.stdout.flush()
    return 0 if all_passed else 1
