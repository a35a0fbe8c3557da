"""`lnlbench demo`: the main job on the embedded digits dataset, offline, in about three minutes on a 2-core CPU.

It says how long it expects to take, shows its progress (a bar with ETA on a terminal, plain lines in a log), prints
a table and ends with a reading of that table computed from the records (`lnlbench.demo_reading`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# One noise setting, two seeds (so the reading can weigh a lead against the seed-to-seed spread), three methods. The
# budgets are cut where a method trains the whole network, never below 5 epochs: on these 1,297 images fewer epochs
# cripple fine-tuning (measured: after 2 epochs fft ended at 0.30-0.34 and TURN at 0.14-0.15, below their own best
# epochs of 0.75-0.78, while batch-norm statistics were still moving), which would say nothing about the methods.
# `lp` and TURN's step 1 keep their defaults: they cost seconds on cached features. Co-teaching and DivideMix train
# two networks and do not fit in three minutes at a budget that does them justice: ask for them with --method.
DEMO_NOISE = [("sym", 0.5)]
DEMO_SEEDS = (0, 1)
DEMO_METHODS: dict[str, dict] = {
    "lp": {},
    "turn": {"ft_epochs": 5},
    "fft": {"epochs": 5},
}
OPT_IN_METHODS: dict[str, dict] = {"coteaching": {"epochs": 5}, "dividemix": {"epochs": 5}}
DEMO_IMAGE_SIZE = 32

# Seconds one demo run of each method took on the 2-core CPU VM this project is developed on (idle, 2 threads,
# 2026-12-01, the records' cost.wall_clock_s, mean of the two seeds). The expected duration printed up front and the
# ETA of the plain progress lines scale these by how fast this machine turns out to be. The opt-in methods were not
# measured at their demo budgets: their runs are counted apart ("+ N runs not measured here"), never guessed.
MEASURED_S = {"lp": 8.4, "turn": 25.1, "fft": 47.8}
MEASURED_ON = "a 2-core CPU VM (idle, measured 2026-12-01)"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a small grid on the embedded digits dataset and report it (offline)")
    p.add_argument("--out", default="lnlbench-demo", help="output directory")
    p.add_argument("--method", action="append", default=None, metavar="NAME",
                   help="run only this method (repeat, or NAME,NAME; default: " + ", ".join(DEMO_METHODS) + ")")
    p.add_argument("--methods", default=None, dest="methods_deprecated", help=argparse.SUPPRESS)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--cache-dir", default=None, help="cache of noisy labels and features (default: ~/.cache/lnlbench)")
    p.set_defaults(func=cmd_demo)


def _chosen_methods(args: argparse.Namespace) -> list[str]:
    chosen = list(args.method or [])
    if args.methods_deprecated:
        from lnlbench.cli import deprecated_alias

        deprecated_alias("demo --methods", "--method")
        chosen.append(args.methods_deprecated)
    return [m.strip() for item in chosen for m in item.split(",") if m.strip()] or list(DEMO_METHODS)


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def cmd_demo(args: argparse.Namespace) -> int:
    from lnlbench import progress
    from lnlbench.errors import ConfigError, Problems
    from lnlbench.execution import execute
    from lnlbench.plugin_manager import method_registry
    from lnlbench.preflight import check_device_if_loaded, check_directories
    from lnlbench.resolve import resolve_config

    out = Path(args.out)
    cache = Path(args.cache_dir) if args.cache_dir else None
    problems = Problems()  # every problem at once, before anything is written
    check_directories(problems, out=out, cache_dir=cache)
    methods = _chosen_methods(args)
    for m in methods:
        with problems.check():
            method_registry().get(m)
    budgets = {m: {**DEMO_METHODS, **OPT_IN_METHODS}.get(m, {}) for m in methods}
    configs = []
    for noise, rate in DEMO_NOISE:
        for seed in DEMO_SEEDS:
            for m in methods:
                with problems.check():
                    configs.append(resolve_config(
                        dataset="digits", noise=noise, rate=rate, method=m, seed=seed, image_size=DEMO_IMAGE_SIZE,
                        hparams=budgets[m], cache_dir=cache, content=not problems,
                    ))
    check_device_if_loaded(problems, args.device)
    problems.raise_any()

    expected = [MEASURED_S.get(c.method, 0.0) for c in configs]  # 0: no measurement for this method

    def unmeasured(first: int) -> str:
        n = sum(c.method not in MEASURED_S for c in configs[first:])
        return f" + {n} run(s) not measured here" if n else ""

    print(f"lnlbench demo: {len(configs)} runs ({', '.join(methods)} x {len(DEMO_SEEDS)} seeds, "
          f"{' and '.join(f'{n} {r:.0%}' for n, r in DEMO_NOISE)} noise) on digits (scikit-learn's handwritten digits, "
          f"1,297 train / 500 test) at {DEMO_IMAGE_SIZE} px with the packaged EfficientNet-Lite0.\n"
          f"Expected: about {_clock(sum(expected))} (min:s) of runs{unmeasured(0)}, then the report, on "
          f"{MEASURED_ON}; other machines differ. "
          f"Records under {out}/", file=sys.stderr, flush=True)
    rows = []
    start = time.perf_counter()
    drawn = progress.enabled()  # a terminal: tqdm's bar with elapsed time and ETA over the runs
    for i, (cfg, _) in enumerate(progress.bar(list(zip(configs, expected)), desc="demo", unit="run"), 1):
        if not drawn:  # a log, not a terminal: one plain line per run with the time so far and an estimate
            elapsed = time.perf_counter() - start
            done_expected = sum(expected[: i - 1])
            pace = elapsed / done_expected if done_expected else 1.0
            left = pace * sum(expected[i - 1:])
            print(f"[{i}/{len(configs)}] {cfg.method} {cfg.noise} {cfg.rate} seed {cfg.seed} "
                  f"(elapsed {_clock(elapsed)}, about {_clock(left)} left{unmeasured(i - 1)})", file=sys.stderr,
                  flush=True)
        rows.append(execute(cfg, out, cache_dir=cache, device=args.device, launcher="demo", wait_for_lock=True))
    _print_table(rows)
    print(f"\n{len(rows)} runs in {_clock(time.perf_counter() - start)} (min:s); 'selected' is the precision of the "
          f"clean subset a selecting method chose. Records: {out}")
    defaults = {m: {k: hp.default for k, hp in method_registry().get(m).hparam_space.items()} for m in methods}
    from lnlbench.demo_reading import read_demo

    print("\nReading: " + " ".join(read_demo(rows, budgets, defaults)))
    failed = [r for r in rows if r["status"] != "done"]
    _report(out)
    if failed:
        raise ConfigError(f"{len(failed)} demo run(s) failed; see traceback.txt in their run directories under {out}")
    return 0


def _print_table(rows: list[dict]) -> None:
    print()
    print(f"{'method':<12} {'noise':<10} {'seed':>4} {'test_acc':>9} {'selected':>9} {'wall_s':>8}  status")
    for rec in rows:
        acc = rec.get("metrics", {}).get("test_acc")
        sel = rec.get("metrics", {}).get("selection", {}).get("net1", {}).get("final", {})
        prec = f"{sel['precision']:.3f}" if sel else "-"
        noise = f"{rec['config']['noise']} {rec['config']['rate']}"
        acc_s = f"{acc:.4f}" if acc is not None else "-"
        print(f"{rec['method']:<12} {noise:<10} {rec['config']['seed']:>4} {acc_s:>9} {prec:>9} "
              f"{rec['cost']['wall_clock_s']:>8.1f}  {rec['status']}")


def _report(out: Path) -> None:
    """Write the HTML/Markdown report of the demo's runs."""
    from lnlbench.report import build_report

    report_dir = out / "report"
    build_report([out], report_dir)
    print(f"report: {report_dir / 'index.html'}")
