"""`lnlbench demo`: the main job, offline, on the embedded digits (here with the cheapest method only)."""

from __future__ import annotations

import json

from lnlbench.cli import main


def test_demo_runs_grid_prints_table_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--method", "lp", "--cache-dir", str(tmp_path / "cache")])
    printed = capsys.readouterr().out
    assert code == 0
    records = [json.loads(p.read_text()) for p in out.glob("*/result.json")]
    assert len(records) == 2  # two noise settings x one method
    assert all(r["status"] == "done" and r["dataset"] == "digits" for r in records)
    rates = sorted(r["noise"]["rate"] for r in records)
    assert rates == [0.2, 0.5]
    # real ImageNet features separate digits well above chance (0.1) even with 50% symmetric noise
    assert min(r["metrics"]["test_acc"] for r in records) > 0.5
    assert "test_acc" in printed and "lp" in printed
    assert (out / "report" / "index.html").exists()
