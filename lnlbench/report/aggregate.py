"""Group runs that differ only in their seeds, name the rows of the tables, and summarise accuracy and cost.

Grouping key: the run's whole identity (`config` in the record: dataset, backbone, weights, noise model and rate,
method, hyperparameters, image size, dataset and noise options, precision settings) plus the lnlbench version, with
the training seed and the noise seed left out. Runs with the same key are repetitions and are averaged; anything
else gets its own row. Spread is the sample standard deviation (ddof=1); a single run has none.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from lnlbench.report.intervals import add_intervals

ACCURACY_COLUMNS = {"final": "acc_final", "best": "acc_best"}
ACCURACY_LABELS = {
    "final": "final-epoch test accuracy",
    "best": "best-epoch test accuracy (max over per-epoch test evaluations: optimistic, not a reportable number)",
}
# Paper tables put symmetric noise first, then asymmetric, then the rest by name.
NOISE_ORDER = {"none": 0, "sym": 1, "asym": 2}
TABLE_KEYS = ["dataset", "backbone"]


def setting_label(noise: str, rate: float, variant: str = "") -> str:
    """'sym 20%' for noise model 'sym' at rate 0.2; 'cifar10n worse' for a label set, whose rate is what it is."""
    if variant:
        return f"{noise} {variant}"
    return f"{noise} {round(float(rate) * 100, 4):g}%"


def setting_order(noise: str, rate: float, variant: str = "") -> tuple:
    return (NOISE_ORDER.get(noise, 9), noise, float(rate), variant)


def _sorted_unique(values: pd.Series) -> list:
    return sorted({v for v in values if v is not None and v == v and v != ""}, key=str)


def group_runs(runs: pd.DataFrame, accuracy: str) -> pd.DataFrame:
    """One row per group of repetitions: accuracy mean/std/n and 95% interval, provenance, selection means, devices."""
    col = ACCURACY_COLUMNS[accuracy]
    g = runs.groupby("group_key", sort=False)
    agg = g.agg(
        dataset=("dataset", "first"),
        backbone=("backbone", "first"),
        method=("method", "first"),
        noise=("noise", "first"),
        rate=("rate", "first"),
        noise_variant=("noise_variant", "first"),
        realized_rate=("realized_rate", "mean"),
        version=("version", "first"),
        hparams_json=("hparams_json", "first"),
        hparams_hash=("hparams_hash", "first"),
        variant=("variant", "first"),
        n=("run_id", "size"),
        acc_mean=(col, "mean"),
        acc_std=(col, "std"),  # pandas' default ddof=1: NaN for a single run
        wall_mean=("wall_clock_s", "mean"),
        n_devices=("device", "nunique"),
    )
    agg["seeds"] = g["seed"].agg(_sorted_unique)
    agg["noise_seeds"] = g["noise_seed"].agg(_sorted_unique)
    agg["labels_sha256"] = g["labels_sha256"].agg(_sorted_unique)
    agg["devices"] = g["device"].agg(_sorted_unique)
    sel_cols = [c for c in runs.columns if c.startswith("sel.")]
    if sel_cols:
        agg = agg.join(g[sel_cols].mean())
    agg["setting"] = [setting_label(n, r, v) for n, r, v in zip(agg["noise"], agg["rate"], agg["noise_variant"])]
    agg["setting_order"] = [setting_order(n, r, v) for n, r, v in zip(agg["noise"], agg["rate"],
                                                                      agg["noise_variant"])]
    return add_intervals(agg).reset_index()


def _short_value(value_json: str) -> str:
    value = json.loads(value_json)
    return value if isinstance(value, str) else json.dumps(value)


def _short_field(name: str) -> str:
    return name.split(".", 1)[1] if name.startswith("hparams.") else name


def label_rows(groups: pd.DataFrame) -> tuple[list[str], list[str]]:
    """A row label per group, and warnings for each cell that holds more than one configuration of a method.

    A method whose groups never share a cell is one row named by the method (its hyperparameters may still differ
    from cell to cell, as methods resolve some per noise rate). Fields that tell apart groups sharing a cell name the
    rows, e.g. "lp (lr=0.01)"; a group keeps its label in every column, so one variant forms one row.
    """
    labels = pd.Series("", index=groups.index, dtype=object)
    warnings: list[str] = []
    for (dataset, backbone, method), g in groups.groupby(["dataset", "backbone", "method"], sort=True):
        distinguishing: set[str] = set()
        for setting, cell in g.groupby("setting", sort=False):
            if len(cell) < 2:
                continue
            keys = sorted(set().union(*(v.keys() for v in cell["variant"])))
            differ = [k for k in keys if len({v.get(k, "null") for v in cell["variant"]}) > 1]
            distinguishing.update(differ)
            shown = "; ".join(
                f"{_short_field(k)}: " + " vs ".join(sorted({_short_value(v.get(k, 'null')) for v in cell["variant"]}))
                for k in differ
            )
            warnings.append(
                f"{dataset} / {backbone} / {method} / {setting}: {len(cell)} configurations differ in {shown}; "
                "not averaged together, shown as separate rows"
            )
        for idx, variant in zip(g.index, g["variant"]):
            if distinguishing:
                parts = [f"{_short_field(k)}={_short_value(variant.get(k, 'null'))}" for k in sorted(distinguishing)]
                labels[idx] = f"{method} ({', '.join(parts)})"
            else:
                labels[idx] = method
    return labels.tolist(), warnings


def pooling_warnings(groups: pd.DataFrame) -> list[str]:
    """Say where a cell pools several noise draws, and where methods in one column saw different noisy labels."""
    out = []
    for _, row in groups.iterrows():
        if len(row["noise_seeds"]) > 1:
            out.append(
                f"{row['dataset']} / {row['backbone']} / {row['label']} / {row['setting']}: {row['n']} runs pool "
                f"{len(row['noise_seeds'])} noise draws (noise seeds {', '.join(map(str, row['noise_seeds']))}); "
                "its ± includes the variation between draws of noisy labels"
            )
    for (dataset, backbone, setting), col in groups.groupby(TABLE_KEYS + ["setting"], sort=False):
        label_sets = {tuple(v) for v in col["labels_sha256"] if v}
        if len(label_sets) > 1:
            out.append(
                f"{dataset} / {backbone} / {setting}: rows were trained on different noisy labels "
                "(see the labels hashes in the leaderboard); compare them with care"
            )
    return out


def cost_by_device(runs: pd.DataFrame, groups: pd.DataFrame) -> pd.DataFrame:
    """Cost per group and device: never one number over runs on different devices."""
    phase_cols = [c for c in runs.columns if c.startswith("phase.")]  # in the order runs report them
    g = runs.groupby(["group_key", "device"], sort=False)
    cost = g.agg(
        n=("run_id", "size"),
        wall_mean=("wall_clock_s", "mean"),
        gpu_hours_mean=("gpu_hours", "mean"),
        gpu_hours_total=("gpu_hours", "sum"),
        peak_mem_mb_max=("peak_mem_mb", "max"),
        images_seen_mean=("images_seen", "mean"),
    )
    cost["contended_runs"] = g["contended"].agg(lambda s: int(sum(v is True for v in s)))
    if phase_cols:
        cost = cost.join(g[phase_cols].mean())
    cost = cost.reset_index()
    info = groups.set_index("group_key")[TABLE_KEYS + ["label", "setting", "setting_order"]]
    cost = cost.join(info, on="group_key")
    cost["is_gpu"] = cost["device"].str.startswith("cuda")
    return cost


def settings_of(groups: pd.DataFrame) -> list[str]:
    """Setting labels in paper order."""
    pairs = groups[["setting", "setting_order"]].drop_duplicates("setting")
    return [s for s, _ in sorted(zip(pairs["setting"], pairs["setting_order"]), key=lambda p: p[1])]


def fmt_pct(x: float) -> str:
    return "" if x is None or not np.isfinite(x) else f"{100 * x:.2f}"


def summarize_hparams(hparams_json: str, limit: int | None = 120) -> str:
    """'epochs=30, lr=0.1' from canonical JSON; cut with '…' past `limit` characters (None: never)."""
    d: dict[str, Any] = json.loads(hparams_json)
    text = ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(d.items()))
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"
