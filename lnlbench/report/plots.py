"""Figures (matplotlib's Agg canvas, no display): accuracy vs wall-clock with Pareto fronts, accuracy vs noise rate,
and the precision/recall of the clean subsets that selecting methods chose. Each is written as PNG and SVG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lnlbench.report.colors import HATCHES, RowStyle

PNG_DPI = 110
# Fixed metadata and hash salt make the files byte-identical from one report to the next.
_RC = {"svg.fonttype": "none", "svg.hashsalt": "lnlbench", "font.size": 9}
LEGEND_COLS = 3
_LINES = ["-", "--", ":", "-."]
_FILLS = ["full", "none", "left", "bottom"]  # one per device where a plot holds several
_FRONT = "0.3"  # Pareto fronts and other keys in grey; tab10's grey is never a method's colour
_CONTENDED = "crimson"


def _figure(nrows: int, ncols: int, legend: list[str], width: float = 4.2, height: float = 3.2):
    """A figure of `nrows` x `ncols` panels with room for a title above and a legend of the `legend` labels below;
    returns (figure, axes, legend height as a fraction, legend columns).

    Margins are fixed in inches (constrained layout costs more than the drawing itself at report scale)."""
    from matplotlib.figure import Figure

    fig_w = width * ncols
    longest = max((len(label) for label in legend), default=0)
    legend_cols = max(1, min(LEGEND_COLS, len(legend), int(fig_w // (0.056 * longest + 0.45)) if longest else 1))
    legend_h = 0.22 * math.ceil(len(legend) / legend_cols) + 0.15 if legend else 0.0
    top_h, bottom_h = 0.5, 0.55 + legend_h
    fig_h = height * nrows + top_h + bottom_h
    fig = Figure(figsize=(fig_w, fig_h))
    fig.subplots_adjust(left=0.75 / fig_w, right=1 - 0.2 / fig_w, top=1 - top_h / fig_h, bottom=bottom_h / fig_h,
                        wspace=0.3, hspace=0.45 * 3.2 / height)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes, legend_h / fig_h, legend_cols


def _title(fig, text: str) -> None:
    """The figure's title inside its top margin, clear of the panel titles."""
    fig.suptitle(text, y=1 - 0.08 / fig.get_figheight(), va="top")


def _save(fig, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, dpi=PNG_DPI, metadata={"Software": None})
    fig.savefig(svg, metadata={"Date": None, "Creator": None})
    return [png, svg]


def pareto_front(times: np.ndarray, accs: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats in both time (lower) and accuracy (higher), by time."""
    order = np.lexsort((-accs, times))
    front, best = [], -math.inf
    for i in order:
        if accs[i] > best:
            front.append(i)
            best = accs[i]
    return np.asarray(front, dtype=int)


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    """Rows and columns for `n` panels: at most `max_cols` across, four as two by two."""
    cols = min(2 if n == 4 else n, max_cols)
    return math.ceil(n / cols), cols


def _hide_unused(axes, n: int) -> None:
    for ax in axes.flat[n:]:
        ax.set_visible(False)


def _legend(fig, entries: dict[str, dict], height: float, cols: int) -> None:
    """One legend below the panels from proxy artists: `entries` maps a label to Line2D keyword arguments, or to
    Patch keyword arguments under the key "patch"."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if entries:
        handles = [Patch(**kw["patch"]) if "patch" in kw else Line2D([], [], **kw) for kw in entries.values()]
        fig.legend(handles, list(entries), loc="lower center", bbox_to_anchor=(0.5, 0.0, 0.0, height),
                   ncols=cols, fontsize=8, frameon=False)


def _row_entries(labels: list[str], styles: dict[str, RowStyle], **extra) -> dict[str, dict]:
    return {lab: {"color": styles[lab].color, "marker": styles[lab].marker, **extra} for lab in labels}


def _cost_points(groups: pd.DataFrame, cost: pd.DataFrame, setting: str, device: str) -> dict:
    """One setting's points on one device: time, accuracy, std, label, contended runs, and the Pareto front."""
    cd = cost[(cost["setting"] == setting) & (cost["device"] == device)]
    a = groups.set_index(["label", "setting"])[["acc_mean", "acc_std"]].loc[list(zip(cd["label"], cd["setting"]))]
    x = cd["wall_mean"].to_numpy(float)
    y = 100 * a["acc_mean"].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y)
    return {"x": x, "y": y, "err": 100 * a["acc_std"].to_numpy(float), "labels": list(cd["label"]),
            "contended": cd["contended_runs"].to_numpy(int), "fx": x[ok][pareto_front(x[ok], y[ok])],
            "fy": y[ok][pareto_front(x[ok], y[ok])]}


