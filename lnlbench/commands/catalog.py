"""Listing commands: datasets, noise models, methods, backbones; and `lnlbench noise` to inspect noisy labels."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lnlbench.commands.common import add_run_arguments, parse_set
from lnlbench.errors import ConfigError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list the registered datasets")
    p.set_defaults(func=cmd_datasets)
    p = sub.add_parser("noise-models", help="list the noise models")
    p.set_defaults(func=cmd_noise_models)
    p = sub.add_parser("methods", help="list the methods, or show one's hyperparameters")
    p.add_argument("--show", metavar="NAME", help="print NAME's hyperparameters with their defaults and sources")
    p.add_argument("--dataset", default=None, help="with --show: resolve per-dataset overrides")
    p.add_argument("--noise", default="sym", help="with --show: resolve per-noise overrides")
    p.add_argument("--rate", type=float, default=0.5, help="with --show: resolve per-rate overrides")
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="with --show: the hyperparameters and schedule of a budget of N epochs (the budget rule)")
    p.set_defaults(func=cmd_methods)
    p = sub.add_parser(
        "backbones", help="list timm architectures matching a wildcard",
        description="List timm architectures matching a wildcard; those with weights available offline are marked "
        "[packaged] (the EfficientNet-Lite0 package) or [timm cache] (timm weights already downloaded here).",
    )
    p.add_argument("--offline", action="store_true", help="only architectures whose weights are on this machine")
    p.add_argument("pattern", nargs="?", default="*", help="e.g. '*resnet*'")
    p.set_defaults(func=cmd_backbones)
    p = sub.add_parser("noise", help="make (or load) noisy labels and print their realized rate and transition matrix")
    add_run_arguments(p)
    p.add_argument("--variant", default=None, help="label set of a CIFAR-N noise model, e.g. --noise cifar10n "
                   "--variant worse")
    p.add_argument("--cache-dir", default=None, help="cache of noisy labels (default: ~/.cache/lnlbench)")
    p.add_argument("--json", action="store_true", help="print an object with realized_rate, labels_sha256, ...")
    p.set_defaults(func=cmd_noise)


def cmd_datasets(args: argparse.Namespace) -> int:
    from lnlbench.plugin_manager import dataset_registry

    registry = dataset_registry()
    for name in registry.names():
        reader = registry.get(name)
        root = "needs --data-root" if reader.needs_data_root else "embedded"
        print(f"{name:<14} {root:<18} {reader.description}")
    return 0


def cmd_noise_models(args: argparse.Namespace) -> int:
    from lnlbench.plugin_manager import noise_registry

    from lnlbench.noise.cifar_n import CIFAR_N, CITATION, LICENCE, RELEASE

    registry = noise_registry()
    for name in registry.names():
        print(f"{name:<14} {registry.get(name).description}")
        if name in CIFAR_N:  # real human labels: whose they are and on what terms
            print(f"{'':<14} citation: {CITATION}\n{'':<14} licence: {LICENCE}; labels: {RELEASE}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from lnlbench.plugin_manager import method_registry

    registry = method_registry()
    if not args.show:
        for name in registry.names():
            cls = registry.get(name)
            print(f"{name:<12} {cls.source:<22} {cls.description}")
        return 0
    cls = registry.get(args.show)
    print(f"{cls.name} ({cls.source}): {cls.description}")
    budget = {} if args.epochs is None else cls.budget_hparams(args.epochs)
    if args.epochs is not None and not budget:
        raise ConfigError(f"method {cls.name!r} has no epoch budget to scale; drop --epochs")
    resolved = cls.resolve_hparams(args.dataset or "", args.noise, args.rate, budget)
    overrides = cls.hparam_overrides(args.dataset or "", args.noise, args.rate)
    setting = f"dataset={args.dataset or '-'}, noise={args.noise}, rate={args.rate}"
    if budget:
        setting += ", budget " + ", ".join(f"{k}={v}" for k, v in budget.items())
    print(f"hyperparameters (resolved for {setting}):")
    for key, hp in cls.hparam_space.items():
        src = overrides[key][1] if key in overrides else hp.source
        if key in budget:
            src = f"--epochs {args.epochs} (default {hp.default!r}: {src})"
        print(f"  {key} = {resolved[key]!r}\n      source: {src}" + (f"\n      {hp.help}" if hp.help else ""))
    items = cls.schedule(resolved, args.dataset or "")
    if items:
        from lnlbench.methods import SCALING_RULE

        print(f"schedule at this budget\n  rule: {SCALING_RULE}")
        for item in items:
            print(f"  {item.name} = {item.value}\n      reference: {item.reference}"
                  + (f"\n      {item.note}" if item.note else ""))
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    import timm

    from lnlbench.models import offline_weights

    names = timm.list_models(args.pattern)
    if not names:
        raise ConfigError(
            f"no timm architecture matches {args.pattern!r}; wildcards match whole names, e.g. "
            f"`lnlbench backbones '*resnet*'`"
        )
    shown = 0
    for name in names:
        source = offline_weights(name)
        if args.offline and source is None:
            continue
        print(f"{name}  [{source}]" if source else name)
        shown += 1
    if args.offline and not shown:
        print(f"none of the {len(names)} architectures matching {args.pattern!r} has weights on this machine; "
              "use --weights random, or fetch timm weights on a machine that is online", file=sys.stderr)
        return 1
    return 0


def cmd_noise(args: argparse.Namespace) -> int:
    from lnlbench.data.base import load_dataset
    from lnlbench.plugin_manager import noise_registry
    from lnlbench.harness import default_cache_dir, make_noisy_labels, resolve_config

    noise_registry().get(args.noise)
    config = resolve_config(
        dataset=args.dataset, noise=args.noise, rate=args.rate, method="lp", noise_seed=args.noise_seed,
        dataset_options=parse_set(args.option), data_root=args.data_root, noise_file=args.noise_file,
        noise_map=args.noise_map, noise_variant=args.variant,
    )
    data = load_dataset(args.dataset, args.data_root, download=args.download, **config.dataset_options)
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    noisy = make_noisy_labels(config, data, cache)
    info = noisy.to_json()
    info["dataset"] = args.dataset
    info["classes"] = data.classes
    if "variant" in config.noise_options:
        info["variant"] = config.noise_options["variant"]
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    if "variant" in config.noise_options:
        print(f"{args.dataset}: {args.noise} variant {config.noise_options['variant']} ({config.noise_file})")
    else:
        print(f"{args.dataset}: {args.noise} at rate {args.rate}, noise seed {args.noise_seed}")
    print(f"realized noise rate: {noisy.realized_rate:.4f} over {len(noisy.labels)} labels")
    print(f"labels sha256: {noisy.sha256}")
    print("realized transition matrix (rows: clean class, columns: noisy label):")
    import numpy as np

    tm = np.asarray(noisy.transition_matrix)
    width = max(len(c) for c in data.classes[: len(tm)])
    for name, row in zip(data.classes, tm):
        print(f"  {name:>{width}} " + " ".join(f"{v:5.2f}" for v in row))
    return 0
