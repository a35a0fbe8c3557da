"""Reports over result records: paper-style tables, cost tables, leaderboards, plots and one static HTML page.

The page (index.html, and report.md in the same order) opens with a computed reading and the accuracy-versus-cost
plot of each (dataset, backbone), then the leaderboard, accuracy, cost and per-setting tables, then notes on how to
read them, warnings and failed runs. See docs/report.md.

Reads only `result.json` / `config.json` files (never the training code). Output layout under OUT:

    index.html                 everything on one page (plots inlined), sortable tables
    report.md                  the same in Markdown (plots linked)
    tables/<dataset>__<backbone>.{md,tex,csv}         accuracy, one table per (dataset, backbone)
    tables/<dataset>__<backbone>-cost.{md,tex,csv}    cost beside it
    leaderboard.md, leaderboard.csv                   rankings per setting and overall
    plots/<dataset>__<backbone>-{acc-vs-time,acc-vs-rate,selection}.{png,svg}
    plots/<dataset>__<backbone>-acc-vs-time-narrow.{png,svg}   the same, one panel across (the page on phones)
    accuracy.csv, cost.csv, runs.csv, failures.csv    all tables' rows, every run, the runs without a result
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lnlbench.errors import ConfigError
from lnlbench.config import SCHEMA
from lnlbench.report import aggregate, html, leaderboard, plots, summary, tables
from lnlbench.report.colors import row_styles
from lnlbench.report.records import scan
from lnlbench.report.tables import plural
from lnlbench.report.reference import attach_reference, read_reference

__all__ = ["ReportSummary", "build_report"]

PROBLEM_COLUMNS = ["kind", "run_id", "method", "dataset", "backbone", "noise", "rate", "seed", "noise_seed", "error",
                   "path"]


@dataclass
class ReportSummary:
    """What a report found and wrote."""

    out: Path
    index: Path
    n_done: int
    n_failed: int
    n_unfinished: int
    n_skipped: int
    n_groups: int
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


def slug(*parts: str) -> str:
    """A file-name-safe name for a (dataset, backbone) table."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "__".join(parts)).strip("-")


