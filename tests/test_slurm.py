"""The `slurm` launcher against a real SLURM cluster (`../shared/slurm/slurm_local_up.sh` starts one).

Where no cluster answers (`sinfo` missing or failing) these tests skip with the reason; with
LNLBENCH_REQUIRE_SLURM=1 (CI) they fail instead, so CI can never skip them silently.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from lnlbench import verified
from lnlbench.cli import main
from lnlbench.launch import LauncherSettings, RunJob, SlurmLauncher
from lnlbench.launch.slurm import SubmissionError
from lnlbench.config import SCHEMA
from lnlbench.sweep import load_sweep

pytestmark = pytest.mark.slurm

TINY_BACKBONE = "  - {name: test_resnet, weights: random, image_size: 16}"


def slurm_problem() -> str | None:
    """Why no SLURM cluster can be used here, or None when `sinfo` shows a partition that is up."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client (`sinfo`/`sbatch` not on PATH); start one with ../shared/slurm/slurm_local_up.sh"
    try:
        res = subprocess.run(["sinfo", "--noheader", "--format=%P %a"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`sinfo` failed: {exc}"
    if res.returncode != 0:
        return f"`sinfo` failed (exit {res.returncode}): {res.stderr.strip()}"
    if not any(line.split()[-1:] == ["up"] for line in res.stdout.splitlines()):
        return f"no SLURM partition is up: {res.stdout.strip() or '(none)'}"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    problem = slurm_problem()
    if problem is None:
        return
    if os.environ.get("LNLBENCH_REQUIRE_SLURM") == "1":
        pytest.fail(f"LNLBENCH_REQUIRE_SLURM=1 but no SLURM cluster answers: {problem}")
    print(f"\nSLURM tests skipped: {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def quiet(_: str) -> None:
    pass


def sweep_file(tmp_path: Path, method: str, seeds: str, rates: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: slurmtest\n"
        "datasets: [digits]\n"
        f"noise:\n  - {{model: sym, rates: {rates}}}\n"
        f"methods:\n  {method}\n"
        f"backbones:\n{TINY_BACKBONE}\n"
        f"seeds: {seeds}\n"
        "launcher: {name: slurm, time: 15, cpus: 1, mem: 1G, array_parallelism: 8}\n"
    )
    return path


def test_sweep_of_6_runs_lands_6_records_and_relaunch_submits_nothing(slurm_cluster, tmp_path, cache_dir, capsys):
    path = sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}", seeds="[0, 1, 2]", rates="[0.2, 0.4]")
    configs = load_sweep(path).runs()
    assert len(configs) == 6
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--cache-dir", str(cache_dir), "--wait"]) == 0
    text = capsys.readouterr().out
    assert "submitted 6 run(s) as SLURM job" in text and "(array)" in text
    for c in configs:
        rec = json.loads((out / c.run_id / "result.json").read_text())
        assert rec["status"] == "done" and rec["schema"] == SCHEMA and rec["run_id"] == c.run_id
        assert 0.0 <= rec["metrics"]["test_acc"] <= 1.0
    job_ids = {json.loads((out / c.run_id / "submitted.json").read_text())["job_id"] for c in configs}
    assert len(job_ids) == 6 and len({j.split("_")[0] for j in job_ids}) == 1  # one job array for the sweep
    submitted_before = sorted(p.name for p in (out / ".submitit").iterdir())

    assert main(["sweep", str(path), "--out", str(out), "--cache-dir", str(cache_dir), "--wait"]) == 0
    text = capsys.readouterr().out
    assert "6 runs: 6 done" in text and "nothing to launch" in text and "submitted" not in text
    assert sorted(p.name for p in (out / ".submitit").iterdir()) == submitted_before
    assert main(["status", str(out)]) == 0
    assert "6 runs: 6 done, 0 running, 0 failed, 0 pending" in capsys.readouterr().out


def test_simulated_timeout_requeues_and_resumes_to_the_same_test_acc(slurm_cluster, tmp_path, cache_dir):
    path = sweep_file(tmp_path, "- {name: fft, hparams: {epochs: 6}}", seeds="[0]", rates="[0.2]")
    (cfg,) = load_sweep(path).runs()
    launcher = SlurmLauncher(LauncherSettings(time=15, cpus=1), tmp_path / "jobs", echo=quiet)
    launcher.check()
    reference, victim = (
        RunJob(cfg.to_json(), tmp_path / name, cache_dir=cache_dir, launcher="slurm") for name in ("ref", "out")
    )
    launched = launcher.launch([reference, victim])
    checkpoint = victim.run_dir.checkpoints / "finetune.pt"
    end = time.monotonic() + 600
    while not checkpoint.exists():
        assert time.monotonic() < end, "the run never wrote its first checkpoint"
        assert launched.jobs[1].state not in ("FAILED", "CANCELLED", "COMPLETED"), launched.jobs[1].state
        time.sleep(0.1)
    launched.jobs[1]._interrupt(timeout=True)  # submitit's simulated time-out: USR2, checkpoint(), requeue
    launcher.wait(launched)

    ref = json.loads((reference.run_dir.path / "result.json").read_text())
    got = json.loads((victim.run_dir.path / "result.json").read_text())
    assert ref["status"] == got["status"] == "done"
    assert got["metrics"]["test_acc"] == ref["metrics"]["test_acc"]
    assert got["metrics"]["history"] == ref["metrics"]["history"]
    log = victim.run_dir.log.read_text()
    assert "interrupted (time-out or preemption); asking SLURM to requeue it" in log, log
    assert "restart 1" in log, log  # the second attempt ran as SLURM restart 1
    resumed = re.findall(r"finetune: resuming at epoch (\d+)", log)
    assert resumed and int(resumed[-1]) >= 2, log
    assert "resuming" not in reference.run_dir.log.read_text()
    assert not victim.run_dir.checkpoints.exists()  # removed once the record was written


# ------------------------------------------------------------------- issue 13: settings submit or fail cleanly ---
@pytest.mark.parametrize("mem", ["3G", "4000M", "4", 4, "1.5G"])
def test_every_documented_mem_form_is_accepted_by_sbatch(slurm_cluster, tmp_path, mem):
    launcher = SlurmLauncher(LauncherSettings(mem=mem, time=5), tmp_path / "out", echo=quiet)
    launcher.check()  # sbatch --test-only with the generated script: raises if sbatch refuses it
    assert re.fullmatch(r"\d+M", launcher.parameters()["mem"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--partition", "no-such-partition"], "partition=no-such-partition"),
        (["--gpus", "1"], "gpus=1"),
        (["--cpus", "64"], "cpus=64"),
        (["--mem", "100000G"], "mem=100000G"),
        (["--mem", "lots"], "memory 'lots'"),
        (["--sbatch", "no-such-option=1"], "--no-such-option"),
        (["--sbatch", "exclude=node17"], "exclude"),
    ],
    ids=["partition", "gpus", "cpus", "mem-too-big", "mem-unparsable", "sbatch-option", "sbatch-node"],
)
def test_a_setting_the_cluster_refuses_ends_in_one_message_rc_2_and_no_files(
    slurm_cluster, tmp_path, cache_dir, capsys, flags, named
):
    path = sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}", seeds="[0]", rates="[0.2]")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--cache-dir", str(cache_dir), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert named in err, err
    assert not out.exists()


def down_cluster_conf(tmp_path: Path) -> Path:
    """A copy of this cluster's slurm.conf whose controller port nobody listens on: 'the cluster is down'."""
    shown = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    conf = Path(re.search(r"^SLURM_CONF\s*=\s*(\S+)", shown, re.M).group(1))
    text = re.sub(r"^SlurmctldPort=.*$", "SlurmctldPort=6899", conf.read_text(), flags=re.M | re.I)
    down = tmp_path / "slurm.conf"
    down.write_text(text if "SlurmctldPort=6899" in text else text + "\nSlurmctldPort=6899\n")
    for extra in conf.parent.glob("plugstack.conf*"):
        (tmp_path / extra.name).symlink_to(extra)
    return down


def test_a_cluster_that_does_not_answer_is_one_message_and_no_files(slurm_cluster, tmp_path, cache_dir, capsys,
                                                                     monkeypatch):
    path = sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}", seeds="[0]", rates="[0.2]")
    out = tmp_path / "out"
    monkeypatch.setenv("SLURM_CONF", str(down_cluster_conf(tmp_path)))
    assert main(["sweep", str(path), "--out", str(out), "--cache-dir", str(cache_dir)]) == 2
    err = capsys.readouterr().err
    assert "controller does not answer" in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_submission_refused_after_the_checks_leaves_nothing_behind(slurm_cluster, tmp_path, cache_dir, capsys,
                                                                     monkeypatch):
    # the cluster changed between the check and the submission: the same clean refusal, and no files
    path = sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}", seeds="[0, 1]", rates="[0.2]")
    out = tmp_path / "out"
    monkeypatch.setattr(SlurmLauncher, "test_submission", lambda self: None)
    assert main(["sweep", str(path), "--out", str(out), "--cache-dir", str(cache_dir),
                 "--partition", "no-such-partition"]) == 2
    err = capsys.readouterr().err
    assert "partition=no-such-partition" in err and "Traceback" not in err, err
    assert not out.exists()
    out.mkdir()  # an existing output directory keeps what it had, and gains nothing
    (out / "keep.txt").write_text("x")
    with pytest.raises(SubmissionError):
        from lnlbench.launch import launch_sweep

        launch_sweep(load_sweep(path).runs(), out, "slurm", LauncherSettings(partition="no-such-partition"),
                     cache_dir=cache_dir, echo=quiet)
    assert sorted(p.name for p in out.iterdir()) == [".launch.lock", "keep.txt"]


