"""`lnlbench export`: pack result records with their provenance into a leaderboard bundle."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="pack the finished runs below DIR into a leaderboard bundle (records, configs, manifest of SHA-256s)",
        description=(
            "Pack every finished run below DIR (result.json with its env: versions, host, commit, code hash; and "
            "config.json) into a .tar.gz with manifest.json listing the SHA-256 of each member. Merge bundles with "
            "`lnlbench report --leaderboard BUNDLE... --out REPORT_DIR`."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="a result directory (the --out of runs or sweeps)")
    p.add_argument("--out", required=True, metavar="BUNDLE.tar.gz", help="the bundle to write (replaced if it exists)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from lnlbench.report.bundles import export_bundle

    n, digest = export_bundle(Path(args.dir), Path(args.out))
    print(f"{n} finished runs packed into {args.out}; bundle digest (SHA-256 of its manifest) {digest}")
    return 0
