"""One static `index.html`: tables (sortable by a small inline script), leaderboards, plots inlined as base64 PNG,
failed/unfinished runs and warnings. No server, no network: nothing is loaded from anywhere."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from lnlbench.report.tables import Table

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:1400px;padding:0 1rem;
color:#1a1a1a;line-height:1.4}
h1{font-size:1.5rem;margin-bottom:.25rem}h2{font-size:1.25rem;margin-top:2.5rem;border-bottom:1px solid #ccc}
h3{font-size:1.05rem;margin-top:1.75rem}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}td.r,td:first-child{white-space:nowrap}
table.sortable th{cursor:pointer;user-select:none;background:#f4f4f4}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.best{font-weight:bold}.caption{font-size:.85rem;color:#444;max-width:100ch}
td details{min-width:12ch}td details summary{cursor:pointer;color:#245;white-space:nowrap}
td details div{max-width:60ch;white-space:normal;overflow-wrap:anywhere}
ul.reading{font-size:1rem;max-width:110ch;padding-left:1.2rem}ul.reading li{margin:.2rem 0}
.warn li{color:#7a4b00}figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figure.lead img{max-width:min(100%,1000px)}
figcaption{font-size:.85rem;color:#444;max-width:110ch}code{font-size:.85em}
.phone{display:none;font-size:.85rem;color:#444}nav.toc{font-size:.9rem}nav.toc a{margin-right:1rem;display:inline-block;white-space:nowrap}
.scroll table.sortable td{white-space:nowrap}td details div,.scroll table.list td{white-space:normal}
@media (max-width:600px){figure.lead img{width:100%}.phone{display:block}body{margin:.75rem auto;padding:0 .6rem}h1{font-size:1.25rem}
table{font-size:.78rem}th,td{padding:.2rem .4rem}ul.reading{font-size:.95rem}}
"""
# Click a header to sort by that column (again to reverse). Cells sort by their data-sort value when they have
# one (numbers numerically), else by their text; empty cells go last. Sets data-sortable-ready on <body> once set up.
SORT_JS = """
(function () {
  "use strict";
  function key(cell) {
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent.trim(); }
    if (v === "" || v === "\\u2013") { return null; }
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function compare(a, b) {
    if (typeof a === typeof b) { return a < b ? -1 : a > b ? 1 : 0; }
    return typeof a === "number" ? -1 : 1;
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, col) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var asc = th.getAttribute("aria-sort") !== "ascending";
        rows.sort(function (r1, r2) {
          var a = key(r1.cells[col]), b = key(r2.cells[col]);
          if (a === null || b === null) { return (a === null) - (b === null); }  // blanks last either way
          return asc ? compare(a, b) : -compare(a, b);
        });
        rows.forEach(function (r) { body.appendChild(r); });
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      });
    });
  });
  document.body.setAttribute("data-sortable-ready", String(tables.length));
})();
"""


@dataclass
class Section:
    """A part of the page about one (dataset, backbone)."""

    title: str
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, PNG path; an SVG lies beside it)
    reading: list[str] = field(default_factory=list)  # the computed summary that opens the page
    lead: tuple[str, Path, Path] | None = None  # the accuracy-versus-cost figure (caption, PNG, narrow PNG)


FOLD_AT = 40  # characters: a longer folded value shows this much until opened


def _cell_html(text: str, fold: str | None) -> str:
    """The cell's text, or where it has a long `fold`, its start with the whole value in a <details>."""
    if fold is None or len(fold) <= FOLD_AT:
        return escape(text)
    short = text[: FOLD_AT - 1].rstrip(", ") + "…"
    return f"<details><summary>{escape(short)}</summary><div>{escape(fold)}</div></details>"


