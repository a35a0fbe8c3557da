"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from lnlbench.errors import ConfigError


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """`--set key=value` pairs; values are parsed as YAML scalars (0.1 -> float, true -> bool, sgd -> str)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not key=value; write e.g. --set lr=0.01")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Flags that define one run (shared by `run` and `noise`)."""
    p.add_argument("--dataset", required=True, help="dataset name (see `lnlbench datasets`)")
    p.add_argument("--data-root", default=None, help="directory holding the dataset's files")
    p.add_argument("--download", action="store_true", help="fetch the official archive when missing (online only)")
    p.add_argument("--noise", required=True, help="noise model (see `lnlbench noise-models`)")
    p.add_argument("--rate", type=float, default=0.0, help="noise rate, a fraction in [0, 1]")
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the noisy labels (separate from --seed)")
    p.add_argument("--noise-file", default=None, help="noisy labels for --noise file (.npy, .pt, .csv)")
    p.add_argument("--noise-map", default=None, help="class map for --noise asym on other datasets (.json, .csv)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="dataset option, e.g. max_per_class=100")