def test_two_concurrent_sweeps_on_one_grid_submit_each_run_once(slurm_cluster, tmp_path, cache_dir, monkeypatch):
    from lnlbench.launch import launch_sweep

    configs = load_sweep(sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}", "[0, 1]", "[0.2, 0.4]")).runs()
    out = tmp_path / "out"
    settings = LauncherSettings(time=15, cpus=1, sbatch={"hold": True}, job_name="lnlbench-concurrent")  # held
    # sweep A stops just before it submits, until sweep B has planned (or is waiting to): the race, made certain
    a_submitting, release_a, b_waits = threading.Event(), threading.Event(), threading.Event()
    real_launch = SlurmLauncher.launch

    def slow_launch(self, runs):
        if threading.current_thread().name == "sweep-a":
            a_submitting.set()
            assert release_a.wait(300)
        return real_launch(self, runs)

    monkeypatch.setattr(SlurmLauncher, "launch", slow_launch)
    said: dict[str, list[str]] = {"sweep-a": [], "sweep-b": []}
    results: dict[str, object] = {}

    def sweep(name: str) -> None:
        def echo(line: str) -> None:
            said[name].append(line)
            if "waiting" in line:
                b_waits.set()
        results[name] = launch_sweep(configs, out, "slurm", settings, cache_dir=cache_dir, echo=echo)[1]

    a = threading.Thread(target=sweep, args=("sweep-a",), name="sweep-a")
    b = threading.Thread(target=sweep, args=("sweep-b",), name="sweep-b")
    a.start()
    assert a_submitting.wait(300)
    b.start()
    while b.is_alive() and not b_waits.is_set():  # B either submits at once (the bug) or waits for A's claim
        b.join(0.05)
    release_a.set()
    a.join(300)
    b.join(300)
    job_ids = {json.loads((out / c.run_id / "submitted.json").read_text())["job_id"] for c in configs}
    launched = [r for r in results.values() if r is not None]
    arrays = {str(j.job_id).split("_")[0] for r in launched for j in r.jobs}
    try:
        assert len(launched) == 1, said  # one sweep submitted; the other found every run queued
        assert any("4 queued" in line for line in said["sweep-b"]) and "nothing to launch" in said["sweep-b"], said
        assert len(job_ids) == 4 and len(arrays) == 1
    finally:
        subprocess.run(["scancel", *arrays], timeout=30)