def table_html(table: Table, table_id: str) -> str:
    """A sortable table with its title, caption and notes; long values folded into <details>."""
    head = "".join(
        f'<th class="{a}" scope="col">{escape(c)}</th>' for c, a in zip(table.columns, table.align)
    )
    body = []
    for row in table.rows:
        cells = []
        for cell, a in zip(row, table.align):
            cls = a + (" best" if cell.best else "")
            sort = "" if cell.sort is None else f' data-sort="{escape(str(cell.sort))}"'
            cells.append(f'<td class="{cls}"{sort}>{_cell_html(cell.text, cell.fold)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    notes = "".join(f'<p class="caption">{escape(n)}</p>' for n in table.notes)
    return (
        f'<h3>{escape(table.title)}</h3>\n<p class="caption">{escape(table.caption)}</p>\n'
        f'<div class="scroll"><table class="sortable" id="{escape(table_id)}"><thead><tr>{head}</tr></thead>\n'
        f"<tbody>{''.join(body)}</tbody></table></div>\n{notes}"
    )


FIGURES_AFTER = 2  # a section's other figures follow its leaderboard and accuracy table, before cost and ranking
NARROW_PX = 600  # screens up to this width get a figure's narrow version where it has one


def _data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def figure_html(caption: str, png: Path, out: Path, css_class: str = "", narrow: Path | None = None) -> str:
    """A figure with the PNG inlined (and its narrow version for phones) and a link to the SVG beside it."""
    svg = png.with_suffix(".svg").relative_to(out).as_posix()
    cls = f' class="{css_class}"' if css_class else ""
    img = f'<img src="{_data_uri(png)}" alt="{escape(caption)}">'
    if narrow is not None:
        img = f'<picture><source media="(max-width: {NARROW_PX}px)" srcset="{_data_uri(narrow)}">{img}</picture>'
    return (
        f'<figure{cls}>{img}'
        f'<figcaption>{escape(caption)} (<a href="{escape(svg)}">SVG</a>)</figcaption></figure>'
    )


def list_table(title: str, columns: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return (
        f"<h3>{escape(title)}</h3>\n"
        f'<div class="scroll"><table class="sortable list" id="{escape(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _anchor(title: str) -> str:
    return "details-" + "".join(ch if ch.isalnum() else "-" for ch in title).strip("-")


def write_html(
    out: Path,
    *,
    counts: str,
    summary_lines: list[str],
    warnings: list[str],
    sections: list[Section],
    problems: list[list[str]],
    problem_columns: list[str],
    skipped: list[list[str]],
) -> Path:
    """Write `out/index.html`: summaries and accuracy-versus-cost plots first, then the details of each section."""
    links = [f'<a href="#{_anchor(sec.title)}">details: {escape(sec.title)}</a>' for sec in sections]
    links += ['<a href="#reading">how to read</a>'] + (['<a href="#warnings">warnings</a>'] if warnings else [])
    links.append('<a href="#failed">failed runs</a>')
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>lnlbench report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>lnlbench report</h1>",
        f"<p>{escape(counts)}</p>",
        f'<nav class="toc">{"".join(links)}</nav>',
        '<p class="phone">Wide tables scroll sideways.</p>',
    ]
    for sec in sections:
        parts.append(f"<h2>{escape(sec.title)}</h2>")
        parts.append('<ul class="reading">' + "".join(f"<li>{escape(line)}</li>" for line in sec.reading) + "</ul>")
        if sec.lead is not None:
            parts.append(figure_html(sec.lead[0], sec.lead[1], out, "lead", narrow=sec.lead[2]))
    n = 0
    for sec in sections:
        parts.append(f'<h2 id="{_anchor(sec.title)}">Details: {escape(sec.title)}</h2>')
        for i, table in enumerate(sec.tables):
            n += 1
            parts.append(table_html(table, f"t{n}"))
            if i == FIGURES_AFTER - 1:
                parts += [figure_html(caption, png, out) for caption, png in sec.figures]
    parts.append('<h2 id="reading">How to read these numbers</h2>')
    parts.append("<ul>" + "".join(f"<li>{escape(line)}</li>" for line in summary_lines) + "</ul>")
    if warnings:
        parts.append(
            f'<h2 id="warnings">Warnings ({len(warnings)})</h2><ul class="warn">'
            + "".join(f"<li>{escape(w)}</li>" for w in warnings)
            + "</ul>"
        )
    parts.append(f'<h2 id="failed">Failed and unfinished runs ({len(problems)})</h2>')
    if problems:
        parts.append(list_table("runs without a usable result", problem_columns, problems, "failed-runs"))
    else:
        parts.append("<p>None.</p>")
    if skipped:
        parts.append(f'<h2 id="skipped">Skipped files ({len(skipped)})</h2>')
        parts.append(list_table("files that could not be used", ["file", "reason"], skipped, "skipped-files"))
    parts.append(f"<script>{SORT_JS}</script>")
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def add_nav_link(index: Path, href: str, text: str) -> None:
    """Add a link to the table of contents of a written `index.html` (e.g. to the merged-bundles leaderboard)."""
    page = index.read_text(encoding="utf-8")
    page = page.replace('<nav class="toc">', f'<nav class="toc"><a href="{escape(href)}">{escape(text)}</a>', 1)
    index.write_text(page, encoding="utf-8")
