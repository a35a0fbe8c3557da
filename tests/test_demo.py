"""`lnlbench demo`: the main job, offline, on the embedded digits (here with the cheapest method only)."""

from __future__ import annotations

import json

from lnlbench.cli import main


def test_demo_runs_grid_prints_table_reading_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--method", "lp", "--cache-dir", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    assert code == 0
    records = [json.loads(p.read_text()) for p in out.glob("*/result.json")]
    assert len(records) == 2  # one noise setting x two seeds x one method
    assert all(r["status"] == "done" and r["dataset"] == "digits" for r in records)
    assert sorted(r["config"]["seed"] for r in records) == [0, 1]
    assert {r["noise"]["rate"] for r in records} == {0.5}
    # real ImageNet features separate digits well above chance (0.1) even with 50% symmetric noise
    assert min(r["metrics"]["test_acc"] for r in records) > 0.5
    assert "test_acc" in captured.out and "lp" in captured.out
    assert "Expected: about" in captured.err  # the duration up front
    assert "[1/2] lp sym 0.5 seed 0 (elapsed" in captured.err and "left)" in captured.err  # plain progress, no bar
    assert "\r" not in captured.err
    assert "Reading: At sym 50% noise, lp won" in captured.out and "Every method ran at its default budget." in captured.out
    assert (out / "report" / "index.html").exists()
