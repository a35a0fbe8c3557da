"""Records you can vouch for (issue 10): content-addressed run ids, cost charged by work, contention, code provenance,
thread counts that are never pooled, and one execution path. Each test fails on the code before that issue."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lnlbench import contention, engine
from lnlbench.execution import execute
from lnlbench.plugin_manager import method_registry
from lnlbench.report import build_report
from lnlbench.harness import execute_run, resolve_config
from lnlbench.config import LOCAL_PATH_FIELDS, SCHEMA, RunConfig
from test_report import make_record, write_run

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MINI = SHARED / "cifar10-mini"
needs_mini = pytest.mark.skipif(not (MINI / "cifar-10-batches-py").is_dir(), reason=f"no CIFAR-10 subset at {MINI}")
TINY = dict(dataset="digits", noise="sym", rate=0.4, backbone="test_efficientnet", weights="random", image_size=8)


def cifar(root: Path, cache: Path, **kw) -> RunConfig:
    return resolve_config(dataset="cifar10", noise="sym", rate=0.5, method="lp", image_size=32, data_root=str(root),
                          cache_dir=cache, **kw)


# -- finding 1: run ids collide across different data ---------------------------------------------------------------
@needs_mini
def test_run_id_names_the_data_content_not_its_name_or_path(tmp_path):
    cache = tmp_path / "cache"
    mini = cifar(MINI, cache)
    copy = tmp_path / "elsewhere" / "mini"
    shutil.copytree(MINI, copy)
    assert cifar(copy, cache).run_id == mini.run_id  # the same bytes elsewhere: the same run
    batch = copy / "cifar-10-batches-py" / "data_batch_1"
    with open(batch, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    d["labels"][0] = (d["labels"][0] + 1) % 10  # one training label changed
    with open(batch, "wb") as f:
        pickle.dump(d, f)
    changed = cifar(copy, cache)
    assert changed.run_id != mini.run_id and changed.data_fingerprint != mini.data_fingerprint


@needs_mini
@pytest.mark.slow
def test_full_cifar10_and_the_mini_subset_get_different_ids(tmp_path):
    """The acceptance check: a full CIFAR-10 built with build_cifar10.py is not the mini set (it was: 97cb70cf...)."""
    subprocess.run([sys.executable, str(SHARED / "build_cifar10.py"), str(tmp_path / "full")], check=True,
                   capture_output=True)
    cache = tmp_path / "cache"
    assert cifar(tmp_path / "full", cache).run_id != cifar(MINI, cache).run_id


def test_running_on_changed_data_is_refused(tmp_path, monkeypatch):
    config = resolve_config(method="lp", hparams={"epochs": 1}, **TINY)
    stale = dataclasses.replace(config, data_fingerprint="0" * 64)
    record = execute_run(stale, tmp_path / "out", cache_dir=tmp_path / "cache", verbose=False)
    assert record["status"] == "failed" and "not the data this run was configured for" in record["error"]


# -- finding 2: weight files identified by their file name ----------------------------------------------------------
def test_weights_enter_the_id_by_content(tmp_path):
    a, b, moved = tmp_path / "a" / "model.pth", tmp_path / "b" / "model.pth", tmp_path / "c" / "renamed.pth"
    for path, value in ((a, 1.0), (b, 2.0)):
        path.parent.mkdir()
        torch.save({"w": torch.full((2,), value)}, path)
    moved.parent.mkdir()
    shutil.copy(a, moved)
    ids = {p: resolve_config(method="lp", **{**TINY, "weights": str(p)}).run_id for p in (a, b, moved)}
    assert ids[a] != ids[b]  # same file name, different bytes
    assert ids[a] == ids[moved]  # same bytes, another path and name


# -- finding 3: every field of the resolved configuration reaches the id ------------------------------------------
def _changed(value):
    """Another value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 + 0.013
    if isinstance(value, str):
        return value + "-other"
    if value is None:
        return "f" * 64
    raise TypeError(type(value))


def _hparam_variants(method: str, hparams: dict):
    """One changed value per hyperparameter, valid for the method's declaration (another choice, value in bounds)."""
    space = method_registry().get(method).hparam_space
    for name, value in hparams.items():
        hp = space[name]
        if hp.choices:
            yield name, next(c for c in hp.choices if c != value)
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            yield name, _changed(value)
        else:
            new = value + 1 if isinstance(value, int) else value * 0.9 if value else 0.013
            if hp.high is not None and new > hp.high:
                new = type(value)(value - 1) if isinstance(value, int) else value * 0.9
            yield name, new


