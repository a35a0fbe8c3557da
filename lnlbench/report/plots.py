"""Figures (matplotlib's Agg canvas, no display): accuracy vs wall-clock with Pareto fronts, accuracy vs noise rate,
and the precision/recall of the clean subsets that selecting methods chose. Each is written as PNG and SVG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

PNG_DPI = 110
# Fixed metadata and hash salt make the files byte-identical from one report to the next.
_RC = {"svg.fonttype": "none", "svg.hashsalt": "lnlbench", "font.size": 9}
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LEGEND_COLS = 4
_LINES = ["-", "--", ":", "-."]


def _figure(nrows: int, ncols: int, n_legend: int, width: float = 4.2, height: float = 3.2):
    """A figure of `nrows` x `ncols` panels with room for a title above and a legend of `n_legend` entries below.

    Margins are fixed in inches (constrained layout costs more than the drawing itself at report scale)."""
    from matplotlib.figure import Figure

    legend_h = 0.22 * math.ceil(n_legend / LEGEND_COLS) + 0.15 if n_legend else 0.0
    top_h, bottom_h = 0.5, 0.55 + legend_h
    fig_w, fig_h = width * ncols, height * nrows + top_h + bottom_h
    fig = Figure(figsize=(fig_w, fig_h))
    fig.subplots_adjust(left=0.75 / fig_w, right=1 - 0.2 / fig_w, top=1 - top_h / fig_h, bottom=bottom_h / fig_h,
                        wspace=0.3, hspace=0.45 * 3.2 / height)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes, legend_h / fig_h


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


def colors_for(labels: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(sorted(labels))}


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _hide_unused(axes, n: int) -> None:
    for ax in axes.flat[n:]:
        ax.set_visible(False)


def _legend(fig, entries: dict[str, dict], height: float) -> None:
    """One legend below the panels from proxy artists: `entries` maps a label to Line2D keyword arguments."""
    from matplotlib.lines import Line2D

    if entries:
        handles = [Line2D([], [], **kw) for kw in entries.values()]
        fig.legend(handles, list(entries), loc="lower center", bbox_to_anchor=(0.5, 0.0, 0.0, height),
                   ncols=min(len(entries), LEGEND_COLS), fontsize=8, frameon=False)


def accuracy_vs_cost(groups: pd.DataFrame, cost: pd.DataFrame, settings: list[str], title: str, stem: Path,
                     colors: dict[str, tuple], acc_label: str) -> list[Path]:
    """One panel per setting: each row's mean accuracy (± std) against its mean wall-clock per run, one point per
    device, with the Pareto front of each device (lower time, higher accuracy) drawn as a step line."""
    import matplotlib

    devices = sorted(cost["device"].unique())
    multi = len(devices) > 1
    entries: dict[str, dict] = {}
    for lab in sorted(cost["label"].unique()):
        entries[lab] = {"color": colors[lab], "marker": "o", "linestyle": ""}
    for d_i, device in enumerate(devices):
        if multi:
            entries[f"[{device}]"] = {"color": "0.4", "marker": _MARKERS[d_i % len(_MARKERS)], "linestyle": ""}
        entries["Pareto front" + (f" [{device}]" if multi else "")] = {"color": "0.3", "linestyle": _LINES[d_i % 4]}
    nrows, ncols = _grid(len(settings))
    acc = groups.set_index(["label", "setting"])[["acc_mean", "acc_std"]]
    with matplotlib.rc_context(_RC):
        fig, axes, legend_h = _figure(nrows, ncols, len(entries))
        for ax, setting in zip(axes.flat, settings):
            c = cost[cost["setting"] == setting]
            for d_i, device in enumerate(devices):
                cd = c[c["device"] == device]
                if cd.empty:
                    continue
                a = acc.loc[list(zip(cd["label"], cd["setting"]))]
                x = cd["wall_mean"].to_numpy(float)
                y = 100 * a["acc_mean"].to_numpy(float)
                err = 100 * np.nan_to_num(a["acc_std"].to_numpy(float))
                cols = [colors[lab] for lab in cd["label"]]
                ax.vlines(x, y - err, y + err, colors=cols, linewidth=1)
                ax.scatter(x, y, c=cols, marker=_MARKERS[d_i % len(_MARKERS)], s=22, zorder=3)
                ok = np.isfinite(x) & np.isfinite(y)
                front = pareto_front(x[ok], y[ok])
                if len(front) > 1:
                    ax.step(x[ok][front], y[ok][front], where="post", color="0.3", linewidth=1,
                            linestyle=_LINES[d_i % 4], zorder=1)
                elif len(front) == 1:
                    ax.scatter(x[ok][front], y[ok][front], s=90, facecolors="none", edgecolors="0.3", zorder=2)
            ax.set_title(setting)
            ax.set_xlabel("wall-clock per run (s)")
            ax.set_ylabel(f"{acc_label} (%)")
            xs = c["wall_mean"].to_numpy(float)
            xs = xs[np.isfinite(xs) & (xs > 0)]
            if len(xs) and xs.max() / xs.min() > 20:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
        _hide_unused(axes, len(settings))
        _legend(fig, entries, legend_h)
        fig.suptitle(title + (" (one marker per device; fronts never span devices)" if multi else ""))
        return _save(fig, stem)


def accuracy_vs_rate(groups: pd.DataFrame, title: str, stem: Path, colors: dict[str, tuple],
                     acc_label: str) -> list[Path]:
    """One panel per noise model: each row's accuracy against the noise rate, ± std as error bars."""
    import matplotlib

    first = groups.groupby("noise")["setting_order"].min()
    noises = sorted(first.index, key=lambda n: first[n])
    labels = sorted(groups["label"].unique())
    entries = {lab: {"color": colors[lab], "marker": "o"} for lab in labels}
    nrows, ncols = _grid(len(noises))
    with matplotlib.rc_context(_RC):
        fig, axes, legend_h = _figure(nrows, ncols, len(entries))
        for ax, noise in zip(axes.flat, noises):
            g = groups[groups["noise"] == noise].sort_values("rate")
            for lab, gl in g.groupby("label", sort=True):
                x, y = 100 * gl["rate"].to_numpy(float), 100 * gl["acc_mean"].to_numpy(float)
                err = 100 * np.nan_to_num(gl["acc_std"].to_numpy(float))
                ax.plot(x, y, marker="o", markersize=4, color=colors[lab])
                ax.vlines(x, y - err, y + err, colors=[colors[lab]], linewidth=1)
            ax.set_title(f"{noise} noise")
            ax.set_xlabel("noise rate (%)")
            ax.set_ylabel(f"{acc_label} (%)")
            ax.grid(alpha=0.3)
        _hide_unused(axes, len(noises))
        _legend(fig, entries, legend_h)
        fig.suptitle(title)
        return _save(fig, stem)


