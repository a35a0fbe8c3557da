"""`lnlbench demo`: the main job on the embedded digits dataset, offline, in a few minutes on a 2-core CPU."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Two noise settings x every built-in method, with budgets shrunk to fit a laptop CPU (the methods' own defaults
# are the paper budgets). Values here are what the demo runs, not recommendations.
DEMO_NOISE = [("sym", 0.2), ("sym", 0.5)]
DEMO_METHODS: dict[str, dict] = {
    "lp": {"epochs": 30},
    "fft": {"epochs": 5},
    "turn": {"lp_epochs": 30, "ft_epochs": 5},
    "coteaching": {"epochs": 3},
    "dividemix": {"warmup_epochs": 1, "epochs": 3},
}
DEMO_IMAGE_SIZE = 32


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a small grid on the embedded digits dataset and report it (offline)")
    p.add_argument("--out", default="lnlbench-demo", help="output directory (default: %(default)s)")
    p.add_argument("--method", action="append", default=None, metavar="NAME",
                   help="run only this method (repeat, or NAME,NAME; default: every built-in)")
    p.add_argument("--methods", default=None, dest="methods_deprecated", help=argparse.SUPPRESS)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--cache-dir", default=None, help="cache of noisy labels and features")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from lnlbench.errors import ConfigError
    from lnlbench.plugin_manager import method_registry
    from lnlbench.execution import execute
    from lnlbench.resolve import resolve_config

    from lnlbench.errors import Problems
    from lnlbench.preflight import check_device_if_loaded, check_directories

    out = Path(args.out)
    cache = Path(args.cache_dir) if args.cache_dir else None
    problems = Problems()  # every problem at once, before anything is written
    check_directories(problems, out=out, cache_dir=cache)
    available = method_registry().names()
    methods = [m for m in DEMO_METHODS if m in available]
    chosen = list(args.method or [])
    if args.methods_deprecated:
        from lnlbench.cli import deprecated_alias

        deprecated_alias("demo --methods", "--method")
        chosen.append(args.methods_deprecated)
    if chosen:
        methods = [m.strip() for item in chosen for m in item.split(",") if m.strip()]
        for m in methods:
            with problems.check():
                method_registry().get(m)
    configs = []
    for noise, rate in DEMO_NOISE:
        for m in methods:
            with problems.check():
                configs.append(resolve_config(
                    dataset="digits", noise=noise, rate=rate, method=m, image_size=DEMO_IMAGE_SIZE,
                    hparams=DEMO_METHODS.get(m, {}), cache_dir=cache, content=not problems,
                ))
    check_device_if_loaded(problems, args.device)
    problems.raise_any()
    print(f"lnlbench demo: {len(configs)} runs on digits (scikit-learn's handwritten digits, 1,297 train / 500 test) "
          f"at {DEMO_IMAGE_SIZE} px with the packaged EfficientNet-Lite0; records under {out}/", file=sys.stderr)
    rows = []
    start = time.perf_counter()
    for i, cfg in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] {cfg.method} {cfg.noise} {cfg.rate}", file=sys.stderr, flush=True)
        rec = execute(cfg, out, cache_dir=cache, device=args.device, launcher="demo", wait_for_lock=True)
        rows.append(rec)
    print()
    print(f"{'method':<12} {'noise':<10} {'test_acc':>9} {'selected':>9} {'wall_s':>8}  status")
    for rec in rows:
        acc = rec.get("metrics", {}).get("test_acc")
        sel = rec.get("metrics", {}).get("selection", {}).get("net1", {}).get("final", {})
        prec = f"{sel['precision']:.3f}" if sel else "-"
        noise = f"{rec['config']['noise']} {rec['config']['rate']}"
        acc_s = f"{acc:.4f}" if acc is not None else "-"
        print(f"{rec['method']:<12} {noise:<10} {acc_s:>9} {prec:>9} {rec['cost']['wall_clock_s']:>8.1f}  {rec['status']}")
    print(f"\n{len(rows)} runs in {time.perf_counter() - start:.0f} s; 'selected' is the precision of the clean subset "
          "a selecting method chose. Records: " + str(out))
    failed = [r for r in rows if r["status"] != "done"]
    _report(out)
    if failed:
        raise ConfigError(f"{len(failed)} demo run(s) failed; see traceback.txt in their run directories under {out}")
    return 0


def _report(out: Path) -> None:
    """Write the HTML/Markdown report of the demo's runs."""
    from lnlbench.report import build_report

    report_dir = out / "report"
    build_report([out], report_dir)
    print(f"report: {report_dir / 'index.html'}")