def test_every_field_of_the_resolved_config_changes_the_id():
    """Enumerated from RunConfig itself and from every registered method's hyperparameters, so a field added later
    is covered without editing this test; local paths (LOCAL_PATH_FIELDS) must not change it."""
    for method in method_registry().names():
        base = resolve_config(method=method, **TINY)
        base = dataclasses.replace(base, dataset_options={"subset": 3}, noise_options={"asym_map": {"0": 1}})
        for f in dataclasses.fields(RunConfig):
            value = getattr(base, f.name)
            if f.name == "hparams":
                for name, new in _hparam_variants(method, value):
                    other = dataclasses.replace(base, hparams={**value, name: new})
                    assert other.run_id != base.run_id, f"{method}: hyperparameter {name} does not reach the id"
                continue
            if isinstance(value, dict):
                variants = [{**value, "extra": 1}] + [{**value, k: _changed(v) if not isinstance(v, dict) else {}}
                                                      for k, v in value.items()]
            else:
                variants = [_changed(value)]
            for new in variants:
                other = dataclasses.replace(base, **{f.name: new})
                if f.name in LOCAL_PATH_FIELDS:
                    assert other.run_id == base.run_id, f"local path field {f.name} changes the id"
                else:
                    assert other.run_id != base.run_id, f"{method}: field {f.name}={new!r} does not reach the id"
        # a weight file is named by its content: its path stays out
        on_disk = dataclasses.replace(base, weights="/a/model.pth", weights_sha256="1" * 64)
        assert dataclasses.replace(on_disk, weights="/b/other.pth").run_id == on_disk.run_id
        # path-valued dataset options stay out
        assert dataclasses.replace(base, dataset_options={"subset": 3, "cache_dir": "/x"}).run_id == base.run_id


# -- finding 4: cost depends on sweep order -----------------------------------------------------------------------
def _features_cost(record: dict) -> float:
    return record["cost"]["phases"]["features"]


def test_feature_extraction_is_charged_whether_or_not_the_cache_had_it(tmp_path):
    cache = tmp_path / "cache"
    lp = resolve_config(method="lp", hparams={"epochs": 1}, **TINY)
    turn = resolve_config(method="turn", hparams={"lp_epochs": 1, "ft_epochs": 1}, **TINY)
    first = execute_run(lp, tmp_path / "a", cache_dir=cache, verbose=False)  # fills the cache
    warm = execute_run(turn, tmp_path / "b", cache_dir=cache, verbose=False)  # reads it
    cold = execute_run(turn, tmp_path / "c", cache_dir=tmp_path / "empty", verbose=False)  # extracts itself
    assert first["cost"]["features"]["train"]["measured_now"] is True
    assert warm["cost"]["features"]["train"]["measured_now"] is False
    assert cold["cost"]["features"]["train"]["measured_now"] is True
    # the warm run is charged the extraction that filled the cache: exactly the stored figure, per split
    for split in ("train", "test"):
        assert warm["cost"]["features"][split]["seconds"] == first["cost"]["features"][split]["seconds"]
    stored = sum(first["cost"]["features"][s]["seconds"] for s in ("train", "test"))
    assert _features_cost(warm) >= stored
    assert _features_cost(warm) - stored < 0.05 + 0.5 * stored  # the stored figure, not the measured read
    assert warm["cost"]["phases_measured"]["features"] < _features_cost(warm)
    assert any("feature cache" in c["source"] for c in warm["cost"]["charges"])
    assert warm["cost"]["wall_clock_s"] > warm["cost"]["wall_clock_measured_s"]


