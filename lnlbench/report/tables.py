"""Paper-style accuracy tables and cost tables: one table model, rendered as Markdown, LaTeX (booktabs) and CSV."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lnlbench.report import intervals
from lnlbench.report.aggregate import ACCURACY_LABELS, fmt_pct

DASH = "–"


@dataclass
class Cell:
    """Displayed text, the value a sortable table sorts by, and whether it is the best of its column."""

    text: str
    sort: float | str | None = None
    best: bool = False
    fold: str | None = None  # the whole value where `text` only names it: HTML shows it on demand (<details>)


@dataclass
class Table:
    title: str
    caption: str
    columns: list[str]
    rows: list[list[Cell]]
    align: list[str]  # "l" or "r" per column
    notes: list[str] = field(default_factory=list)


def _finite(x: object) -> bool:
    return isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(float(x))


def accuracy_cell(mean: float, std: float, n: int, requested: int) -> str:
    """'92.00 ± 2.00'; ' (n=2)' when fewer runs than requested; '80.00 (1 seed)' for one run, which has no spread."""
    text = fmt_pct(mean)
    if n > 1 and _finite(std):
        text += f" ± {fmt_pct(std)}"
    if n == 1:
        text += " (1 seed)"
    elif n < requested:
        text += f" (n={n})"
    return text


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 run', '3 runs' (`words` for irregular plurals)."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def accuracy_caption(dataset: str, backbone: str, accuracy: str, requested: int, requested_given: bool) -> str:
    """The accuracy table's caption; the (n=k) clause only where a cell can hold fewer runs than requested."""
    why = "requested with --seeds" if requested_given else "the most runs of any cell here"
    spread = ("mean ± sample standard deviation (ddof=1) over runs that differ only in seed" if requested > 1 or
              requested_given else "one run per cell (no spread over seeds)")
    short = f"; (n=k) marks cells with fewer than {plural(requested, 'run')} ({why})" if requested > 1 else ""
    return (f"{dataset} · {backbone}: {ACCURACY_LABELS[accuracy]} (%), {spread}; best per column in bold{short}; "
            "(1 seed) marks a cell whose spread is unknown. 95% intervals (t over seeds) are in the CSV.")


def best_flags(groups: pd.DataFrame) -> pd.Series:
    """True for the best mean (as displayed, 2 decimals in percent) of each table column holding more than one row;
    ties all win."""
    shown = (100 * groups["acc_mean"]).round(2)
    by_column = shown.groupby([groups["dataset"], groups["backbone"], groups["setting"]])
    return (shown == by_column.transform("max")) & (by_column.transform("size") > 1)


def accuracy_table(t: pd.DataFrame, settings: list[str], accuracy: str, requested: int, requested_given: bool) -> Table:
    """Rows: row labels; columns: settings (plus published and Δ where a reference number exists)."""
    dataset, backbone = t["dataset"].iloc[0], t["backbone"].iloc[0]
    with_ref = {s for s in settings if t.loc[t["setting"] == s, "published"].notna().any()}
    columns, align = ["method"], ["l"]
    for s in settings:
        columns.append(s)
        align.append("r")
        if s in with_ref:
            columns += [f"{s} published", f"{s} Δ"]
            align += ["r", "r"]
    by_cell = {(r.label, r.setting): r for r in t.itertuples()}
    labels = sorted(t["label"].unique(), key=lambda lab: (lab.split(" (")[0], lab))
    rows = []
    for lab in labels:
        row = [Cell(lab, lab)]
        for s in settings:
            r = by_cell.get((lab, s))
            if r is None:
                row.append(Cell(DASH, None))
            else:
                row.append(Cell(accuracy_cell(r.acc_mean, r.acc_std, r.n, requested), 100 * r.acc_mean, bool(r.best)))
            if s in with_ref:
                pub = r.published if r is not None else float("nan")
                diff = r.diff if r is not None else float("nan")
                row.append(Cell(f"{pub:.2f}" if _finite(pub) else DASH, pub if _finite(pub) else None))
                row.append(Cell(f"{diff:+.2f}" if _finite(diff) else DASH, diff if _finite(diff) else None))
        rows.append(row)
    notes = []
    sources = sorted({s for s in t["published_source"] if s})
    if sources:
        notes.append("published: " + "; ".join(sources) + ". Δ = ours − published, in percentage points.")
    return Table(
        title=f"{dataset} · {backbone}: accuracy",
        caption=accuracy_caption(dataset, backbone, accuracy, requested, requested_given),
        columns=columns,
        rows=rows,
        align=align,
        notes=notes,
    )


def accuracy_csv(t: pd.DataFrame, accuracy: str, requested: int) -> pd.DataFrame:
    """The accuracy table in long form: one line per (row, setting), percentages, the best flag."""
    out = pd.DataFrame(
        {
            "dataset": t["dataset"],
            "backbone": t["backbone"],
            "row": t["label"],
            "method": t["method"],
            "setting": t["setting"],
            "noise": t["noise"],
            "rate": t["rate"],
            "accuracy": accuracy,
            "acc_mean_pct": (100 * t["acc_mean"]).round(4),
            "acc_std_pct": (100 * t["acc_std"]).round(4),
            "ci95_low_pct": (100 * t["ci_low"]).round(4),
            "ci95_high_pct": (100 * t["ci_high"]).round(4),
            "interval": [intervals.METHOD if n > 1 else "none: 1 seed" for n in t["n"]],
            "n": t["n"],
            "n_requested": requested,
            "noise_draws": [len(v) for v in t["noise_seeds"]],
            "best": t["best"].astype(bool),
            "published": t["published"],
            "published_source": t["published_source"],
            "diff_pct": t["diff"].round(4),
            "lnlbench": t["version"],
            "hparams_hash": t["hparams_hash"],
            "seeds": [" ".join(map(str, v)) for v in t["seeds"]],
            "group_key": t["group_key"],
        }
    )
    order = sorted(range(len(out)), key=lambda i: (out["row"].iloc[i], t["setting_order"].iloc[i]))
    return out.iloc[order].reset_index(drop=True)


