"""Leaderboards: rows ranked per setting, and overall by their average rank across settings.

Ranks are computed on the mean accuracy as displayed (percent, 2 decimals); equal means share the average of their
ranks. Per setting, each row also names the rows whose 95% interval over seeds overlaps its own (`intervals.ties`):
the ranks those seeds cannot separate.
Overall, rows covering more settings come first, then lower average rank: an average over fewer settings is not
comparable with one over more.
"""

from __future__ import annotations

import pandas as pd

from lnlbench.report import intervals
from lnlbench.report.aggregate import summarize_hparams
from lnlbench.report.tables import DASH, Cell, Table, accuracy_cell

HASH_CHARS = 12
# The overall order, key by key: more settings covered, lower average rank, then (ties) higher mean accuracy, lower
# mean wall-clock, and the row name last so that the order never depends on the order records were read in.
OVERALL_ORDER = {"settings": False, "avg_rank": True, "acc_mean": False, "wall_clock_s_mean": True, "row": True}
ORDER_RULE = ("Order: more settings covered first, then lower average rank; ties broken by higher mean accuracy, "
              "then lower wall-clock per run, then name.")


def _devices(devices: list[str]) -> str:
    return devices[0] if len(devices) == 1 else "mixed devices: " + ", ".join(devices)


def rank_settings(t: pd.DataFrame) -> pd.DataFrame:
    """Per-setting leaderboard of one (dataset, backbone) table, best first."""
    t = t.copy()
    t["rank"] = (100 * t["acc_mean"]).round(2).groupby(t["setting"]).rank(ascending=False, method="average")
    out = pd.DataFrame(
        {
            "dataset": t["dataset"],
            "backbone": t["backbone"],
            "scope": t["setting"],
            "setting_order": t["setting_order"],
            "rank": t["rank"],
            "row": t["label"],
            "method": t["method"],
            "acc_mean": t["acc_mean"],
            "acc_std": t["acc_std"],
            "ci_low": t["ci_low"],
            "ci_high": t["ci_high"],
            "runs": t["n"],
            "wall_clock_s_mean": t["wall_mean"],
            "device": [_devices(d) for d in t["devices"]],
            "devices_list": t["devices"],
            "lnlbench": t["version"],
            "hparams": [summarize_hparams(h) for h in t["hparams_json"]],
            "hparams_full": [summarize_hparams(h, limit=None) for h in t["hparams_json"]],
            "hparams_hash": t["hparams_hash"],
            "labels_sha256": [" ".join(s[:HASH_CHARS] for s in v) for v in t["labels_sha256"]],
        }
    )
    out = out.sort_values(["setting_order", "rank", "wall_clock_s_mean", "row"], kind="stable").reset_index(drop=True)
    out["tied_with"] = ""
    for _, ranked in out.groupby("setting_order", sort=False):
        for idx, others in zip(ranked.index, intervals.ties(ranked)):
            out.at[idx, "tied_with"] = tie_text(ranked, others, int(out.at[idx, "runs"]))
    return out


def tie_text(ranked: pd.DataFrame, others: list[int], runs: int) -> str:
    """'1, 3' (the ranks of the rows whose 95% interval overlaps this one's), 'none', or why it cannot be said."""
    if runs < 2:
        return "unknown (1 seed)"
    return ", ".join(f"{ranked['rank'].iloc[j]:g}" for j in others) or "none"


def rank_overall(per_setting: pd.DataFrame) -> pd.DataFrame:
    """Average rank across the settings each row covers, with accuracy, cost, runs and provenance."""
    g = per_setting.groupby("row", sort=False)
    out = g.agg(
        dataset=("dataset", "first"),
        backbone=("backbone", "first"),
        method=("method", "first"),
        settings=("scope", "nunique"),
        avg_rank=("rank", "mean"),
        acc_mean=("acc_mean", "mean"),
        runs=("runs", "sum"),
        wall_clock_s_mean=("wall_clock_s_mean", "mean"),
    ).reset_index()
    out["device"] = [_devices(sorted(set().union(*s))) for _, s in g["devices_list"]]
    out["lnlbench"] = g["lnlbench"].agg(lambda s: " ".join(sorted(set(s)))).values
    hp = g["hparams"].agg(lambda s: s.iloc[0] if s.nunique() == 1 else "varies by setting").values
    out["hparams"] = hp
    out["hparams_hash"] = g["hparams_hash"].agg(lambda s: " ".join(sorted(set(s)))).values
    out["labels_sha256"] = g["labels_sha256"].agg(lambda s: " ".join(sorted(set(" ".join(s).split())))).values
    out["scope"] = "overall"
    out = out.sort_values(list(OVERALL_ORDER), ascending=list(OVERALL_ORDER.values()), kind="stable")
    out.insert(0, "position", range(1, len(out) + 1))
    return out.reset_index(drop=True)