def test_a_resumed_run_is_charged_the_epochs_of_its_earlier_attempt(tmp_path, monkeypatch):
    config = resolve_config(method="fft", hparams={"epochs": 2}, **TINY)
    real_save = engine.atomic_torch_save

    def save_then_die(obj, path):
        real_save(obj, path)
        raise RuntimeError("interrupted after the first checkpoint")

    monkeypatch.setattr(engine, "atomic_torch_save", save_then_die)
    out = tmp_path / "out"
    failed = execute_run(config, out, cache_dir=tmp_path / "cache", verbose=False)
    assert failed["status"] == "failed"
    monkeypatch.setattr(engine, "atomic_torch_save", real_save)
    (checkpoint,) = (out / config.run_id / "checkpoints").glob("*.pt")
    saved = engine.safe_torch_load(checkpoint)["phase_seconds"]
    done = execute_run(config, out, cache_dir=tmp_path / "cache", verbose=False)
    assert done["status"] == "done"
    charges = [c for c in done["cost"]["charges"] if c["source"].startswith("earlier attempt")]
    assert charges, done["cost"]
    for c in charges:
        assert c["seconds"] > 0 and c["seconds"] <= saved[c["phase"]] + 1e-9
        assert done["cost"]["phases"][c["phase"]] >= c["seconds"]


