"""`lnlbench sweep FILE --out DIR`: expand a sweep file and launch what is not done; `lnlbench status DIR`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lnlbench.commands.common import parse_set


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a grid of runs from a sweep file (skips done runs, resumes the rest)",
        description="Expand a sweep file (YAML/TOML, see docs/sweeps.md) into runs, print how many are done, and "
        "launch the rest. Launcher flags override the file's `launcher:` section.",
    )
    p.add_argument("file", help="sweep file (.yaml, .yml or .toml)")
    p.add_argument("--out", required=True, help="output directory; each run writes OUT/<run_id>/")
    p.add_argument(
        "--launcher", default=None, help="local, debug, slurm or a plugin's (default: the file's, else local)"
    )
    p.add_argument("--jobs", type=int, default=None, help="local: runs at a time (default: the file's, else 1)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the runs it would launch; write nothing")
    p.add_argument("--wait", action="store_true", help="slurm: wait for the submitted runs and print their outcome")
    p.add_argument("--cache-dir", default=None, help="cache of noisy labels and features (default: ~/.cache/lnlbench)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--keep-checkpoints", action="store_true", default=None, help="keep checkpoints/ of finished runs")
    g = p.add_argument_group("SLURM (override the sweep file's launcher section)")
    g.add_argument("--partition", default=None, help="SLURM partition to submit to (sbatch --partition)")
    g.add_argument("--time", default=None, help="time limit per run: minutes or [D-]HH:MM:SS")
    g.add_argument("--gpus", type=int, default=None, help="GPUs per run")
    g.add_argument("--cpus", type=int, default=None, help="CPUs per run")
    g.add_argument("--mem", default=None, help="memory per run, e.g. 16G")
    g.add_argument("--account", default=None, help="account charged for the jobs (sbatch --account)")
    g.add_argument("--qos", default=None, help="quality of service of the jobs (sbatch --qos)")
    g.add_argument("--constraint", default=None, help="node features the jobs need, e.g. a100 (sbatch --constraint)")
    g.add_argument("--array-parallelism", type=int, default=None, help="array tasks running at once")
    g.add_argument("--sbatch", action="append", metavar="OPTION=VALUE", help="extra sbatch option, e.g. exclude=node3")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("status", help="list the runs of an output directory: done, running, failed, pending")
    p.add_argument("out", help="output directory of `lnlbench run` or `lnlbench sweep`")
    p.add_argument("--state", action="append",
                   choices=["done", "running", "failed", "pending", "interrupted", "old-schema"],
                   help="show only runs in this state (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object per run")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("reidentify", help="move finished runs of an older record schema to content-addressed run ids")
    p.add_argument("out", help="output directory holding the older runs")
    p.add_argument("--data-root", default=None, help="where the runs' data is now (default: each config.json's)")
    p.add_argument("--cache-dir", default=None, help="cache of data fingerprints and noisy labels")
    p.add_argument("--dry-run", action="store_true", help="say what would move; change nothing")
    p.set_defaults(func=cmd_reidentify)


def cmd_sweep(args: argparse.Namespace) -> int:
    from lnlbench.errors import ConfigError
    from lnlbench.launch import LauncherSettings, launch_sweep
    from lnlbench.sweep import load_sweep

    from lnlbench.errors import Problems
    from lnlbench.preflight import check_device_if_loaded, check_directories

    problems = Problems()  # one pass: the file's problems and the machine's, reported together, before any write
    check_directories(problems, out=args.out, cache_dir=args.cache_dir)
    sweep = None
    with problems.check():
        sweep = load_sweep(args.file)
    where = args.launcher or (sweep.launcher.get("name") if sweep is not None else None)
    if args.device is not None and where in (None, "local", "debug"):
        check_device_if_loaded(problems, args.device)  # the runs execute on this machine: the device must be here
    problems.raise_any()
    assert sweep is not None
    file_launcher = dict(sweep.launcher)
    name = args.launcher or file_launcher.get("name") or "local"
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: pass 1 or more")
    sbatch = dict(file_launcher.get("sbatch") or {})
    sbatch.update(parse_set(args.sbatch))
    settings = LauncherSettings.from_dict(
        file_launcher,
        jobs=args.jobs, partition=args.partition, time=args.time, gpus=args.gpus, cpus=args.cpus, mem=args.mem,
        account=args.account, qos=args.qos, constraint=args.constraint, array_parallelism=args.array_parallelism,
        keep_checkpoints=args.keep_checkpoints, sbatch=sbatch, job_name=f"lnlbench-{sweep.name}",
    )
    configs = sweep.runs(cache_dir=Path(args.cache_dir) if args.cache_dir else None, provisional_ok=args.dry_run)
    print(f"sweep {sweep.name} ({args.file}) -> {args.out}, launcher {name}")
    plan, launched = launch_sweep(
        configs, args.out, name, settings, cache_dir=args.cache_dir, device=args.device, dry_run=args.dry_run,
        wait=args.wait,
    )
    if args.dry_run:
        if sweep.provisional:
            first = next(iter(sweep.provisional.values()))
            print(f"note: {len(sweep.provisional)} run id(s) are provisional: their data or weights are not on this "
                  f"machine, so their content cannot enter the id (e.g. {first}); on the machine that has them the "
                  "ids are content-addressed")
        for c in plan.to_launch:
            hp = " ".join(f"{k}={v}" for k, v in sorted(c.hparams.items()))
            print(f"  would launch {c.run_id} {c.method} {c.dataset} {c.noise} {c.rate} noise_seed {c.noise_seed} "
                  f"{c.backbone} seed {c.seed}  {hp}")
        return 0
    if launched is None:
        return 0
    if not launched.finished:
        print(f"follow them with: lnlbench status {args.out}")
        return 0
    from lnlbench import status

    states = status.scan(args.out, [r.run_id for r in launched.runs], check_slurm=False)
    failed = [s for s in states if s.state == "failed"]
    print(f"launched {len(states)}: {sum(s.state == 'done' for s in states)} done, {len(failed)} failed")
    for s in failed:
        print(f"  failed {s.run_id}: {s.detail}\n    traceback/log: {Path(args.out) / s.run_id}", file=sys.stderr)
    return 1 if failed or any(s.state != "done" for s in states) else 0


def cmd_status(args: argparse.Namespace) -> int:
    from lnlbench import status
    from lnlbench.errors import ConfigError

    if not Path(args.out).is_dir():
        raise ConfigError(f"{args.out} is not a directory; pass the --out of a run or sweep")
    states = status.scan(args.out)
    shown = [s for s in states if not args.state or s.state in args.state]
    if args.json:
        for s in shown:
            print(json.dumps({"run_id": s.run_id, "state": s.state, "detail": s.detail,
                              "config": s.config or (s.record or {}).get("config")}, default=str))
        return 0
    for s in shown:
        print(f"{s.state:<8} {s.run_id}  {s.describe():<40} {s.detail}")
    print(status.format_counts(states))
    return 0


def cmd_reidentify(args: argparse.Namespace) -> int:
    from lnlbench.errors import ConfigError
    from lnlbench.reidentify import reidentify

    if not Path(args.out).is_dir():
        raise ConfigError(f"{args.out} is not a directory; pass the --out of a run or sweep")
    moved = reidentify(args.out, data_root=args.data_root, cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                       dry_run=args.dry_run)
    print(f"{len(moved)} run(s) {'would move' if args.dry_run else 'moved'} to content-addressed ids")
    return 0