def _seconds(x: float) -> Cell:
    return Cell(f"{x:.1f}" if _finite(x) else DASH, x if _finite(x) else None)


def cost_table(c: pd.DataFrame, settings: list[str]) -> Table:
    """Cost per (row, setting, device): wall-clock, GPU-hours on GPUs, mean time per phase, peak memory."""
    dataset, backbone = c["dataset"].iloc[0], c["backbone"].iloc[0]
    phase_cols = [col for col in c.columns if col.startswith("phase.") and c[col].notna().any()]
    columns = ["method", "setting", "device", "runs", "wall-clock s/run", "GPU-h/run", "GPU-h total",
               "peak mem MB (max)"] + [f"{col[6:]} s" for col in phase_cols]
    align = ["l", "l", "l"] + ["r"] * (len(columns) - 3)
    order = {s: i for i, s in enumerate(settings)}
    c = c.assign(_o=c["setting"].map(order)).sort_values(["label", "_o", "device"], kind="stable")
    mixed = c.groupby(["label", "setting"])["device"].transform("nunique") > 1
    rows = []
    for (_, r), is_mixed in zip(c.iterrows(), mixed):
        gpu = bool(r["is_gpu"])
        rows.append(
            [
                Cell(r["label"], r["label"]),
                Cell(r["setting"], order.get(r["setting"], 0)),
                Cell(r["device"] + (" †" if is_mixed else ""), r["device"]),
                Cell(str(int(r["n"])), int(r["n"])),
                _seconds(r["wall_mean"]),
                Cell(f"{r['gpu_hours_mean']:.3f}", r["gpu_hours_mean"]) if gpu else Cell(DASH),
                Cell(f"{r['gpu_hours_total']:.3f}", r["gpu_hours_total"]) if gpu else Cell(DASH),
                Cell(f"{r['peak_mem_mb_max']:.0f}" if _finite(r["peak_mem_mb_max"]) else DASH, r["peak_mem_mb_max"]),
            ]
            + [_seconds(r[col]) for col in phase_cols]
        )
    notes = []
    if mixed.any():
        notes.append("† runs of this method and setting ran on more than one device: one row per device, never pooled.")
    return Table(
        title=f"{dataset} · {backbone}: cost",
        caption=(
            f"{dataset} · {backbone}: cost per run, one row per device (means over runs; GPU-hours = device count × "
            "hours, on GPUs only; peak memory is the largest of the runs' own peaks, resident set on CPU and "
            "allocated tensors on CUDA, though records written before lnlbench measured it per run hold the worker "
            "process's running maximum; phases are mean seconds per run)."
        ),
        columns=columns,
        rows=rows,
        align=align,
        notes=notes,
    )


def cost_csv(c: pd.DataFrame) -> pd.DataFrame:
    phase_cols = [col for col in c.columns if col.startswith("phase.")]
    cols = ["dataset", "backbone", "label", "setting", "device", "n", "wall_mean", "gpu_hours_mean",
            "gpu_hours_total", "peak_mem_mb_max", "images_seen_mean"] + phase_cols
    out = c.sort_values(["label", "setting_order", "device"], kind="stable")[cols]
    return out.rename(columns={"label": "row", "wall_mean": "wall_clock_s_mean", "n": "runs"}).reset_index(drop=True)


# -- renderers ----------------------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table, heading: str = "###") -> str:
    lines = [f"{heading} {table.title}", "", table.caption, ""]
    lines.append("| " + " | ".join(_md_escape(c) for c in table.columns) + " |")
    lines.append("| " + " | ".join("---:" if a == "r" else "---" for a in table.align) + " |")
    for row in table.rows:
        cells = [f"**{_md_escape(c.text)}**" if c.best else _md_escape(c.text) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    if table.notes:
        lines.append("")
        lines += [f"{note}" for note in table.notes]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": "-",
    "–": "--",
    "·": r"$\cdot$",
    "×": r"$\times$",
    "†": r"$^\dagger$",
    "…": r"\dots{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table, label: str) -> str:
    """A booktabs `table` environment, ready to paste (needs \\usepackage{booktabs})."""
    spec = "".join("r" if a == "r" else "l" for a in table.align)
    lines = [
        "% needs \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{latex_escape(table.caption)}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(c) for c in table.columns) + " \\\\",
        "\\midrule",
    ]
    for row in table.rows:
        cells = [f"\\textbf{{{latex_escape(c.text)}}}" if c.best else latex_escape(c.text) for c in row]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    for note in table.notes:
        lines.append(f"\\par\\smallskip{{\\footnotesize {latex_escape(note)}}}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"