def accuracy_vs_cost(groups: pd.DataFrame, cost: pd.DataFrame, settings: list[str], title: str, stem: Path,
                     styles: dict[str, RowStyle], acc_label: str, max_cols: int = 3) -> list[Path]:
    """One panel per setting: each row's mean accuracy (± std) against its mean wall-clock per run, one point per
    device, with the Pareto front of each device (lower time, higher accuracy) drawn as a step line; the legend
    names every kind of mark the panels hold. `max_cols=1` draws the narrow version for phones."""
    import matplotlib

    devices = sorted(cost["device"].unique())
    multi = len(devices) > 1
    panels = [[_cost_points(groups, cost, s, d) for d in devices] for s in settings]
    points = [p for panel in panels for p in panel]
    labels = sorted(cost["label"].unique(), key=lambda lab: (lab.split(" (")[0], styles[lab].variant, lab))
    entries = _row_entries(labels, styles, linestyle="")
    if multi:
        for d_i, device in enumerate(devices):
            entries[f"marker fill: {device}"] = {"color": _FRONT, "marker": "o", "linestyle": "",
                                                 "fillstyle": _FILLS[d_i % len(_FILLS)]}
    for d_i, device in enumerate(devices):
        if any(len(panel[d_i]["fx"]) > 1 for panel in panels):
            entries["Pareto front" + (f", {device}" if multi else "")] = {
                "color": _FRONT, "linestyle": _LINES[d_i % 4]}
    if any(len(p["fx"]) == 1 for p in points):
        entries["ring: one-point front (fastest = most accurate)"] = {
            "color": _FRONT, "marker": "o", "markersize": 11, "fillstyle": "none", "linestyle": ""}
    if any(np.isfinite(p["err"]).any() for p in points):
        entries["bar: ± std over seeds"] = {"color": _FRONT, "marker": "|", "markersize": 11, "linestyle": ""}
    if any(p["contended"].any() for p in points):
        entries["x: contended, wall-clock inflated"] = {"color": _CONTENDED, "marker": "x",
                                                                              "linestyle": ""}
    nrows, ncols = _grid(len(settings), max_cols)
    with matplotlib.rc_context(_RC):
        fig, axes, legend_h, legend_cols = _figure(nrows, ncols, list(entries))
        for ax, setting, panel in zip(axes.flat, settings, panels):
            for d_i, p in enumerate(panel):
                for xi, yi, ei, lab, n_cont in zip(p["x"], p["y"], p["err"], p["labels"], p["contended"]):
                    st = styles[lab]
                    if np.isfinite(ei):
                        ax.vlines(xi, yi - ei, yi + ei, colors=[st.color], linewidth=1)
                    ax.plot([xi], [yi], linestyle="", marker=st.marker, color=st.color, markersize=6,
                            fillstyle=_FILLS[d_i % len(_FILLS)], zorder=3)
                    if n_cont:
                        ax.plot([xi], [yi], linestyle="", marker="x", color=_CONTENDED, markersize=9, zorder=4)
                if len(p["fx"]) > 1:
                    ax.step(p["fx"], p["fy"], where="post", color=_FRONT, linewidth=1, linestyle=_LINES[d_i % 4],
                            zorder=1)
                elif len(p["fx"]) == 1:
                    ax.plot(p["fx"], p["fy"], linestyle="", marker="o", markersize=13, fillstyle="none",
                            color=_FRONT, zorder=2)
            ax.set_title(setting)
            xs = np.concatenate([p["x"] for p in panel])
            xs = xs[np.isfinite(xs) & (xs > 0)]
            log = bool(len(xs) and xs.max() / xs.min() > 20)
            if log:
                ax.set_xscale("log")
            ax.set_xlabel("wall-clock per run (s" + (", log scale)" if log else ")"))
            ax.set_ylabel(f"{acc_label} (%)")
            ax.grid(alpha=0.3)
        _hide_unused(axes, len(settings))
        _legend(fig, entries, legend_h, legend_cols)
        _title(fig, title)
        return _save(fig, stem)


