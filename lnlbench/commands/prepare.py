"""`lnlbench prepare DATASET --data-root DIR`: check a local copy of a file-based dataset, optionally build its
resized image cache."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lnlbench.commands.common import parse_set


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="check a local copy of clothing1m / webvision / ilsvrc12-val; optionally build its resized image cache",
        description=(
            "Checks a copy against what the dataset must contain (annotation files, listed images, class lists, "
            "split sizes) and lists every problem. Exit status 0 when the copy is complete, 1 when not. "
            "See docs/datasets.md for where each dataset comes from."
        ),
    )
    p.add_argument("dataset", help="clothing1m, webvision or ilsvrc12-val")
    p.add_argument("--data-root", required=True, help="directory holding the dataset's files")
    p.add_argument("--classes", type=int, default=None, help="webvision / ilsvrc12-val: first N classes (default 50)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="other scan options of the dataset")
    p.add_argument("--decode", action="store_true", help="decode every image to find unreadable ones (slow)")
    p.add_argument("--build-cache", action="store_true", help="decode every image into the resized cache (implies --decode)")
    p.add_argument("--image-size", type=int, default=256, help="cache: square side in pixels, as `run --image-size`")
    p.add_argument("--size", type=int, default=None, dest="size_deprecated", help=argparse.SUPPRESS)
    p.add_argument("--encoding", choices=["raw", "jpeg"], default="raw", help="cache: raw uint8 (fastest) or re-encoded JPEG (~10x smaller)")
    p.add_argument("--quality", type=int, default=90, help="cache: JPEG quality for --encoding jpeg (default %(default)s)")
    p.add_argument("--cache-dir", default=None, help="cache root (default DATA_ROOT/.lnlbench-cache); pass the same as the reader's cache_dir option")
    p.add_argument("--workers", type=int, default=None, help="decoding threads/processes (default: CPU cores, at most 8)")
    p.add_argument("--pool", choices=["thread", "process"], default="thread", help="cache: worker kind (default %(default)s)")
    p.add_argument("--strict-counts", action="store_true", help="split sizes that differ from the published ones are problems")
    p.add_argument("--max-listed", type=int, default=20, help="problems listed per kind in the text report")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_prepare)


def _progress(enabled: bool):
    state = {"last": 0.0}

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if enabled and (done == total or now - state["last"] > 5):
            state["last"] = now
            print(f"  cache: {done}/{total} images", file=sys.stderr, flush=True)

    return report


def cmd_prepare(args: argparse.Namespace) -> int:
    from lnlbench import data as _readers  # noqa: F401  (importing the readers registers their manifests)
    from lnlbench.data.image_cache import CacheSpec, build_cache
    from lnlbench.data.loading import find_unreadable
    from lnlbench.data.manifest import MANIFESTS, check_copy
    from lnlbench.errors import ConfigError

    if args.dataset not in MANIFESTS:
        raise ConfigError(
            f"`lnlbench prepare` checks datasets distributed as files: {', '.join(MANIFESTS.names())}; "
            f"{args.dataset!r} is not one of them"
        )
    options = parse_set(args.option)
    if args.classes is not None:
        options["classes"] = args.classes
    root = Path(args.data_root).expanduser().resolve()
    built: dict = {}
    if args.size_deprecated is not None:
        from lnlbench.cli import deprecated_alias

        deprecated_alias("prepare --size", "--image-size")
        args.image_size = args.size_deprecated
    spec = CacheSpec(size=args.image_size, encoding=args.encoding, quality=args.quality)

    def build(relpaths: list[str]) -> dict[str, str]:
        result = build_cache(
            root, relpaths, args.cache_dir, spec, workers=args.workers, pool=args.pool, progress=_progress(not args.json)
        )
        built.update(result.to_json())
        return result.failed

    def decode_only(relpaths: list[str]) -> dict[str, str]:
        bad = find_unreadable(root, relpaths, args.image_size, args.workers)
        return {relpaths[i]: error for i, error in bad.items()}

    decode = build if args.build_cache else decode_only if args.decode else None
    report = check_copy(args.dataset, root, options, decode=decode, strict_counts=args.strict_counts)
    report.cache = built or None
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.format(max_listed=args.max_listed))
    return 0 if report.complete else 1