# ----------------------------------------------------------------- issue 13, finding 6: truthful SLURM end states ---
def wait_for(predicate, what: str, limit_s: float = 600):
    """Poll `predicate` until it returns something truthy (a bound against hanging, not a timing assertion)."""
    end = time.monotonic() + limit_s
    while not (got := predicate()):
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.2)
    return got


def long_run(tmp_path: Path, cache_dir: Path, epochs: int = 200) -> tuple[SlurmLauncher, RunJob]:
    """A launcher and an fft run long enough to be stopped mid-training."""
    path = sweep_file(tmp_path, f"- {{name: fft, hparams: {{epochs: {epochs}}}}}", seeds="[0]", rates="[0.2]")
    (cfg,) = load_sweep(path).runs()
    launcher = SlurmLauncher(LauncherSettings(time=15, cpus=1), tmp_path / "out", echo=quiet)
    return launcher, RunJob(cfg.to_json(), tmp_path / "out", cache_dir=cache_dir, launcher="slurm")


def test_a_task_killed_on_its_node_is_recorded_with_the_slurm_state_and_exit_code(slurm_cluster, tmp_path, cache_dir,
                                                                                  capsys):
    launcher, run = long_run(tmp_path, cache_dir)
    launched = launcher.launch([run])
    marker = run.run_dir.path / "running.json"
    wait_for(lambda: (run.run_dir.checkpoints / "finetune.pt").exists(), "the first checkpoint")
    os.kill(json.loads(marker.read_text())["pid"], 9)  # the node's OOM killer, say: SLURM sees FAILED 9:0
    launcher.wait(launched)
    error = json.loads(run.run_dir.result.read_text())["error"]
    assert f"SLURM job {launched.jobs[0].job_id} ended FAILED 9:0 without a record" in error, error
    assert main(["status", str(run.out)]) == 0
    assert "ended FAILED 9:0 without a record" in capsys.readouterr().out