def accuracy_vs_rate(groups: pd.DataFrame, title: str, stem: Path, styles: dict[str, RowStyle],
                     acc_label: str) -> list[Path]:
    """One panel per noise model: each row's accuracy against the noise rate, ± std as error bars."""
    import matplotlib

    first = groups.groupby("noise")["setting_order"].min()
    noises = sorted(first.index, key=lambda n: first[n])
    labels = sorted(groups["label"].unique(), key=lambda lab: (lab.split(" (")[0], styles[lab].variant, lab))
    entries = {lab: {"color": styles[lab].color, "marker": styles[lab].marker, "linestyle": styles[lab].linestyle}
               for lab in labels}
    spread = groups["acc_std"].notna().any()
    if spread:
        entries["bar: ± std over seeds"] = {"color": _FRONT, "marker": "|", "markersize": 11, "linestyle": ""}
    nrows, ncols = _grid(len(noises))
    with matplotlib.rc_context(_RC):
        fig, axes, legend_h, legend_cols = _figure(nrows, ncols, list(entries))
        for ax, noise in zip(axes.flat, noises):
            g = groups[groups["noise"] == noise]
            # a label set (CIFAR-N's worse, aggre, ...) has no rate parameter: it sits at its realized rate
            realized = (g["noise_variant"] != "") if "noise_variant" in g else pd.Series(False, index=g.index)
            g = g.assign(x_rate=g["rate"].where(~realized, g.get("realized_rate", g["rate"]))).sort_values("x_rate")
            for lab, gl in g.groupby("label", sort=True):
                st = styles[lab]
                x, y = 100 * gl["x_rate"].to_numpy(float), 100 * gl["acc_mean"].to_numpy(float)
                err = 100 * gl["acc_std"].to_numpy(float)
                ax.plot(x, y, marker=st.marker, markersize=4, color=st.color, linestyle=st.linestyle)
                has = np.isfinite(err)
                if has.any():
                    ax.vlines(x[has], (y - err)[has], (y + err)[has], colors=[st.color], linewidth=1)
            ax.set_title(f"{noise} noise")
            ax.set_xlabel("realized noise rate (%)" if realized.any() else "noise rate (%)")
            ax.set_ylabel(f"{acc_label} (%)")
            ax.grid(alpha=0.3)
        _hide_unused(axes, len(noises))
        _legend(fig, entries, legend_h, legend_cols)
        _title(fig, title)
        return _save(fig, stem)


def selection_quality(groups: pd.DataFrame, settings: list[str], title: str, stem: Path,
                      styles: dict[str, RowStyle]) -> list[Path]:
    """Precision and recall of the final clean subset per selecting row and network, per setting (grouped bars):
    colour by method, hatch by variant and network."""
    import matplotlib

    nets = sorted({c.split(".")[1] for c in groups.columns if c.startswith("sel.") and groups[c].notna().any()})
    series = []  # (row label, net)
    for lab in sorted(groups["label"].unique(), key=lambda lab: (lab.split(" (")[0], styles[lab].variant, lab)):
        g = groups[groups["label"] == lab]
        for net in nets:
            col = f"sel.{net}.precision"
            if col in g and g[col].notna().any():
                series.append((lab, net))
    if not series:
        return []
    names = [f"{lab} ({net})" for lab, net in series]
    hatch = {s: HATCHES[(styles[s[0]].variant * len(nets) + nets.index(s[1])) % len(HATCHES)] for s in series}
    entries = {name: {"patch": {"facecolor": styles[lab].color, "hatch": hatch[(lab, net)], "edgecolor": "white"}}
               for name, (lab, net) in zip(names, series)}
    with matplotlib.rc_context(_RC):
        fig, axes, legend_h, legend_cols = _figure(1, 2, list(entries), width=max(4.2, 0.9 * len(settings) + 2))
        width = 0.8 / len(series)
        x = np.arange(len(settings))
        for ax, metric in zip(axes.flat, ("precision", "recall")):
            for i, (lab, net) in enumerate(series):
                g = groups[groups["label"] == lab].set_index("setting")[f"sel.{net}.{metric}"]
                y = [100 * g[s] if s in g.index else np.nan for s in settings]
                ax.bar(x + (i - (len(series) - 1) / 2) * width, y, width, color=styles[lab].color,
                       hatch=hatch[(lab, net)], edgecolor="white", linewidth=0)
            ax.set_xticks(x, settings)
            ax.set_ylabel(f"selection {metric} (%)")
            ax.set_ylim(0, 100)
            ax.set_title(f"clean-subset {metric}")
            ax.grid(alpha=0.3, axis="y")
        _legend(fig, entries, legend_h, legend_cols)
        _title(fig, title)
        return _save(fig, stem)
