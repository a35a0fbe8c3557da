"""The result record is defined once (lnlbench/record.py): the shipped JSON Schema is the generated one, every
published record follows it, and the report names the file and field of a record that does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnlbench.record import SCHEMA_FILE, ResultRecord, RecordError, schema_text, validate
from lnlbench.report import build_report
from lnlbench.harness import execute_run, resolve_config

PUBLISHED = Path(__file__).resolve().parents[1] / "results"


def test_the_shipped_schema_file_is_the_generated_one():
    assert SCHEMA_FILE.read_text() == schema_text(), "regenerate: python -c 'from lnlbench.record import *; ...'"


def test_every_published_record_follows_the_schema():
    records = sorted(PUBLISHED.rglob("result.json"))
    assert records
    for path in records:
        assert validate(json.loads(path.read_text())) == [], path


def test_a_fresh_record_round_trips_through_the_record_type(tmp_path):
    config = resolve_config(dataset="digits", noise="sym", rate=0.4, method="lp", backbone="test_efficientnet",
                            weights="random", image_size=8, hparams={"epochs": 1})
    rec = execute_run(config, tmp_path / "out", cache_dir=tmp_path / "cache", verbose=False)
    assert rec["status"] == "done" and validate(rec) == []
    assert ResultRecord.from_json(rec).to_json() == rec


def test_a_record_missing_a_field_names_it():
    with pytest.raises(RecordError, match=r"record\.cost\.wall_clock_s: missing"):
        ResultRecord.from_json({"schema": 2, "run_id": "x", "status": "failed", "error": "e", "method": "lp",
                                "config": {}, "backbone": {"name": "b", "weights": "w"},
                                "cost": {"device": "cpu"}})


def test_the_report_skips_a_malformed_record_naming_file_and_field(tmp_path):
    config = resolve_config(dataset="digits", noise="sym", rate=0.4, method="lp", backbone="test_efficientnet",
                            weights="random", image_size=8, hparams={"epochs": 1})
    rec = execute_run(config, tmp_path / "runs", cache_dir=tmp_path / "cache", verbose=False)
    bad = dict(rec, run_id="bad0000000000000", metrics={**rec["metrics"], "test_acc": "0.9"})
    (tmp_path / "runs" / "bad0000000000000").mkdir()
    (tmp_path / "runs" / "bad0000000000000" / "result.json").write_text(json.dumps(bad))
    summary = build_report([tmp_path / "runs"], tmp_path / "report", make_plots=False)
    assert summary.n_done == 1 and summary.n_skipped == 1
    (warning,) = [w for w in summary.warnings if "bad0000000000000" in w]
    assert "record.metrics.test_acc" in warning and "is not of type number" in warning