def test_an_array_cancelled_before_it_started_says_so_in_status(slurm_cluster, tmp_path, cache_dir, capsys):
    from lnlbench.launch import launch_sweep

    configs = load_sweep(sweep_file(tmp_path, "- {name: lp, hparams: {epochs: 1}}", "[0, 1]", "[0.2]")).runs()
    out = tmp_path / "out"
    settings = LauncherSettings(time=5, cpus=1, sbatch={"hold": True}, job_name="lnlbench-never-started")
    _, launched = launch_sweep(configs, out, "slurm", settings, cache_dir=cache_dir, echo=quiet)
    array = str(launched.jobs[0].job_id).split("_")[0]
    subprocess.run(["scancel", array], check=True, timeout=30)

    def shown() -> str:
        assert main(["status", str(out)]) == 0
        text = capsys.readouterr().out
        return text if "cancelled on SLURM" in text else ""

    text = wait_for(shown, "accounting to record the cancelled array", 60)
    for i, c in enumerate(configs):
        assert re.search(rf"pending\s+{c.run_id}.*cancelled on SLURM before it started \(slurm job {array}_{i}\)",
                         text), text
    assert "2 runs: 0 done, 0 running, 0 failed, 2 pending" in text
    SlurmLauncher(settings, out, echo=quiet).wait(launched)  # --wait: the failure record says the same
    for i, c in enumerate(configs):
        error = json.loads((out / c.run_id / "result.json").read_text())["error"]
        assert error.startswith(f"SLURM job {array}_{i} was CANCELLED before it started ("), error


# ------------------------------------------------------ issue 13, finding 7: an attempt SLURM ended stops at once ---
@pytest.mark.parametrize("command", [["scancel", "--signal=KILL"], ["scontrol", "requeue"]],
                         ids=["scancel-KILL", "scontrol-requeue"])
def test_an_attempt_slurm_ended_stops_at_once_and_writes_no_further_checkpoint(slurm_cluster, tmp_path, cache_dir,
                                                                                command):
    # submitit ignores SIGTERM, so before this the step trained on (and checkpointed, even wrote a record) until
    # SLURM's SIGKILL came KillWait (30 s) later, racing a requeued attempt's start
    launcher, run = long_run(tmp_path, cache_dir)
    launched = launcher.launch([run])
    job = str(launched.jobs[0].job_id)
    checkpoint = run.run_dir.checkpoints / "finetune.pt"
    wait_for(checkpoint.exists, "the first checkpoint")
    pid = json.loads((run.run_dir.path / "running.json").read_text())["pid"]
    subprocess.run([*command, job], check=True, timeout=30)
    try:
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the first attempt's process to end")
        log = run.run_dir.log.read_text()
        stop = re.search(rf"SLURM job {job} is (\w+) \(cancelled, requeued or out of time\); this attempt stops now "
                         r"and writes no further checkpoint or record; the next attempt resumes from checkpoint "
                         r"finetune \((\d+) epochs? done\)", log)
        assert stop, log
        assert stop.group(1) != "RUNNING"
        kept = int(stop.group(2))
        assert "finetune epoch" not in log[stop.end():].split("starting on")[0], log  # no training after the stop
        if command[0] == "scancel":
            assert verified.read_manifest(checkpoint)["current"]["epoch"] == kept - 1  # nothing written after
            launcher.wait(launched)
            error = json.loads(run.run_dir.result.read_text())["error"]
            assert f"SLURM job {job} ended CANCELLED without a record" in error, error
        else:  # the requeued attempt resumes right after the last epoch the stopped one kept
            wait_for(lambda: "restart 1" in run.run_dir.log.read_text(), "the requeued attempt")
            wait_for(lambda: re.search(r"finetune: resuming at epoch \d+", run.run_dir.log.read_text()), "its resume")
            assert re.findall(r"finetune: resuming at epoch (\d+)", run.run_dir.log.read_text()) == [str(kept + 1)]
    finally:
        subprocess.run(["scancel", job], timeout=30)
