"""The state of every run directory under an output directory: done, running, failed or pending.

A run directory tells the truth by its files alone:

- `result.json` with status "done" (current schema): **done**;
- `running.json` (written by the process executing the run: pid, host, heartbeat by mtime) whose process is
  alive (same host: the pid exists; another host: the heartbeat is fresh): **running**;
- `result.json` with status "failed": **failed**, with the record's error line;
- `interrupted.json` (written by a launcher stopped with SIGTERM/SIGINT; newer than any failed record):
  **interrupted**, with why, when and the checkpoint a relaunch resumes from;
- `config.json` and nothing else that counts (never started, interrupted, killed, or queued on SLURM): **pending**.

Only this module decides; `lnlbench status`, `lnlbench sweep` and the launchers ask it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lnlbench.config import SCHEMA, RunDir

STATES = ("done", "running", "failed", "pending")
INTERRUPTED_STATE = "interrupted"  # stopped by its launcher (SIGTERM/SIGINT); shown in counts only when there are some
OLD_SCHEMA = "old-schema"  # a record or config of an older schema: its run id is not this version's
MARKER = "running.json"  # written while a process executes the run
INTERRUPTED = "interrupted.json"  # written by a launcher that stopped the run (SIGTERM/SIGINT); removed on restart
SUBMITTED = "submitted.json"  # written by a launcher that queues the run elsewhere (SLURM job id)
LOCK = "lock"  # flock-ed by the executing process: two processes never run the same run at once
HEARTBEAT_S = 30.0  # the executing process touches its marker this often
STALE_S = 5 * HEARTBEAT_S  # a marker untouched this long belongs to a dead process


@dataclass
class RunState:
    """One run directory as `lnlbench status` shows it."""

    run_id: str
    state: str  # one of STATES
    detail: str = ""  # failed: the error line; running: host:pid; pending: why (queued, interrupted at epoch N)
    config: dict[str, Any] | None = None
    record: dict[str, Any] | None = None

    def describe(self) -> str:
        """`method dataset noise rate noise_seed N seed N` for a table row."""
        c = self.config or (self.record or {}).get("config") or {}
        if not c:
            return "-"
        return (" ".join(str(c.get(k, "?")) for k in ("method", "dataset", "noise", "rate"))
                + f" noise_seed {c.get('noise_seed', 0)} seed {c.get('seed', '?')}")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when absent or unreadable (files are written atomically)."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def run_dirs(out: Path | str) -> list[Path]:
    """Run directories under `out`: sub-directories holding a config.json or result.json (hidden ones skipped)."""
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted(
        p for p in out.iterdir()
        if p.is_dir() and not p.name.startswith(".") and ((p / "config.json").exists() or (p / "result.json").exists())
    )


def old_schema_dirs(out: Path | str) -> list[Path]:
    """Run directories written by another schema of lnlbench (their config or record names another `schema`)."""
    old = []
    for d in run_dirs(out):
        for name in ("config.json", "result.json"):
            obj = read_json(d / name)
            if obj is not None and obj.get("schema") != SCHEMA:
                old.append(d)
                break
    return old


def marker_alive(marker: dict[str, Any] | None, mtime: float | None, now: float | None = None) -> bool:
    """Whether the process named by a running marker still runs.

    On the marker's own host: the pid exists, is not a zombie and started when the marker says (pids are reused).
    On another host (a cluster node): its heartbeat, the marker's mtime, is younger than `STALE_S`.
    """
    if marker is None or mtime is None:
        return False
    fresh = (time.time() if now is None else now) - mtime < STALE_S
    if marker.get("host") != socket.gethostname():
        return fresh
    pid = marker.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    stat = proc_stat(pid)
    if stat is None:  # no /proc entry: gone, or a system without /proc (then ask the kernel, trust the heartbeat)
        if Path("/proc/self/stat").exists():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return fresh
    state, started = stat
    if state in ("Z", "X"):
        return False
    return marker.get("pid_start") in (None, started)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of a process from /proc, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return fields[0], int(fields[19])  # proc(5): field 3 is the state, field 22 the start time


def read_marker(run_dir: Path) -> tuple[dict[str, Any] | None, float | None]:
    path = run_dir / MARKER
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None, None
    return read_json(path), mtime


def checkpoint_epochs(run_dir: Path) -> str:
    """`phase (N epochs done)` of each checkpoint, from its SHA-256 manifest (checkpoints are not loaded)."""
    ck = run_dir / "checkpoints"
    if not ck.is_dir():
        return ""
    shown = []
    for p in sorted(ck.glob("*.pt")):
        current = (read_json(p.with_name(p.name + ".sha256.json")) or {}).get("current")
        epoch = current.get("epoch") if isinstance(current, dict) else None
        shown.append(f"{p.stem} ({epoch + 1} epoch{'s' if epoch else ''} done)" if isinstance(epoch, int) else p.stem)
    return ", ".join(shown)


def queued_slurm_jobs() -> set[str] | None:
    """Ids (`123` or `123_4`) of jobs SLURM still lists as pending or running; None when squeue is not there."""
    if shutil.which("squeue") is None:
        return None
    try:
        out = subprocess.run(
            ["squeue", "--noheader", "--array", "--format=%i"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


def slurm_job_states(job_ids: list[str]) -> dict[str, str]:
    """How SLURM accounting saw each job end: its state with the exit code when not 0:0 (`FAILED 9:0`,
    `OUT_OF_MEMORY 0:125`, `CANCELLED`), and `CANCELLED before it started` for a job or array task that never got a
    node (sacct lists those array tasks only as one `<array>_[a-b]` row). {} without `sacct`."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    asked = set(job_ids)
    arrays = sorted({j.split("_")[0] for j in job_ids})  # `sacct -j A` lists every task of array A, started or not
    try:
        out = subprocess.run(
            ["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State,ExitCode,NodeList",
             f"--jobs={','.join(arrays)}"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    states = {}
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        fields = line.split("|")
        if len(fields) != 4 or not fields[1].split():
            continue
        job, state, exit_code, nodes = (f.strip() for f in fields)
        said = state.split()[0] + (f" {exit_code}" if exit_code not in ("", "0:0") else "")
        if nodes == "None assigned":
            said += " before it started"
        for one in expand_array_ids(job):
            if one in asked:
                states[one] = said
    return states


def expand_array_ids(job: str) -> list[str]:
    """`123_[0-2,5%2]` -> 123_0, 123_1, 123_2, 123_5; any other id as it is."""
    array, _, spec = job.partition("_[")
    if not spec:
        return [job]
    ids = []
    for part in spec.rstrip("]").split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (hi.isdigit() or not hi):
            ids.extend(f"{array}_{t}" for t in range(int(lo), int(hi or lo) + 1))
    return ids


def run_state(run_dir: Path, queued: set[str] | None = None) -> RunState:
    """The state of one run directory (see the module docstring)."""
    rd = RunDir(run_dir.parent, run_dir.name)
    config = read_json(rd.config)
    record = read_json(rd.result)
    if rd.done_record() is not None:
        acc = (record.get("metrics") or {}).get("test_acc")
        return RunState(run_dir.name, "done", f"test_acc {acc:.4f}" if isinstance(acc, float) else "", config, record)
    old = next((o.get("schema") for o in (record, config) if o is not None and o.get("schema") != SCHEMA), None)
    if old is not None:
        return RunState(
            run_dir.name, OLD_SCHEMA,
            f"schema {old}: under schema {SCHEMA} ids are content-addressed, so a sweep would recompute this run "
            f"under a new id; `lnlbench reidentify {run_dir.parent}` moves it without re-running",
            config, record,
        )
    marker, mtime = read_marker(run_dir)
    if marker_alive(marker, mtime):
        where = f"{marker.get('host')}:{marker.get('pid')}"
        job = marker.get("slurm_job_id")
        ck = checkpoint_epochs(run_dir)
        detail = where + (f" (slurm job {job})" if job else "") + (f"; checkpoint {ck}" if ck else "")
        return RunState(run_dir.name, "running", detail, config, record)
    stopped = read_json(run_dir / INTERRUPTED)
    if stopped is not None and not (record is not None and _newer(rd.result, run_dir / INTERRUPTED)):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stopped.get("at") or 0))
        ck = checkpoint_epochs(run_dir)
        detail = f"{stopped.get('reason', 'stopped by its launcher')} at {when}; " + (
            f"resumes from checkpoint {ck}" if ck else "no checkpoint yet: starts over")
        return RunState(run_dir.name, "interrupted", detail, config, record)
    if record is not None and record.get("status") == "failed":
        return RunState(run_dir.name, "failed", last_error_line(run_dir, record), config, record)
    why = [f"{f.name} is unreadable (corrupt or not a JSON object); the run counts as not done, so a rerun "
           f"recomputes it and replaces the file" for f in (rd.result, rd.config) if f.exists() and read_json(f) is None]
    submitted = read_json(run_dir / SUBMITTED)
    job = (submitted or {}).get("job_id")
    if submitted is not None and not job and claim_alive(submitted):
        why.append(f"queued in the {submitted.get('launcher')} sweep {submitted.get('host')}:{submitted.get('pid')}")
    elif job and queued is not None and str(job) in queued:
        why.append(f"queued as slurm job {job}")
    elif job and queued is not None:
        why.append(f"slurm job {job} ended without a record")
    if marker is not None:
        why.append(f"interrupted (was {marker.get('host')}:{marker.get('pid')})")
    ck = checkpoint_epochs(run_dir)
    if ck:
        why.append(f"checkpoint {ck}")
    return RunState(run_dir.name, "pending", "; ".join(why), config, record)


