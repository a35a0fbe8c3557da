"""The report page people read (issue 14, item 6): plot and computed reading first, one colour per method, legends
that explain every mark, long values folded, readable at phone width."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from lnlbench.report import build_report
from lnlbench.report.colors import BUILTIN_METHODS, method_color, row_styles
from test_report import FROZEN, TABLE, _chromium, make_record, needs_chromium, write_run

PLOTS = ("acc-vs-time", "acc-vs-rate", "selection")
WALL = {"lp": 20.0, "turn": 100.0, "fft": 300.0}  # seconds of seed 0; each further seed takes 10 s more


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """The frozen set of tests/test_report.py, reported with plots."""
    root = tmp_path_factory.mktemp("frozen") / "runs"
    for (method, noise, rate), accs in FROZEN.items():
        for seed, acc in enumerate(accs):
            sel = (0.9, 0.8) if method == "turn" else None
            write_run(root, make_record(method, noise, rate, seed, acc, wall=WALL[method] + 10 * seed, selection=sel))
    out = tmp_path_factory.mktemp("page")
    build_report([root], out, requested_seeds=3)
    return out


def _svg(out: Path, kind: str) -> str:
    return (out / "plots" / f"{TABLE.split('/')[1]}-{kind}.svg").read_text()


def test_page_opens_with_the_computed_reading_and_the_accuracy_vs_cost_plot(page):
    html = (page / "index.html").read_text()
    body = html[html.index("<body>"):]
    assert body.index('<ul class="reading">') < body.index("<figure") < body.index("<table")
    assert body.index("<figure") < body.index("How to read these numbers") < body.index("Failed and unfinished")
    # turn: (96 + 91 + 90) / 3 = 92.33% at (110 + 105 + 110) / 3 = 108.3 s; lp, the cheapest: (92 + 82 + 86) / 3 =
    # 86.67% at 30 s, 108.3 / 30 = 3.6 times less; fronts (time, accuracy): sym 20% lp (30, 92), turn (110, 96),
    # fft (310, 94) behind; sym 50% lp, turn, fft (305, 72) behind; asym 40% lp, turn, fft (310, 93) all on it
    assert "Highest mean accuracy over all 3 settings: turn, 92.33% at 108 s per run" in body
    assert "the cheapest, lp, reaches 86.67% in 30 s (3.6× less time)" in body
    assert "Most accurate per setting: sym 20%: turn, 96.00%; sym 50%: turn, 91.00%; asym 40%: fft, 93.00%." in body
    assert "On the accuracy-versus-cost front in every setting they ran: lp, turn." in body
    # t intervals, mean ± t(0.975, n-1)·s/√n: sym 20% turn 96 ± 4.303·1/√3 = 93.52–98.48, fft 94 ± 4.303 = 89.70–98.30
    assert ("Is the most accurate row ahead of the next, by 95% intervals over seeds (t)? sym 20%: turn over fft not "
            "supported (93.52–98.48 and 89.70–98.30 overlap)") in body
    md = (page / "report.md").read_text()
    first_table = md.index("\n| ")
    assert md.index("acc-vs-time.png") < first_table and md.index("Highest mean accuracy") < first_table


def test_one_colour_per_method_in_every_plot_and_every_report(page, tmp_path):
    turn = method_color("turn")
    for kind in PLOTS:
        assert turn in _svg(page, kind), f"turn is not drawn in its colour {turn} in the {kind} plot"
    root = tmp_path / "runs"  # a report with turn alone: same colour, though it is now the only method
    write_run(root, make_record("turn", "sym", 0.2, 0, 0.9, selection=(0.9, 0.8)))
    build_report([root], tmp_path / "out")
    for kind in PLOTS:
        assert turn in _svg(tmp_path / "out", kind)
    colors = [method_color(m) for m in BUILTIN_METHODS]
    assert len(set(colors)) == len(colors)
    assert method_color("someone_elses_method") == method_color("someone_elses_method") not in colors[:1]


def test_variants_of_a_method_share_its_colour_and_differ_in_marker():
    import pandas as pd

    groups = pd.DataFrame({"method": ["lp", "lp", "fft"], "label": ["lp (lr=0.1)", "lp (lr=0.01)", "fft"]})
    styles = row_styles(groups)
    assert styles["lp (lr=0.1)"].color == styles["lp (lr=0.01)"].color == method_color("lp")
    assert styles["lp (lr=0.1)"].marker != styles["lp (lr=0.01)"].marker
    assert styles["fft"].color == method_color("fft")


def test_legend_explains_a_single_point_front_and_contended_runs(page, tmp_path):
    legend = _svg(page, "acc-vs-time")
    assert "Pareto front" in legend
    assert "one-point front" not in legend and "contended" not in legend  # only the marks a plot holds
    root = tmp_path / "runs"
    write_run(root, make_record("lp", "sym", 0.2, 0, 0.95, wall=10.0))  # fastest and most accurate: front of one
    slow = make_record("fft", "sym", 0.2, 0, 0.90, wall=300.0)
    slow["cost"]["contended"] = True
    write_run(root, slow)
    build_report([root], tmp_path / "out")
    legend = _svg(tmp_path / "out", "acc-vs-time")
    assert "one-point front (fastest = most accurate)" in legend
    assert "contended, wall-clock inflated" in legend


def test_long_hyperparameter_lists_are_folded_in_the_page(tmp_path):
    hparams = {f"option_{i:02d}": i / 10 for i in range(12)}
    root = tmp_path / "runs"
    write_run(root, make_record("lp", "sym", 0.2, 0, 0.9, hparams=hparams))
    build_report([root], tmp_path / "out", make_plots=False)
    html = (tmp_path / "out" / "index.html").read_text()
    folded = re.search(r"<details><summary>(.*?)</summary><div>(.*?)</div></details>", html)
    assert folded, "no folded cell"
    assert folded.group(1).endswith("…") and "option_11=1.1" in folded.group(2)


def _scroll_width_at(page: Path, width: int, profile: Path) -> tuple[int, int]:
    """(scroll width, viewport width) of `page` in an iframe `width` CSS pixels wide: headless Chromium does not lay
    a window out narrower than 500 px, an iframe it does."""
    wrapper = page.with_name("phone.html")
    wrapper.write_text(
        f'<!DOCTYPE html><html><body><iframe id="f" style="width:{width}px;height:900px;border:0" '
        f'src="{page.name}"></iframe><script>document.getElementById("f").addEventListener("load", function () {{'
        "var d = this.contentDocument.documentElement;"
        "document.body.setAttribute('data-widths', d.scrollWidth + '/' + d.clientWidth); });</script></body></html>",
        encoding="utf-8")
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           "--allow-file-access-from-files", f"--user-data-dir={profile}", "--window-size=1000,1000", "--dump-dom",
           wrapper.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'data-widths="(\d+)/(\d+)"', proc.stdout)
    assert found, "the page did not load in the iframe"
    return int(found.group(1)), int(found.group(2))


@needs_chromium
def test_page_at_phone_width_scrolls_tables_not_the_page(page, tmp_path):
    width = 400
    scroll, viewport = _scroll_width_at(page / "index.html", width, tmp_path / "profile")
    assert viewport == width
    assert scroll <= width, f"the page is {scroll} px wide at {width} px: something does not wrap or scroll"