def _num(x: float, fmt: str) -> Cell:
    return Cell(format(x, fmt), float(x)) if pd.notna(x) else Cell(DASH)


def overall_table(overall: pd.DataFrame, n_settings: int, accuracy_label: str) -> Table:
    """The overall leaderboard of one (dataset, backbone), with the order rule under it."""
    dataset, backbone = overall["dataset"].iloc[0], overall["backbone"].iloc[0]
    rows = [
        [
            Cell(str(r.position), r.position),
            Cell(r.row, r.row),
            _num(r.avg_rank, ".2f"),
            Cell(f"{r.settings}/{n_settings}", r.settings),
            _num(100 * r.acc_mean, ".2f"),
            Cell(str(int(r.runs)), int(r.runs)),
            _num(r.wall_clock_s_mean, ".1f"),
            Cell(r.device, r.device),
            Cell(r.lnlbench, r.lnlbench),
            Cell(r.hparams_hash, r.hparams_hash, fold=r.hparams_hash),
            Cell(r.labels_sha256, r.labels_sha256, fold=r.labels_sha256),
        ]
        for r in overall.itertuples()
    ]
    return Table(
        title=f"{dataset} · {backbone}: leaderboard",
        caption=(
            f"{dataset} · {backbone}: average rank over the settings a row covers (1 = most accurate in a setting); "
            f"mean acc is the mean {accuracy_label} (%) over those settings; cost is mean wall-clock seconds per run; "
            "hashes identify the hyperparameters and the noisy labels."
        ),
        notes=[ORDER_RULE],
        columns=["#", "method", "avg rank", "settings", "mean acc", "runs", "wall-clock s/run", "device", "lnlbench",
                 "hparams hash", "noisy labels sha256"],
        rows=rows,
        align=["r", "l", "r", "r", "r", "r", "r", "l", "l", "l", "l"],
    )


def setting_table(per: pd.DataFrame, requested: int) -> Table:
    """One leaderboard table over all settings of a (dataset, backbone), grouped by setting."""
    dataset, backbone = per["dataset"].iloc[0], per["backbone"].iloc[0]
    position = {o: i for i, o in enumerate(sorted(set(per["setting_order"])))}
    rows = [
        [
            Cell(r.scope, position[r.setting_order]),
            Cell(f"{r.rank:g}", r.rank),
            Cell(r.row, r.row),
            Cell(accuracy_cell(r.acc_mean, r.acc_std, r.runs, requested), 100 * r.acc_mean),
            Cell(str(int(r.runs)), int(r.runs)),
            Cell(r.tied_with, r.tied_with),
            _num(r.wall_clock_s_mean, ".1f"),
            Cell(r.device, r.device),
            Cell(r.lnlbench, r.lnlbench),
            Cell(r.hparams, r.hparams, fold=r.hparams_full),
            Cell(r.hparams_hash, r.hparams_hash),
            Cell(r.labels_sha256, r.labels_sha256),
        ]
        for r in per.itertuples()
    ]
    return Table(
        title=f"{dataset} · {backbone}: ranking per setting",
        caption=(f"{dataset} · {backbone}: rows ranked within each setting by mean accuracy as shown (equal means "
                 "share the average rank and are listed cheapest first). 'tied with' names the ranks whose 95% "
                 "interval over seeds (t) overlaps the row's: the seeds cannot order those rows."),
        columns=["setting", "rank", "method", "accuracy", "runs", "tied with", "wall-clock s/run", "device",
                 "lnlbench", "hparams", "hparams hash", "noisy labels sha256"],
        rows=rows,
        align=["l", "r", "l", "r", "r", "l", "r", "l", "l", "l", "l", "l"],
    )