# -- finding 5: contention is not recorded -------------------------------------------------------------------------
def test_contention_is_measured_from_what_other_processes_used(monkeypatch):
    ticks = iter([100.0, 100.0 + 2 * 1.0])  # the host busy 2 core-seconds over ~1 s while we used ~0
    monkeypatch.setattr(contention, "_host_busy_seconds", lambda: next(ticks))
    monkeypatch.setattr(contention.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(contention.time, "perf_counter", iter([0.0, 1.0]).__next__)
    monkeypatch.setattr(contention, "_own_cpu_seconds", iter([0.0, 0.0]).__next__)
    busy = contention.ContentionProbe(threads=2).finish()
    assert busy["others_busy_cores"] == pytest.approx(2.0) and busy["contended"] is True
    ticks = iter([100.0, 101.0])  # all the host's busy time was ours
    monkeypatch.setattr(contention, "_host_busy_seconds", lambda: next(ticks))
    monkeypatch.setattr(contention.time, "perf_counter", iter([0.0, 1.0]).__next__)
    monkeypatch.setattr(contention, "_own_cpu_seconds", iter([0.0, 1.0]).__next__)
    assert contention.ContentionProbe(threads=2).finish()["contended"] is False


def test_a_record_states_threads_and_contention(tmp_path):
    config = resolve_config(method="lp", hparams={"epochs": 1}, **TINY)
    rec = execute_run(config, tmp_path / "out", cache_dir=tmp_path / "cache", verbose=False)
    from lnlbench.harness import OMP_WAIT_POLICY_AT_LOAD

    assert rec["numerics"] == {"device_type": "cpu", "cpu_threads": torch.get_num_threads(),
                               "omp_wait_policy": OMP_WAIT_POLICY_AT_LOAD}
    c = rec["cost"]["contention"]
    assert c["host_cpus"] >= 1 and c["threads"] == torch.get_num_threads()
    assert isinstance(rec["cost"]["contended"], bool)


def _with(rec: dict, **cost) -> dict:
    rec["cost"].update(cost)
    rec["schema"] = SCHEMA
    return rec


def test_report_warns_beside_a_cost_comparison_of_contended_and_uncontended_runs(tmp_path):
    root = tmp_path / "runs"
    write_run(root, _with(make_record("lp", "sym", 0.2, 0, 0.9), contended=True))
    write_run(root, _with(make_record("fft", "sym", 0.2, 0, 0.9), contended=False))
    summary = build_report([root], tmp_path / "report", make_plots=False)
    cost_md = next((tmp_path / "report" / "tables").glob("*-cost.md")).read_text()
    assert "contended" in cost_md
    assert any("contended" in w for w in summary.warnings)


# -- finding 6: provenance cannot tell code apart -------------------------------------------------------------------
def test_record_carries_code_hash_and_dirty_flag(tmp_path):
    config = resolve_config(method="lp", hparams={"epochs": 1}, **TINY)
    rec = execute_run(config, tmp_path / "out", cache_dir=tmp_path / "cache", verbose=False)
    env = rec["env"]
    assert len(env["code_sha256"]) == 64 and env["method_module"] == "lnlbench_plugins.lp"
    assert "git_dirty" in env


def test_third_party_plugin_source_changes_the_code_hash(tmp_path, monkeypatch):
    from lnlbench.provenance import code_sha256

    pkg = tmp_path / "myplugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_sha256(("myplugin",))
    (pkg / "__init__.py").write_text("X = 2\n")
    assert code_sha256(("myplugin",)) != before
    assert code_sha256(("myplugin",)) != code_sha256()


def test_a_worker_on_changed_code_refuses_to_run(tmp_path):
    config = resolve_config(method="lp", hparams={"epochs": 1}, **TINY)
    rec = execute(config, tmp_path / "out", cache_dir=tmp_path / "cache", expected_code_sha256="0" * 64,
                  tee_log=False, verbose=False)
    assert rec["status"] == "failed" and "changed since this sweep started" in rec["error"]
    assert "metrics" not in rec


def test_report_marks_a_table_whose_cells_come_from_different_code(tmp_path):
    root = tmp_path / "runs"
    for method, code in (("lp", "a" * 64), ("fft", "b" * 64)):
        rec = _with(make_record(method, "sym", 0.2, 0, 0.9), contended=False)
        rec["env"]["code_sha256"] = code
        write_run(root, rec)
    summary = build_report([root], tmp_path / "report", make_plots=False)
    assert any("different code versions" in w for w in summary.warnings)
    md = next(p for p in (tmp_path / "report" / "tables").glob("*.md") if not p.name.endswith("-cost.md"))
    assert "different code versions" in md.read_text()


# -- finding 7: thread count changes results silently ---------------------------------------------------------------
def test_report_never_pools_cpu_runs_of_different_thread_counts(tmp_path):
    root = tmp_path / "runs"
    for seed, threads in ((0, 1), (1, 2)):
        rec = _with(make_record("fft", "sym", 0.2, seed, 0.9 - 0.03 * seed), contended=False)
        rec["numerics"] = {"device_type": "cpu", "cpu_threads": threads}
        write_run(root, rec)
    summary = build_report([root], tmp_path / "report", make_plots=False)
    assert summary.n_groups == 2  # one group per thread count, never one mean over both


# -- findings 1 and 3 in the report: two sets that share a name ---------------------------------------------------
def test_report_groups_by_data_fingerprint_and_shows_n_train(tmp_path):
    root = tmp_path / "runs"
    for fp, n in (("1" * 64, 5000), ("2" * 64, 50000)):
        rec = _with(make_record("lp", "sym", 0.2, 0, 0.8), contended=False)
        rec["config"]["data_fingerprint"] = fp
        rec["n_train"] = n
        rec["run_id"] = fp[:16]
        write_run(root, rec)
    summary = build_report([root], tmp_path / "report", make_plots=False)
    tables = sorted(p.name for p in (tmp_path / "report" / "tables").glob("*.md") if not p.name.endswith("-cost.md"))
    assert len(tables) == 2 and summary.n_groups == 2
    text = " ".join((tmp_path / "report" / "tables" / t).read_text() for t in tables)
    assert "5,000 train" in text and "50,000 train" in text


# -- finding 8: `lnlbench run` bypasses the sweep path --------------------------------------------------------------
def test_two_concurrent_lnlbench_run_train_once(tmp_path):
    """While one process executes a run (here this test, holding the run's lock), `lnlbench run` of the same config
    waits for it and then returns its record instead of training a second time."""
    import os

    from lnlbench.execution import claim

    out, cache = tmp_path / "out", tmp_path / "cache"
    config = resolve_config(method="fft", hparams={"epochs": 1}, **TINY)
    cmd = [sys.executable, "-m", "lnlbench.cli", "run", "--dataset", "digits", "--noise", "sym", "--rate", "0.4",
           "--method", "fft", "--set", "epochs=1", "--backbone", "test_efficientnet", "--weights", "random",
           "--image-size", "8", "--out", str(out), "--cache-dir", str(cache)]
    err_file = tmp_path / "second.stderr"
    with open(err_file, "w") as err_handle:
        with claim(out / config.run_id, "test"):
            second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_handle, text=True,
                                      env={**os.environ, "OMP_NUM_THREADS": "1"})
            deadline = time.monotonic() + 300
            while "waiting for it to end" not in err_file.read_text():
                assert second.poll() is None and time.monotonic() < deadline, err_file.read_text()
                time.sleep(0.05)
            first = execute_run(config, out, cache_dir=cache, verbose=False)  # the first process trains
        stdout, _ = second.communicate(timeout=600)  # the lock is free: the second finds the run done
    err = err_file.read_text()
    assert first["status"] == "done" and second.returncode == 0, err
    assert "already done" in err and "epoch 1" not in err  # the second trained nothing
    assert f"test_acc {first['metrics']['test_acc']:.4f}" in stdout  # and reports the first one's record


