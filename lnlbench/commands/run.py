"""`lnlbench run`: one run end to end."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from lnlbench.commands.common import add_run_arguments, parse_set
from lnlbench.config import DEFAULT_BACKBONE, DEFAULT_WEIGHTS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train one method on noisy labels and test it on the clean test set")
    add_run_arguments(p)
    p.add_argument("--variant", default=None, help="label set of a CIFAR-N noise model, e.g. --noise cifar10n "
                   "--variant worse (see `lnlbench noise-models`)")
    p.add_argument("--method", required=True, help="method name (see `lnlbench methods`)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help="timm architecture (default: %(default)s)")
    p.add_argument("--weights", default=DEFAULT_WEIGHTS, help="packaged | timm | random | PATH (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=None, help="input resolution (default: the backbone's)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a method hyperparameter")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"], help="mixed precision on GPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    p.add_argument("--cache-dir", default=None, help="cache of noisy labels and features (default: ~/.cache/lnlbench)")
    p.add_argument("--out", required=True, help="output directory; the record goes to OUT/<run_id>/result.json")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from lnlbench.errors import Problems
    from lnlbench.preflight import check_device_if_loaded, check_directories
    from lnlbench.resolve import resolve_config

    # One validation pass before anything is written: every problem found is reported at once (exit 2, no files).
    problems = Problems()
    check_directories(problems, out=args.out, cache_dir=args.cache_dir)
    config = None
    with problems.check():
        config = resolve_config(
            dataset=args.dataset,
            noise=args.noise,
            rate=args.rate,
            method=args.method,
            noise_seed=args.noise_seed,
            seed=args.seed,
            backbone=args.backbone,
            weights=args.weights,
            image_size=args.image_size,
            hparams=parse_set(args.set),
            dataset_options=parse_set(args.option),
            data_root=args.data_root,
            noise_file=args.noise_file,
            noise_map=args.noise_map,
            noise_variant=args.variant,
            amp=args.amp,
            compile=args.compile,
            cache_dir=Path(args.cache_dir) if args.cache_dir else None,
            content=not problems,  # no data or weights are read for a run that will be refused anyway
        )
    check_device_if_loaded(problems, args.device)
    problems.raise_any()
    assert config is not None
    if args.download:  # fetch once here; the flag is not part of what the run computes
        from lnlbench.data.base import load_dataset

        load_dataset(args.dataset, args.data_root, download=True, **config.dataset_options)
    from lnlbench.execution import execute  # after resolving: a configuration error needs no torch

    # The same path as every launcher: the run's lock (a second `lnlbench run` of this config waits for the first
    # and then finds it done), its log.txt, and a failed record for any error after the start.
    record = execute(
        config, Path(args.out), cache_dir=Path(args.cache_dir) if args.cache_dir else None, device=args.device,
        launcher="run", wait_for_lock=True,
    )
    if args.json:
        print(json.dumps(record, indent=2, default=str))
    path = Path(args.out) / config.run_id / "result.json"
    if record["status"] != "done":
        from lnlbench.log import get_logger

        # the run has logged "run ID failed: ERROR" already unless -q hid it: say the error once, then where to look
        said = get_logger().isEnabledFor(logging.INFO)
        print(("" if said else f"error: run failed: {record.get('error')}\n")
              + f"  traceback: {path.parent / 'traceback.txt'}", file=sys.stderr)
        return 1
    m = record["metrics"]
    setting = config.noise_options.get("variant", config.rate)  # a CIFAR-N variant says more than its ignored rate
    print(
        f"{config.method} on {config.dataset} ({config.noise} {setting}): test_acc {m['test_acc']:.4f} "
        f"(best epoch {m['test_acc_best']:.4f}), {record['cost']['wall_clock_s']:.1f} s on {record['cost']['device']}"
    )
    for warning in m.get("diagnostics", {}).get("warnings", []):
        print(f"warning: {warning}")
    print(f"record: {path}")
    return 0