def _newer(a: Path, b: Path) -> bool:
    """Whether file `a` was modified after file `b` (False when either is missing)."""
    try:
        return a.stat().st_mtime >= b.stat().st_mtime
    except OSError:
        return False


def last_error_line(run_dir: Path, record: dict[str, Any]) -> str:
    """The record's error, else the last line of traceback.txt."""
    err = str(record.get("error") or "").strip()
    if err:
        return err.splitlines()[-1]
    try:
        lines = [ln for ln in (run_dir / "traceback.txt").read_text().splitlines() if ln.strip()]
    except OSError:
        lines = []
    return lines[-1].strip() if lines else "(no error recorded)"


def is_queued(state: RunState) -> bool:
    """Pending, and claimed by a sweep that will run it: queued on SLURM or waiting in a live local launcher."""
    return state.state == "pending" and state.detail.startswith(("queued as slurm job", "queued in the "))


def claim_alive(claim: dict[str, Any]) -> bool:
    """Whether the launcher process that claimed a run (submitted.json without a SLURM job) still runs on this host."""
    if claim.get("host") != socket.gethostname():
        return False  # another machine's launcher: its workers' markers say whether it runs
    pid = claim.get("pid")
    stat = proc_stat(pid) if isinstance(pid, int) and pid > 0 else None
    return stat is not None and stat[0] not in ("Z", "X") and claim.get("pid_start") in (None, stat[1])


