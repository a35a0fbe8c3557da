"""The short reading that opens a report: computed from one (dataset, backbone)'s groups and costs, never written by
hand. It names the most accurate and the cheapest rows, the best row per setting, the rows on the accuracy-versus-cost
front, and whether the seeds can tell the differences from noise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lnlbench.report.intervals import overlaps
from lnlbench.report.plots import pareto_front
from lnlbench.report.tables import plural

__all__ = ["reading"]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _times(slow: float, fast: float) -> str:
    ratio = slow / fast
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×"


def front_rows(groups: pd.DataFrame, cost: pd.DataFrame) -> dict[str, set[str]]:
    """Per setting, the row labels on the Pareto front of their device (lower wall-clock, higher accuracy)."""
    # by group, not by (label, setting): two groups may share a label (runs differing only in thread count)
    acc = groups.set_index("group_key")["acc_mean"]
    out: dict[str, set[str]] = {}
    for (setting, _device), c in cost.groupby(["setting", "device"], sort=False):
        x = c["wall_mean"].to_numpy(float)
        y = acc.reindex(c["group_key"]).to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        labels = np.asarray(c["label"])[ok]
        out.setdefault(setting, set()).update(labels[pareto_front(x[ok], y[ok])])
    return out


def reading(groups: pd.DataFrame, cost: pd.DataFrame, overall: pd.DataFrame, settings: list[str]) -> list[str]:
    """Three to five sentences on one (dataset, backbone): what won, at what cost, and how sure that is."""
    n_runs = int(groups["n"].sum())
    lines = [
        f"{plural(n_runs, 'run')} of {plural(groups['method'].nunique(), 'method')} "
        f"({plural(groups['label'].nunique(), 'row')}) in {plural(len(settings), 'setting')}."
    ]
    widest = overall[overall["settings"] == overall["settings"].max()]
    scope = (f"over all {plural(len(settings), 'setting')}" if int(widest["settings"].iloc[0]) == len(settings)
             else f"over the {plural(int(widest['settings'].iloc[0]), 'setting')} most rows cover")
    top = widest.loc[widest["acc_mean"].idxmax()]
    cheap = widest.loc[widest["wall_clock_s_mean"].idxmin()]
    sentence = (f"Highest mean accuracy {scope}: {top['row']}, {_pct(top['acc_mean'])} at "
                f"{top['wall_clock_s_mean']:.0f} s per run")
    if cheap["row"] == top["row"]:
        sentence += "; it is also the cheapest."
    else:
        ratio = _times(top["wall_clock_s_mean"], cheap["wall_clock_s_mean"])
        sentence += (f"; the cheapest, {cheap['row']}, reaches {_pct(cheap['acc_mean'])} in "
                     f"{cheap['wall_clock_s_mean']:.0f} s ({ratio} less time).")
    lines.append(sentence)
    best = []
    for s in settings:
        cell = groups[groups["setting"] == s]
        b = cell.loc[cell["acc_mean"].idxmax()]
        best.append(f"{s}: {b['label']}, {_pct(b['acc_mean'])}")
    lines.append("Most accurate per setting: " + "; ".join(best) + ".")
    fronts = front_rows(groups, cost)
    ran_in = groups.groupby("label")["setting"].agg(set)
    always = sorted(lab for lab, ss in ran_in.items() if all(lab in fronts.get(s, set()) for s in ss))
    never = sorted(lab for lab, ss in ran_in.items() if not any(lab in fronts.get(s, set()) for s in ss))
    front = "On the accuracy-versus-cost front in every setting they ran: " + (", ".join(always) or "no row")
    lines.append(front + ("; never on it: " + ", ".join(never) if never else "") + ".")
    stds = groups["acc_std"].dropna()
    if stds.empty:
        lines.append("Every cell holds one run: the spread over seeds is unknown, so small differences may be noise.")
    else:
        lines.append(separation_sentence(groups, settings))
    return lines


def _interval(row: pd.Series) -> str:
    return f"{100 * row['ci_low']:.2f}–{100 * row['ci_high']:.2f}"


def separation_sentence(groups: pd.DataFrame, settings: list[str]) -> str:
    """Per setting, whether the 95% intervals over seeds separate the most accurate row from the runner-up."""
    parts = []
    for s in settings:
        cell = groups[groups["setting"] == s].sort_values("acc_mean", ascending=False)
        if len(cell) < 2:
            continue
        first, second = cell.iloc[0], cell.iloc[1]
        pair = f"{first['label']} over {second['label']}"
        if first["n"] < 2 or second["n"] < 2:
            parts.append(f"{s}: {pair} rests on one seed, unknown")
        elif overlaps((first["ci_low"], first["ci_high"]), (second["ci_low"], second["ci_high"])):
            parts.append(f"{s}: {pair} not supported ({_interval(first)} and {_interval(second)} overlap)")
        else:
            parts.append(f"{s}: {pair} supported ({_interval(first)} against {_interval(second)})")
    if not parts:
        return "No setting holds two rows to compare."
    return ("Is the most accurate row ahead of the next, by 95% intervals over seeds (t)? " + "; ".join(parts) + ".")
