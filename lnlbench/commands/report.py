"""`lnlbench report`: tables, leaderboards, plots and an HTML page from result directories."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="paper-style tables, cost tables, leaderboards, plots and index.html from result records",
        description=(
            "Read every result.json below DIR..., average runs that differ only in seed, and write Markdown, LaTeX "
            "and CSV tables, leaderboards, PNG/SVG plots and one static index.html into --out."
        ),
    )
    p.add_argument("dirs", nargs="*", metavar="DIR", help="result directories (the --out of runs or sweeps)")
    p.add_argument("--leaderboard", nargs="+", default=None, metavar="BUNDLE",
                   help="instead of DIR...: merge bundles from `lnlbench export`, accepting a run only where dataset "
                        "fingerprint, noisy-label hash, weights hash and budget match the reference protocol's "
                        "(submissions.html lists the rejected ones with the reason)")
    p.add_argument("--protocol", default=None, metavar="BUNDLE",
                   help="with --leaderboard: the bundle that defines the reference protocol (default: the first)")
    p.add_argument("--out", required=True, help="report directory (created; files in it are overwritten)")
    p.add_argument("--reference", default=None, metavar="FILE.csv",
                   help="published numbers to compare with (format: docs/reference-format.md)")
    p.add_argument("--accuracy", default="final", choices=["final", "best"],
                   help="final-epoch test accuracy (default) or the best epoch's (optimistic; labelled as such)")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="seeds each cell should have; cells with fewer show their count (default: the most any has)")
    p.add_argument("--no-plots", action="store_true", help="skip the figures (faster)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from lnlbench.errors import ConfigError
    from lnlbench.report import build_report

    dirs = [Path(d) for d in args.dirs]
    page = None
    if args.leaderboard and dirs:
        raise ConfigError("pass either result directories DIR... or --leaderboard BUNDLE..., not both")
    if args.protocol and not args.leaderboard:
        raise ConfigError("--protocol goes with --leaderboard BUNDLE...; pass the bundles to merge")
    if not args.leaderboard and not dirs:
        raise ConfigError("no result directory given; pass the --out directory of your runs (or --leaderboard)")
    if args.leaderboard:
        import shutil

        from lnlbench.report.bundles import build_leaderboard

        shutil.rmtree(Path(args.out) / "submissions", ignore_errors=True)  # only this bundle set's runs
        page, entries = build_leaderboard([Path(b) for b in args.leaderboard], Path(args.out),
                                          Path(args.protocol) if args.protocol else None)
        for e in entries:
            if not e.accepted:
                print(f"rejected: {e.bundle.path.name} run {e.record.get('run_id')} ({e.record.get('method')}): "
                      f"{'; '.join(e.reasons)}", file=sys.stderr)
        print(f"{sum(e.accepted for e in entries)} runs accepted, {sum(not e.accepted for e in entries)} rejected; "
              f"leaderboard: {page}")
        dirs = [Path(args.out) / "submissions"]
        dirs[0].mkdir(parents=True, exist_ok=True)
    summary = build_report(
        dirs,
        Path(args.out),
        reference=Path(args.reference) if args.reference else None,
        accuracy=args.accuracy,
        requested_seeds=args.seeds,
        make_plots=not args.no_plots,
    )
    for w in summary.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(
        f"{summary.n_done} finished runs in {summary.n_groups} groups; {summary.n_failed} failed, "
        f"{summary.n_unfinished} unfinished, {summary.n_skipped} files skipped; "
        f"{len(summary.files)} files written in {summary.timings['total']:.1f} s"
    )
    if page is not None:
        from lnlbench.report.html import add_nav_link

        add_nav_link(summary.index, page.name, "leaderboard of the merged bundles (provenance, rejected entries)")
    print(f"report: {summary.index}")
    if summary.n_done == 0:
        print("error: no finished run to report; the failed and unfinished ones are listed in the report",
              file=sys.stderr)
        return 1
    return 0
