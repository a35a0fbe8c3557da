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
h1{font-size:1.5rem}h2{font-size:1.25rem;margin-top:2.5rem;border-bottom:1px solid #ccc}h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}td.r,td:first-child{white-space:nowrap}
table.sortable th{cursor:pointer;user-select:none;background:#f4f4f4}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.best{font-weight:bold}.caption{font-size:.85rem;color:#444;max-width:100ch}
.warn li{color:#7a4b00}figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85rem;color:#444}code{font-size:.85em}
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


def table_html(table: Table, table_id: str) -> str:
    head = "".join(
        f'<th class="{a}" scope="col">{escape(c)}</th>' for c, a in zip(table.columns, table.align)
    )
    body = []
    for row in table.rows:
        cells = []
        for cell, a in zip(row, table.align):
            cls = a + (" best" if cell.best else "")
            sort = "" if cell.sort is None else f' data-sort="{escape(str(cell.sort))}"'
            cells.append(f'<td class="{cls}"{sort}>{escape(cell.text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    notes = "".join(f'<p class="caption">{escape(n)}</p>' for n in table.notes)
    return (
        f'<h3>{escape(table.title)}</h3>\n<p class="caption">{escape(table.caption)}</p>\n'
        f'<table class="sortable" id="{escape(table_id)}"><thead><tr>{head}</tr></thead>\n'
        f"<tbody>{''.join(body)}</tbody></table>\n{notes}"
    )


def figure_html(caption: str, png: Path, out: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    svg = png.with_suffix(".svg").relative_to(out).as_posix()
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
        f'<figcaption>{escape(caption)} (<a href="{escape(svg)}">SVG</a>)</figcaption></figure>'
    )


def list_table(title: str, columns: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return (
        f"<h3>{escape(title)}</h3>\n"
        f'<table class="sortable" id="{escape(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def write_html(
    out: Path,
    *,
    summary_lines: list[str],
    warnings: list[str],
    sections: list[Section],
    problems: list[list[str]],
    problem_columns: list[str],
    skipped: list[list[str]],
) -> Path:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>lnlbench report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>lnlbench report</h1>",
        "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in summary_lines) + "</ul>",
    ]
    if warnings:
        parts.append(
            f'<h2 id="warnings">Warnings ({len(warnings)})</h2><ul class="warn">'
            + "".join(f"<li>{escape(w)}</li>" for w in warnings)
            + "</ul>"
        )
    n = 0
    for sec in sections:
        parts.append(f"<h2>{escape(sec.title)}</h2>")
        for table in sec.tables:
            n += 1
            parts.append(table_html(table, f"t{n}"))
        for caption, png in sec.figures:
            parts.append(figure_html(caption, png, out))
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
