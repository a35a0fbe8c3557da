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


def _figure(nrows: int, ncols: int, width: float = 4.2, height: float = 3.4):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


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


def accuracy_vs_cost(groups: pd.DataFrame, cost: pd.DataFrame, settings: list[str], title: str, stem: Path,
                     colors: dict[str, tuple], acc_label: str) -> list[Path]:
    """One panel per setting: each row's mean accuracy against its mean wall-clock per run, per device, with the
    Pareto front of each device (lower time, higher accuracy) drawn as a step line."""
    import matplotlib

    nrows, ncols = _grid(len(settings))
    with matplotlib.rc_context(_RC):
        fig, axes = _figure(nrows, ncols)
        acc = groups.set_index(["label", "setting"])[["acc_mean", "acc_std"]]
        devices = sorted(cost["device"].unique())
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
                for xi, yi, ei, lab in zip(x, y, err, cd["label"]):
                    ax.errorbar(xi, yi, yerr=ei, fmt=_MARKERS[d_i % len(_MARKERS)], color=colors[lab], capsize=2,
                                label=lab if len(devices) == 1 else f"{lab} [{device}]")
                ok = np.isfinite(x) & np.isfinite(y)
                front = pareto_front(x[ok], y[ok])
                if len(front):
                    ax.step(x[ok][front], y[ok][front], where="post", color="0.3", linewidth=1,
                            linestyle=["-", "--", ":", "-."][d_i % 4], zorder=0,
                            label="Pareto front" if len(devices) == 1 else f"Pareto front [{device}]")
            ax.set_title(setting)
            ax.set_xlabel("wall-clock per run (s)")
            ax.set_ylabel(f"{acc_label} (%)")
            xs = c["wall_mean"].to_numpy(float)
            xs = xs[np.isfinite(xs) & (xs > 0)]
            if len(xs) and xs.max() / xs.min() > 20:
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
        _hide_unused(axes, len(settings))
        _legend(fig, axes)
        fig.suptitle(title + (" (points per device; fronts never span devices)" if len(devices) > 1 else ""))
        return _save(fig, stem)


def _legend(fig, axes) -> None:
    handles, labels = {}, []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if labels:
        fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center", ncols=min(len(labels), 4),
                   fontsize=8, frameon=False)


def accuracy_vs_rate(groups: pd.DataFrame, title: str, stem: Path, colors: dict[str, tuple],
                     acc_label: str) -> list[Path]:
    """One panel per noise model: each row's accuracy against the noise rate, ± std as error bars."""
    import matplotlib

    noises = sorted(groups["noise"].unique(), key=lambda n: min(o for o in groups.loc[groups["noise"] == n, "setting_order"]))
    nrows, ncols = _grid(len(noises))
    with matplotlib.rc_context(_RC):
        fig, axes = _figure(nrows, ncols)
        for ax, noise in zip(axes.flat, noises):
            g = groups[groups["noise"] == noise].sort_values("rate")
            for lab, gl in g.groupby("label", sort=True):
                ax.errorbar(100 * gl["rate"], 100 * gl["acc_mean"], yerr=100 * gl["acc_std"].fillna(0), marker="o",
                            color=colors[lab], capsize=2, label=lab)
            ax.set_title(f"{noise} noise")
            ax.set_xlabel("noise rate (%)")
            ax.set_ylabel(f"{acc_label} (%)")
            ax.grid(alpha=0.3)
        _hide_unused(axes, len(noises))
        _legend(fig, axes)
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
    with matplotlib.rc_context(_RC):
        fig, axes = _figure(1, 2, width=max(4.2, 0.9 * len(settings) + 2))
        colors = colors_for([f"{lab} {net}" for lab, net in series])
        width = 0.8 / len(series)
        x = np.arange(len(settings))
        for ax, metric in zip(axes.flat, ("precision", "recall")):
            for i, (lab, net) in enumerate(series):
                g = groups[groups["label"] == lab].set_index("setting")[f"sel.{net}.{metric}"]
                y = [100 * g.get(s, np.nan) if s in g.index else np.nan for s in settings]
                ax.bar(x + (i - (len(series) - 1) / 2) * width, y, width, color=colors[f"{lab} {net}"],
                       label=f"{lab} ({net})")
            ax.set_xticks(x, settings)
            ax.set_ylabel(f"selection {metric} (%)")
            ax.set_ylim(0, 100)
            ax.set_title(f"clean-subset {metric}")
            ax.grid(alpha=0.3, axis="y")
        _legend(fig, axes)
        fig.suptitle(title)
        return _save(fig, stem)