def scan(out: Path | str, run_ids: list[str] | None = None, check_slurm: bool = True) -> list[RunState]:
    """States of the run directories under `out` (or of `run_ids`, absent ones reported pending with no config)."""
    out = Path(out)
    dirs = run_dirs(out) if run_ids is None else [out / r for r in run_ids]
    has_submitted = any((d / SUBMITTED).exists() for d in dirs)
    queued = queued_slurm_jobs() if (check_slurm and has_submitted) else None
    states = []
    for d in dirs:
        if d.is_dir():
            states.append(run_state(d, queued))
        else:
            states.append(RunState(d.name, "pending", "not started"))
    gone = {s.detail.split()[2]: s for s in states if s.state == "pending" and " ended without a record" in s.detail}
    for job, state in slurm_job_states(sorted(gone)).items():  # say how SLURM saw them end (FAILED 9:0, ...)
        if job not in gone or not state:
            continue
        if state == "CANCELLED before it started":
            said = f"cancelled on SLURM before it started (slurm job {job})"
            gone[job].detail = gone[job].detail.replace(f"slurm job {job} ended without a record", said, 1)
        else:
            gone[job].detail = gone[job].detail.replace(" ended without", f" ended {state} without", 1)
    return states


def counts(states: list[RunState]) -> dict[str, int]:
    """Runs per state (interrupted and old-schema only when there are some)."""
    c = {s: 0 for s in STATES}
    for st in states:
        c[st.state] = c.get(st.state, 0) + 1
    return c


def format_counts(states: list[RunState]) -> str:
    c = counts(states)
    shown = STATES + tuple(s for s in (INTERRUPTED_STATE, OLD_SCHEMA) if c.get(s))
    return f"{len(states)} runs: " + ", ".join(f"{c[s]} {s}" for s in shown)