def _write(path: Path, text: str, files: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    files.append(path)


def _write_csv(path: Path, df: pd.DataFrame, files: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, lineterminator="\n")
    files.append(path)


def build_report(
    dirs: list[Path],
    out: Path,
    *,
    reference: Path | None = None,
    accuracy: str = "final",
    requested_seeds: int | None = None,
    make_plots: bool = True,
) -> ReportSummary:
    """Read every record below `dirs` and write the report into `out`; ConfigError for unusable input."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if accuracy not in aggregate.ACCURACY_COLUMNS:
        raise ConfigError(f"accuracy {accuracy!r} is not one of final, best; pass --accuracy final or --accuracy best")
    if requested_seeds is not None and int(requested_seeds) < 1:
        raise ConfigError(f"--seeds {requested_seeds} must be at least 1 (the number of seeds each cell should have)")
    if not dirs:
        raise ConfigError("no result directory given; pass the --out directory of your runs")
    out = Path(out)
    warnings: list[str] = []
    ref = None
    if reference is not None:
        ref, ref_warnings = read_reference(Path(reference))
        warnings += ref_warnings
    found = scan([Path(d) for d in dirs])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create report directory {out} ({exc}); pass a writable --out") from None
    warnings = found.warnings + warnings
    runs = found.runs
    timings["read"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    files: list[Path] = []
    acc_label = aggregate.ACCURACY_LABELS[accuracy].split(" (")[0]
    sections: list[html.Section] = []
    all_acc, all_cost, all_lb = [], [], []
    n_groups = 0
    t_plots = 0.0
    if len(runs):
        groups = aggregate.group_runs(runs, accuracy)
        labels, split_warnings = aggregate.label_rows(groups)
        groups["label"] = labels
        warnings += split_warnings + aggregate.pooling_warnings(groups)
        groups, ref_warnings = attach_reference(groups, ref)
        warnings += ref_warnings
        groups["best"] = tables.best_flags(groups)
        cost = aggregate.cost_by_device(runs, groups)
        n_groups = len(groups)
        for (dataset, backbone), t in groups.groupby(aggregate.TABLE_KEYS, sort=True):
            name = slug(dataset, backbone)
            settings = aggregate.settings_of(t)
            requested = int(requested_seeds) if requested_seeds is not None else int(t["n"].max())
            acc_table = tables.accuracy_table(t, settings, accuracy, requested, requested_seeds is not None)
            c = cost[(cost["dataset"] == dataset) & (cost["backbone"] == backbone)]
            cost_table = tables.cost_table(c, settings)
            table_runs = runs[(runs["dataset"] == dataset) & (runs["backbone"] == backbone)]
            cost_notes, acc_notes = provenance_notes(table_runs)
            cost_table.notes += cost_notes
            acc_table.notes += acc_notes
            warnings += [f"{dataset} · {backbone}: {n}" for n in cost_notes + acc_notes]
            acc_table.notes.append(data_note(table_runs))
            per = leaderboard.rank_settings(t)
            overall = leaderboard.rank_overall(per)
            lb_tables = [
                leaderboard.overall_table(overall, len(settings), acc_label),
                leaderboard.setting_table(per, requested),
            ]
            acc_csv = tables.accuracy_csv(t, accuracy, requested)
            _write(out / "tables" / f"{name}.md", tables.to_markdown(acc_table), files)
            _write(out / "tables" / f"{name}.tex", tables.to_latex(acc_table, f"tab:{name}"), files)
            _write_csv(out / "tables" / f"{name}.csv", acc_csv, files)
            _write(out / "tables" / f"{name}-cost.md", tables.to_markdown(cost_table), files)
            _write(out / "tables" / f"{name}-cost.tex", tables.to_latex(cost_table, f"tab:{name}-cost"), files)
            _write_csv(out / "tables" / f"{name}-cost.csv", tables.cost_csv(c), files)
            all_acc.append(acc_csv)
            all_cost.append(tables.cost_csv(c))
            all_lb += [overall, per]
            figures: list[tuple[str, Path]] = []
            lead: tuple[str, Path, Path] | None = None  # caption, PNG, the one-column PNG for narrow screens
            if make_plots:
                tp = time.perf_counter()
                styles = row_styles(t)
                stem = out / "plots" / name
                title = f"{dataset} · {backbone}"
                made = plots.accuracy_vs_cost(t, c, settings, title, stem.with_name(f"{name}-acc-vs-time"), styles,
                                              acc_label)
                narrow = plots.accuracy_vs_cost(t, c, settings, title, stem.with_name(f"{name}-acc-vs-time-narrow"),
                                                styles, acc_label, max_cols=1)
                lead = (f"{title}: {acc_label} against wall-clock per run, one panel per setting. Up and to the left "
                        "is better; the Pareto front joins the rows that no other row on the same device beats in "
                        "both accuracy and time" + (" (fronts never span devices: marker fill tells them apart)."
                                                     if c["device"].nunique() > 1 else "."), made[0], narrow[0])
                files += made + narrow
                made = plots.accuracy_vs_rate(t, title, stem.with_name(f"{name}-acc-vs-rate"), styles, acc_label)
                figures.append((f"{title}: {acc_label} against noise rate, per method (± std over seeds)", made[0]))
                files += made
                made = plots.selection_quality(t, settings, title, stem.with_name(f"{name}-selection"), styles)
                if made:
                    figures.append((f"{title}: precision and recall of the selected clean subsets (one colour per "
                                    "method, hatching per network)", made[0]))
                    files += made
                t_plots += time.perf_counter() - tp
            section = html.Section(f"{dataset} · {backbone}", [lb_tables[0], acc_table, cost_table, lb_tables[1]],
                                   figures, reading=summary.reading(t, c, overall, settings), lead=lead)
            sections.append(section)
    timings["plots"] = t_plots
    timings["tables"] = time.perf_counter() - t1 - t_plots

    t2 = time.perf_counter()
    n_failed = sum(p["kind"] == "failed" for p in found.problems)
    n_unfinished = sum(p["kind"] == "unfinished" for p in found.problems)
    counts = (f"{plural(len(runs), 'finished run')} in {plural(n_groups, 'group')} (runs differing only in seed or "
              f"noise seed); {n_failed} failed, {n_unfinished} unfinished, {plural(len(found.skipped), 'file')} "
              "skipped" + (f"; {plural(len(warnings), 'warning')} below." if warnings else "."))
    summary_lines = [
        f"Accuracy shown: {aggregate.ACCURACY_LABELS[accuracy]}.",
        "Cells: mean ± sample standard deviation (ddof=1; a single run is marked (1 seed)) over runs that differ only in "
        "training seed or noise seed (a fresh draw of noisy labels of the same model and rate; cells pooling several "
        "draws are named in the warnings). Runs that differ in anything else (hyperparameters, epochs, resolution, "
        "weights, lnlbench version) are never averaged together. The CSV tables add each cell's 95% interval "
        "(t over seeds, mean ± t·s/√n); the per-setting leaderboard names the rows whose intervals overlap, which "
        "those seeds cannot order.",
        "Colours: one per method in every plot and every report (variants of a method share its colour and differ "
        "in marker, line style or hatching).",
    ]
    if all_acc:
        _write_csv(out / "accuracy.csv", pd.concat(all_acc, ignore_index=True), files)
        _write_csv(out / "cost.csv", pd.concat(all_cost, ignore_index=True), files)
        lb = pd.concat(all_lb, ignore_index=True).drop(columns=["setting_order", "devices_list", "hparams_full"],
                                                        errors="ignore")
        _write_csv(out / "leaderboard.csv", lb, files)
        _write(out / "leaderboard.md", "# Leaderboards\n\n" + "\n".join(
            tables.to_markdown(tb) for sec in sections for tb in (sec.tables[0], sec.tables[3])), files)
        _write_csv(out / "runs.csv", runs.drop(columns=["variant"]), files)
    problem_rows = [[("" if p[c] is None else str(p[c])) for c in PROBLEM_COLUMNS] for p in found.problems]
    _write_csv(out / "failures.csv", pd.DataFrame(problem_rows, columns=PROBLEM_COLUMNS), files)
    skipped_rows = [[s["path"], s["reason"]] for s in found.skipped]

    md = ["# lnlbench report", "", counts, ""]
    for sec in sections:
        md += [f"## {sec.title}", ""] + [f"- {line}" for line in sec.reading] + [""]
        if sec.lead is not None:
            md += [f"![accuracy against wall-clock, {sec.title}]({sec.lead[1].relative_to(out).as_posix()})", "",
                   f"*{sec.lead[0]}*", ""]
    for sec in sections:
        md += [f"## Details: {sec.title}", ""] + [tables.to_markdown(tb) for tb in sec.tables[:html.FIGURES_AFTER]]
        md += [f"![{cap}]({png.relative_to(out).as_posix()})\n" for cap, png in sec.figures]
        md += [tables.to_markdown(tb) for tb in sec.tables[html.FIGURES_AFTER:]]
    md += ["## How to read these numbers", ""] + [f"- {line}" for line in summary_lines] + [""]
    if warnings:
        md += [f"## Warnings ({len(warnings)})", ""] + [f"- {w}" for w in warnings] + [""]
    md += [f"## Failed and unfinished runs ({len(problem_rows)})", ""]
    if problem_rows:
        md.append(_md_list_table(PROBLEM_COLUMNS, problem_rows))
    else:
        md.append("None.\n")
    if skipped_rows:
        md += [f"## Skipped files ({len(skipped_rows)})", "", _md_list_table(["file", "reason"], skipped_rows)]
    _write(out / "report.md", "\n".join(md).rstrip("\n") + "\n", files)
    index = html.write_html(
        out,
        counts=counts,
        summary_lines=summary_lines,
        warnings=warnings,
        sections=sections,
        problems=problem_rows,
        problem_columns=PROBLEM_COLUMNS,
        skipped=skipped_rows,
    )
    files.append(index)
    timings["write"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    return ReportSummary(
        out=out,
        index=index,
        n_done=len(runs),
        n_failed=n_failed,
        n_unfinished=n_unfinished,
        n_skipped=len(found.skipped),
        n_groups=n_groups,
        warnings=warnings,
        files=files,
        timings=timings,
    )


def data_note(runs: pd.DataFrame) -> str:
    """Which data a table's runs trained on: training-set size and content fingerprint."""
    sizes = sorted({int(n) for n in runs["n_train"] if n == n})
    prints = sorted({fp[:12] for fp in runs["data_fingerprint"] if fp})
    size = ", ".join(f"{n:,}" for n in sizes) or "unknown"
    content = ", ".join(prints) if prints else "not recorded (schema-old records)"
    return f"training set: {size} images; data fingerprint {content}"


def provenance_notes(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Notes for one table's cost and accuracy sections: contention, devices, code versions, old schemas."""
    cost_notes: list[str] = []
    acc_notes: list[str] = []
    contended = runs["contended"].map(lambda v: "unknown" if v is None or v != v else ("yes" if v else "no"))
    kinds = set(contended)
    if "yes" in kinds and len(kinds) > 1:
        cost_notes.append(
            f"cost compares contended runs ({int((contended == 'yes').sum())}) with runs that were not or are not "
            "known to be: their wall-clock figures are not comparable (see `cost.contention` in each record)"
        )
    elif kinds == {"yes"}:
        cost_notes.append("every run here was contended: wall-clock figures are inflated by other work on the host")
    elif "unknown" in kinds and len(kinds) > 1:
        cost_notes.append(
            f"{_count_verb(int((contended == 'unknown').sum()), 'does', 'do')} not record contention (older records): "
            "their wall-clock may have been measured under load"
        )
    if runs["device"].nunique() > 1:
        cost_notes.append(
            f"runs on {runs['device'].nunique()} devices ({', '.join(sorted(runs['device'].unique()))}): compare "
            "costs within one device only"
        )
    threads = runs["cpu_threads"].dropna().unique()
    if len(threads) > 1:
        cost_notes.append(f"CPU runs with different thread counts ({', '.join(str(int(t)) for t in sorted(threads))})")
    codes = runs["code_sha256"].map(lambda v: v[:12] if v else "unknown")
    if codes.nunique() > 1:
        acc_notes.append(
            f"cells come from {codes.nunique()} different code versions (code hashes "
            f"{', '.join(sorted(codes.unique()))}): differences may be the code's, not the methods'"
        )
    dirty = runs["git_dirty"].map(lambda v: v is True)
    if dirty.any():
        acc_notes.append(f"{plural(int(dirty.sum()), 'run')} ran from a checkout with uncommitted changes (git dirty)")
    old = runs["schema"].map(lambda v: v is not None and v != SCHEMA)
    if old.any():
        n_old = int(old.sum())
        acc_notes.append(f"{_count_verb(n_old, 'is a schema-old record', 'are schema-old records')} "
                         "(data identified by name only)")
    return cost_notes, acc_notes


def _count_verb(n: int, singular: str, plural_verb: str) -> str:
    """'1 run does', '3 runs do'."""
    return f"{plural(n, 'run')} {singular if n == 1 else plural_verb}"


def _md_list_table(columns: list[str], rows: list[list[str]]) -> str:
    def cell(v: str) -> str:
        return v.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