# -- old records --------------------------------------------------------------------------------------------------
@needs_mini
def test_published_records_are_reidentified_with_their_inputs_checked(tmp_path, capsys):
    """Two records as first published under schema 1 (tests/fixtures/schema1-records: LP at 64 px filled the
    feature cache, TURN read it and recorded 0.03 s for its features) move to schema-2 ids; TURN is charged LP's
    measured extraction, so its cost no longer depends on which of the two ran first."""
    from lnlbench.cli import main

    fixtures = Path(__file__).parent / "fixtures" / "schema1-records"
    out = tmp_path / "runs"
    for d in fixtures.iterdir():
        shutil.copytree(d, out / d.name)
        cfg = json.loads((d / "config.json").read_text())
        cfg["data_root"] = str(MINI)
        (out / d.name / "config.json").write_text(json.dumps(cfg))
    assert main(["status", str(out)]) == 0
    assert "2 old-schema" in capsys.readouterr().out
    assert main(["reidentify", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    recs = {r["method"]: r for r in (json.loads(p.read_text()) for p in out.glob("*/result.json"))}
    assert {r["schema"] for r in recs.values()} == {SCHEMA}
    assert recs["turn"]["reidentified"]["from_run_id"] == "8effcd4d1b417862"
    assert recs["lp"]["run_id"] == (out / recs["lp"]["run_id"]).name != "177782efdf8d0c9d"
    lp_features = recs["lp"]["cost"]["phases"]["features"]
    assert recs["turn"]["cost"]["phases_measured"]["features"] < 0.1
    assert recs["turn"]["cost"]["phases"]["features"] == pytest.approx(lp_features)
    assert recs["turn"]["metrics"] == json.loads((fixtures / "8effcd4d1b417862" / "result.json").read_text())["metrics"]
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    assert "2 done" in capsys.readouterr().out


def test_reidentify_refuses_data_that_is_not_what_the_run_used(tmp_path):
    from lnlbench.errors import ConfigError
    from lnlbench.reidentify import reidentify

    fixtures = Path(__file__).parent / "fixtures" / "schema1-records"
    out = tmp_path / "runs"
    shutil.copytree(fixtures / "177782efdf8d0c9d", out / "177782efdf8d0c9d")
    cfg = json.loads((out / "177782efdf8d0c9d" / "config.json").read_text())
    cfg.update(dataset="digits", data_root=None)  # other data: its noisy labels cannot hash to the record's
    (out / "177782efdf8d0c9d" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="not the data the run used"):
        reidentify(out, cache_dir=tmp_path / "cache", echo=lambda _: None)
    assert (out / "177782efdf8d0c9d" / "result.json").is_file()  # nothing moved


# -- issue 14, item 7: what a reproduction needs ------------------------------------------------------------------
def test_a_record_carries_its_command_dependency_versions_and_per_phase_throughput(tmp_path, capsys):
    from lnlbench.cli import main

    out = tmp_path / "out"
    argv = ["run", "--dataset", "digits", "--noise", "sym", "--rate", "0.4", "--method", "turn", "--backbone",
            "test_efficientnet", "--weights", "random", "--image-size", "8", "--set", "lp_epochs=1",
            "--set", "ft_epochs=1", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    record = json.loads(next(out.glob("*/result.json")).read_text())
    env = record["env"]
    assert env["command"]["argv"] == ["lnlbench", *argv] and env["command"]["via"] == "lnlbench"
    for name in ("torch", "timm", "numpy", "scipy", "scikit-learn", "pillow", "submitit", "pluggy"):
        assert env["versions"][name], name
    cost = record["cost"]
    # TURN trains on images only while fine-tuning: feature extraction and selection count no images, so the
    # per-phase rate is the fine-tuning images over the fine-tuning time, above the run-wide figure
    assert set(cost["images_by_phase"]) == {"finetune"}
    assert cost["images_by_phase"]["finetune"] == cost["images_seen"] > 0
    finetune_rate = cost["images_by_phase"]["finetune"] / cost["phases"]["finetune"]
    assert cost["images_per_s_by_phase"]["finetune"] == pytest.approx(finetune_rate)
    assert cost["images_per_s_by_phase"]["finetune"] > cost["images_per_s"]
    # a run started from Python says so
    from lnlbench.provenance import invocation

    assert invocation()["via"] == "python"
