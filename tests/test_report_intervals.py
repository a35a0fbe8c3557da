"""Seeds and intervals in the report: t intervals in the CSV, one-seed cells marked, ties by overlapping intervals."""

from __future__ import annotations

import hashlib
import json
import math

import pandas as pd
import pytest

from lnlbench.report import build_report
from lnlbench.report.intervals import t_interval, ties
from test_report import TABLE, make_record, write_run


def test_t_interval_matches_the_textbook_value():
    # n = 3, s = 1: t(0.975, 2) = 4.3027, half-width 4.3027 / √3 = 2.4841
    low, high = t_interval(0.5, 1.0, 3)
    assert (low, high) == pytest.approx((0.5 - 2.4841, 0.5 + 2.4841), abs=1e-4)
    assert all(math.isnan(x) for x in t_interval(0.5, float("nan"), 1))


def test_ties_are_the_rows_whose_intervals_overlap():
    ranked = pd.DataFrame({"ci_low": [0.90, 0.85, 0.50, float("nan")], "ci_high": [0.95, 0.91, 0.60, float("nan")]})
    assert ties(ranked) == [[1], [0], [], []]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    accs = {"turn": [0.90, 0.91, 0.92], "fft": [0.80, 0.81, 0.82], "lp": [0.895, 0.90, 0.93], "coteaching": [0.70]}
    for method, values in accs.items():
        for seed, acc in enumerate(values):
            write_run(root, make_record(method, "sym", 0.5, seed, acc))
    out = tmp_path_factory.mktemp("out")
    build_report([root], out, make_plots=False)
    return out


def test_csv_holds_the_interval_and_says_when_there_is_none(report):
    csv = pd.read_csv(report / "tables" / f"{TABLE.split('/')[1]}.csv").set_index("row")
    # turn: mean 91, s = 1, n = 3 -> 91 ± 2.48
    assert csv.loc["turn", "ci95_low_pct"] == pytest.approx(91 - 2.4841, abs=1e-3)
    assert csv.loc["turn", "ci95_high_pct"] == pytest.approx(91 + 2.4841, abs=1e-3)
    assert csv.loc["turn", "n"] == 3 and csv.loc["turn", "interval"].startswith("t, 95%")
    assert math.isnan(csv.loc["coteaching", "ci95_low_pct"]) and csv.loc["coteaching", "interval"] == "none: 1 seed"


def test_table_marks_the_one_seed_cell(report):
    md = (report / "tables" / f"{TABLE.split('/')[1]}.md").read_text()
    assert "| coteaching | 70.00 (1 seed) |" in md
    assert "| turn | **91.00 ± 1.00** |" in md


def test_leaderboard_marks_overlapping_ranks_as_ties(report):
    lb = pd.read_csv(report / "leaderboard.csv", keep_default_na=False)
    per = lb[lb["scope"] == "sym 50%"].set_index("row")
    # turn 91 ± 2.48 and lp 90.83 ± 4.62 overlap; fft 81 ± 2.48 is clear of both; coteaching has one seed
    assert per.loc["turn", "tied_with"] == "2" and per.loc["lp", "tied_with"] == "1"
    assert per.loc["fft", "tied_with"] == "none"
    assert per.loc["coteaching", "tied_with"] == "unknown (1 seed)"


def test_reading_says_which_lead_the_intervals_support(tmp_path):
    root = tmp_path / "runs"
    for seed, (a, b) in enumerate([(0.90, 0.80), (0.91, 0.81), (0.92, 0.82)]):
        write_run(root, make_record("turn", "sym", 0.5, seed, a))
        write_run(root, make_record("fft", "sym", 0.5, seed, b))
    build_report([root], tmp_path / "out", make_plots=False)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "sym 50%: turn over fft supported (88.52–93.48 against 78.52–83.48)" in md


def _cifar_n_record(method: str, variant: str, seed: int, acc: float, realized: float) -> dict:
    rec = make_record(method, "cifar10n", 0.0, seed, acc)
    rec["config"]["noise_options"] = {"variant": variant, "file_sha256": "cd" * 32}
    rec["noise"] = {**rec.get("noise", {}), "realized_rate": realized, "labels_sha256": variant * 8}
    rec["run_id"] = hashlib.sha256(json.dumps(rec["config"], sort_keys=True).encode()).hexdigest()[:16]
    return rec


def test_human_label_sets_are_settings_of_their_own(tmp_path):
    root = tmp_path / "runs"
    for seed in range(2):
        write_run(root, _cifar_n_record("turn", "worse", seed, 0.60 + seed / 100, 0.4178))
        write_run(root, _cifar_n_record("turn", "aggre", seed, 0.80 + seed / 100, 0.0901))
    build_report([root], tmp_path / "out")
    md = (tmp_path / "out" / f"{TABLE}.md").read_text()
    assert "| method | cifar10n aggre | cifar10n worse |" in md  # not two columns both called "cifar10n 0%"
    csv = pd.read_csv(tmp_path / "out" / "accuracy.csv")
    assert sorted(csv["setting"]) == ["cifar10n aggre", "cifar10n worse"]
