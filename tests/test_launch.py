"""Launchers and run directories: local/debug launchers, status, SIGKILL resume, many writers, failing runs."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import submitit

from lnlbench import hookimpl, status
from lnlbench.cli import main
from lnlbench.errors import ConfigError
from lnlbench.launch import (
    Launched,
    Launcher,
    LauncherSettings,
    LocalLauncher,
    RunJob,
    claim,
    launch_sweep,
    launcher_registry,
)
from lnlbench.plugin_manager import plugin_manager
from lnlbench.config import SCHEMA, write_json_atomic
from lnlbench.sweep import load_sweep

# Tiny, offline runs: the embedded digits at 16 px and a small random-weight timm test network. Launchers run with
# --jobs 2 or more, so each worker uses one thread (two threads per worker on a loaded 2-core machine spin-wait).
TINY_BACKBONE = "  - {name: test_resnet, weights: random, image_size: 16}"


def sweep_file(tmp_path: Path, method: str, seeds: str = "[0]", rates: str = "[0.2]", name: str = "s") -> Path:
    """A sweep file (the real format) with one method entry such as `- {name: lp, hparams: {epochs: 1}}`."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        "datasets: [digits]\n"
        f"noise:\n  - {{model: sym, rates: {rates}}}\n"
        f"methods:\n  {method}\n"
        f"backbones:\n{TINY_BACKBONE}\n"
        f"seeds: {seeds}\n"
    )
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One noisy-label/feature cache for the module, so runs after the first skip feature extraction."""
    return tmp_path_factory.mktemp("cache")


def quiet(_: str) -> None:
    pass


def records(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/result.json")}


# ------------------------------------------------------------------------------------------------------ status ---
def fake_run(out: Path, run_id: str, result: dict | None = None, marker: dict | None = None) -> Path:
    d = out / run_id
    write_json_atomic(d / "config.json", {"schema": SCHEMA, "run_id": run_id, "method": "lp", "dataset": "digits",
                                          "noise": "sym", "rate": 0.2, "seed": 0})
    if result is not None:
        write_json_atomic(d / "result.json", {"schema": SCHEMA, "run_id": run_id, **result})
    if marker is not None:
        write_json_atomic(d / status.MARKER, marker)
    return d


def test_status_tells_the_four_states_apart(tmp_path, capsys):
    out = tmp_path / "out"
    me = socket.gethostname()
    fake_run(out, "a" * 16, {"status": "done", "metrics": {"test_acc": 0.5}})
    fake_run(out, "b" * 16, {"status": "failed", "error": "Traceback...\nTrainingError: loss became nan"})
    live = status.proc_stat(os.getpid())
    fake_run(out, "c" * 16, marker={"pid": os.getpid(), "pid_start": live[1] if live else None, "host": me})
    fake_run(out, "d" * 16)
    # a marker whose process died (SIGKILL): pending, and the interruption is shown
    fake_run(out, "e" * 16, marker={"pid": 2**22 + 12345, "host": me})
    # same pid, but another process (pid reused): not running
    fake_run(out, "f" * 16, marker={"pid": os.getpid(), "pid_start": -1, "host": me})
    # a failed run that is running again: running wins
    fake_run(out, "g" * 16, {"status": "failed", "error": "x"}, marker={"pid": os.getpid(), "host": me})
    # another host: decided by the heartbeat (the marker's mtime)
    fresh = fake_run(out, "h" * 16, marker={"pid": 1, "host": "node-elsewhere"})
    stale = fake_run(out, "i" * 16, marker={"pid": 1, "host": "node-elsewhere"})
    old = time.time() - status.STALE_S - 5
    os.utime(stale / status.MARKER, (old, old))
    (out / ".submitit").mkdir()  # hidden folders are not runs
    states = {s.run_id[0]: s for s in status.scan(out)}
    got = {k: s.state for k, s in states.items()}
    assert got == {"a": "done", "b": "failed", "c": "running", "d": "pending", "e": "pending", "f": "pending",
                   "g": "running", "h": "running", "i": "pending"}
    assert states["b"].detail == "TrainingError: loss became nan"
    assert "interrupted" in states["e"].detail
    assert fresh.exists()
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "9 runs: 1 done, 3 running, 1 failed, 4 pending" in text
    assert re.search(r"failed\s+b{16}.*TrainingError: loss became nan", text)
    assert main(["status", str(out), "--state", "failed", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["run_id"] for r in rows] == ["b" * 16]


def test_status_shows_each_runs_noise_seed_and_the_epochs_its_checkpoint_holds(tmp_path, capsys):
    from lnlbench import verified

    out = tmp_path / "out"
    live = status.proc_stat(os.getpid())
    for run_id, noise_seed in (("a" * 16, 3), ("b" * 16, 4)):
        d = fake_run(out, run_id, marker={"pid": os.getpid(), "pid_start": live[1] if live else None,
                                          "host": socket.gethostname()} if noise_seed == 3 else None)
        write_json_atomic(d / "config.json", {**json.loads((d / "config.json").read_text()), "noise_seed": noise_seed})
        verified.write_verified(d / "checkpoints" / "finetune.pt", b"state", {"epoch": 2})
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    held = r"\s.*checkpoint finetune \(3 epochs done\)"
    assert re.search(r"running\s+a{16}\s+lp digits sym 0.2 noise_seed 3 seed 0" + held, text), text
    assert re.search(r"pending\s+b{16}\s+lp digits sym 0.2 noise_seed 4 seed 0" + held, text), text


def test_status_flags_a_corrupt_record_instead_of_a_silent_pending(tmp_path, capsys):
    out = tmp_path / "out"
    d = fake_run(out, "c" * 16)
    (d / "result.json").write_text('{"status": "done", "metr')  # cut short, e.g. by a copy that did not finish
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"pending\s+c{16}.*result.json is unreadable \(corrupt or not a JSON object\)", text), text


def test_status_of_missing_dir_is_an_error(tmp_path, capsys):
    assert main(["status", str(tmp_path / "absent")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_old_schema_detection(tmp_path):
    out = tmp_path / "out"
    fake_run(out, "a" * 16, {"status": "done"})
    assert status.old_schema_dirs(out) == []
    write_json_atomic(out / ("b" * 16) / "result.json", {"schema": SCHEMA + 1, "status": "done"})
    assert [p.name for p in status.old_schema_dirs(out)] == ["b" * 16]


def test_runs_queued_on_slurm_are_pending_and_not_relaunched(tmp_path, monkeypatch):
    from lnlbench.launch import make_plan

    (cfg, other) = load_sweep(sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}", seeds="[0, 1]")).runs()
    out = tmp_path / "out"
    for c, job in ((cfg, "41_0"), (other, "41_1")):
        write_json_atomic(out / c.run_id / "config.json", c.to_json())
        write_json_atomic(out / c.run_id / status.SUBMITTED, {"launcher": "slurm", "job_id": job})
    monkeypatch.setattr(status, "queued_slurm_jobs", lambda: {"41_0"})  # squeue lists only the first
    plan = make_plan([cfg, other], out)
    assert plan.states[cfg.run_id].state == "pending" and status.is_queued(plan.states[cfg.run_id])
    assert "queued as slurm job 41_0" in plan.states[cfg.run_id].detail
    assert [c.run_id for c in plan.to_launch] == [other.run_id]  # its job is gone from the queue: relaunch it


# --------------------------------------------------------------------------------------------- the run callable ---
def test_claim_is_exclusive_and_leaves_no_marker(tmp_path):
    d = tmp_path / "run"
    with claim(d, "test") as first:
        assert first
        marker = json.loads((d / status.MARKER).read_text())
        assert marker["pid"] == os.getpid() and marker["host"] == socket.gethostname()
        assert status.run_state(d).state == "running"
        with claim(d, "test") as second:
            assert not second
    assert not (d / status.MARKER).exists()
    with claim(d, "test") as again:
        assert again


def test_run_job_pickles_and_checkpoints_itself(tmp_path):
    cfg = load_sweep(sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}")).runs()[0]
    job = RunJob(cfg.to_json(), tmp_path / "out", cache_dir=tmp_path / "cache", launcher="slurm")
    assert isinstance(job, submitit.helpers.Checkpointable)
    clone = pickle.loads(pickle.dumps(job))
    assert clone.run_id == cfg.run_id and clone.config == job.config
    delayed = job.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function is job and delayed.args == () and delayed.kwargs == {}


def test_a_run_already_executing_elsewhere_is_not_started_twice(tmp_path, cache_dir):
    cfg = load_sweep(sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}")).runs()[0]
    out = tmp_path / "out"
    job = RunJob(cfg.to_json(), out, cache_dir=cache_dir)
    with claim(out / cfg.run_id, "other"):
        result = job()
    assert result["status"] == "skipped"
    assert not (out / cfg.run_id / "result.json").exists()


# ------------------------------------------------------------------------------------------------- the registry ---
class EchoLauncher(Launcher):
    name = "echo-test"
    description = "records what it was asked to launch"
    launched: list[str] = []

    def launch(self, runs):
        EchoLauncher.launched += [r.run_id for r in runs]
        return Launched(list(runs))


class LauncherPlugin:
    @hookimpl
    def lnlbench_launchers(self):
        return [EchoLauncher]


def test_plugins_add_launchers_through_the_hook(tmp_path):
    assert {"local", "debug", "slurm"} <= set(launcher_registry().names())
    pm = plugin_manager()
    pm.register(LauncherPlugin(), name="test-launcher-plugin")
    launcher_registry.cache_clear()
    try:
        assert launcher_registry().get("echo-test") is EchoLauncher
        configs = load_sweep(sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}", seeds="[0, 1]")).runs()
        plan, launched = launch_sweep(configs, tmp_path / "out", "echo-test", echo=quiet)
        assert EchoLauncher.launched == [c.run_id for c in configs]
        assert launched is not None and len(launched.runs) == 2
    finally:
        pm.unregister(name="test-launcher-plugin")
        launcher_registry.cache_clear()
    with pytest.raises(ConfigError, match="unknown launcher 'echo-test'"):
        launcher_registry().get("echo-test")


# ------------------------------------------------------------------------------------- acceptance: real runs ---
@pytest.mark.parametrize("launcher", ["local", "debug"])
def test_failing_run_is_recorded_failed_and_does_not_stop_the_others(tmp_path, cache_dir, capsys, launcher):
    # lr=1e36 makes the loss overflow in the first epoch (a TrainingError); those runs are launched first
    path = sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 2, lr: [1.0e+36, 0.001]}}", seeds="[0, 1]")
    out = tmp_path / "out"
    rc = main(["sweep", str(path), "--out", str(out), "--launcher", launcher, "--jobs", "2",
               "--cache-dir", str(cache_dir)])
    assert rc == 1
    text = capsys.readouterr()
    assert "launched 4: 2 done, 2 failed" in text.out
    recs = records(out)
    assert len(recs) == 4
    by_lr = {}
    for rid, rec in recs.items():
        by_lr.setdefault(rec["hparams"]["lr"], []).append(rec)
        assert rec["run_id"] == rid
    assert [r["status"] for r in by_lr[1e36]] == ["failed", "failed"]
    assert all("loss became" in r["error"] for r in by_lr[1e36])
    assert all(r["status"] == "done" and 0 <= r["metrics"]["test_acc"] <= 1 for r in by_lr[0.001])
    for r in by_lr[1e36]:
        assert "TrainingError" in (out / r["run_id"] / "traceback.txt").read_text()
    states = status.scan(out)
    assert status.counts(states) == {"done": 2, "running": 0, "failed": 2, "pending": 0}
    assert all("loss became" in s.detail for s in states if s.state == "failed")


def test_32_concurrent_runs_leave_32_valid_records(tmp_path, cache_dir, capsys, monkeypatch):
    # two "visible GPUs": the local launcher gives each worker one (on a CPU-only machine the runs stay on CPU)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    path = sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}", seeds=str(list(range(16))), rates="[0.2, 0.4]")
    configs = load_sweep(path).runs()
    assert len(configs) == 32
    out = tmp_path / "out"
    rc = main(["sweep", str(path), "--out", str(out), "--jobs", "32", "--cache-dir", str(cache_dir)])
    assert rc == 0
    recs = records(out)
    assert sorted(recs) == sorted(c.run_id for c in configs)
    for rid, rec in recs.items():
        assert rec["status"] == "done" and rec["schema"] == SCHEMA and rec["run_id"] == rid
        assert 0.0 <= rec["metrics"]["test_acc"] <= 1.0
        assert not (out / rid / status.MARKER).exists() and not (out / rid / "checkpoints").exists()
    assert not list(out.glob("*/.*.tmp"))  # no half-written files left behind
    gpus = [re.search(r"CUDA_VISIBLE_DEVICES=(\S+?)\)", (out / rid / "log.txt").read_text()).group(1) for rid in recs]
    assert sorted(set(gpus)) == ["0", "1"]
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    assert "32 runs: 32 done, 0 running, 0 failed, 0 pending" in capsys.readouterr().out
    # launched again: everything is done, nothing runs
    assert main(["sweep", str(path), "--out", str(out), "--jobs", "32", "--cache-dir", str(cache_dir)]) == 0
    assert "nothing to launch" in capsys.readouterr().out


def wait_for(predicate, timeout: float = 300.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


FFT_METHOD = "- {name: fft, hparams: {epochs: 4}}"


def test_sigkilled_local_run_resumes_and_ends_with_the_same_record(tmp_path, cache_dir):
    (cfg,) = load_sweep(sweep_file(tmp_path, FFT_METHOD)).runs()
    ref_out, out = tmp_path / "ref", tmp_path / "out"
    # the reference (uninterrupted) and the victim run side by side, one thread each, as the relaunch below
    launcher = LocalLauncher(LauncherSettings(jobs=2), out, echo=quiet)
    reference_job, victim = (RunJob(cfg.to_json(), o, cache_dir=cache_dir, launcher="local", tee_log=False)
                             for o in (ref_out, out))
    thread = threading.Thread(target=launcher.launch, args=([reference_job, victim],))
    thread.start()
    run_dir = out / cfg.run_id
    wait_for(lambda: (run_dir / "checkpoints" / "finetune.pt").exists(), what="the first checkpoint")
    marker = json.loads((run_dir / status.MARKER).read_text())
    os.kill(marker["pid"], signal.SIGKILL)
    thread.join(timeout=600)
    assert not thread.is_alive()
    reference = json.loads((ref_out / cfg.run_id / "result.json").read_text())
    assert reference["status"] == "done"
    killed = status.run_state(run_dir)
    assert killed.state == "failed" and "SIGKILL" in killed.detail, killed
    assert (run_dir / "checkpoints" / "finetune.pt").exists()

    # relaunched: resumes from the checkpoint (not from epoch 1) and lands the same record
    plan, _ = launch_sweep([cfg], out, "local", LauncherSettings(jobs=2), cache_dir=cache_dir, echo=quiet)
    assert [c.run_id for c in plan.to_launch] == [cfg.run_id]
    log = (run_dir / "log.txt").read_text()
    resumed = re.findall(r"finetune: resuming at epoch (\d+)", log)
    assert resumed and int(resumed[-1]) >= 2, log
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "done"
    assert record["metrics"] == reference["metrics"]
    for key in ("run_id", "config", "hparams", "noise", "n_train", "n_test"):
        assert record[key] == reference[key], key
    assert not (run_dir / "checkpoints").exists()


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = status.proc_stat(int(entry.name))
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if stat and stat[0] not in ("Z", "X"):
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    stat = status.proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_local_launcher_stops_every_worker_and_marks_the_runs_interrupted(tmp_path, cache_dir, sig):
    import subprocess
    import sys

    path = sweep_file(tmp_path, "- {name: fft, hparams: {epochs: 200}}", seeds="[0, 1]")
    configs = load_sweep(path).runs()
    out = tmp_path / "out"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "lnlbench.cli", "sweep", str(path), "--out", str(out), "--jobs", "2",
         "--cache-dir", str(cache_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # so the test's own process group never receives anything
    )
    try:
        wait_for(lambda: all((out / c.run_id / "checkpoints" / "finetune.pt").exists() for c in configs),
                 what="a checkpoint of both runs")
        below = descendants(launcher.pid)  # workers, the fork server, the resource tracker
        workers = {json.loads((out / c.run_id / status.MARKER).read_text())["pid"] for c in configs}
        assert workers <= below
        launcher.send_signal(sig)
        text = launcher.communicate(timeout=300)[0]
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 130, text
    assert "stopping 2 run(s)" in text and "interrupted" in text, text
    wait_for(lambda: not any(alive(p) for p in below), timeout=60, what="every process of the launcher to end")
    states = status.scan(out)
    assert [s.state for s in states] == ["interrupted", "interrupted"], states
    assert all(sig.name in s.detail and "resumes from checkpoint finetune" in s.detail for s in states), states
    assert not list(out.glob("*/running.json"))