def selection_quality(groups: pd.DataFrame, settings: list[str], title: str, stem: Path) -> list[Path]:
    """Precision and recall of the final clean subset per selecting row and network, per setting (grouped bars)."""
    import matplotlib

    nets = sorted({c.split(".")[1] for c in groups.columns if c.startswith("sel.") and groups[c].notna().any()})
    series = []  # (row label, net)
    for lab in sorted(groups["label"].unique()):
        g = groups[groups["label"] == lab]
        for net in nets:
            col = f"sel.{net}.precision"
            if col in g and g[col].notna().any():
                series.append((lab, net))
    if not series:
        return []
    names = [f"{lab} ({net})" for lab, net in series]
    colors = colors_for(names)
    entries = {name: {"color": colors[name], "marker": "s", "linestyle": "", "markersize": 8} for name in names}
    with matplotlib.rc_context(_RC):
        fig, axes, legend_h = _figure(1, 2, len(entries), width=max(4.2, 0.9 * len(settings) + 2))
        width = 0.8 / len(series)
        x = np.arange(len(settings))
        for ax, metric in zip(axes.flat, ("precision", "recall")):
            for i, ((lab, net), name) in enumerate(zip(series, names)):
                g = groups[groups["label"] == lab].set_index("setting")[f"sel.{net}.{metric}"]
                y = [100 * g[s] if s in g.index else np.nan for s in settings]
                ax.bar(x + (i - (len(series) - 1) / 2) * width, y, width, color=colors[name])
            ax.set_xticks(x, settings)
            ax.set_ylabel(f"selection {metric} (%)")
            ax.set_ylim(0, 100)
            ax.set_title(f"clean-subset {metric}")
            ax.grid(alpha=0.3, axis="y")
        _legend(fig, entries, legend_h)
        fig.suptitle(title)
        return _save(fig, stem)
