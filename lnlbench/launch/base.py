"""The launcher interface and the in-process `debug` launcher."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lnlbench import status
from lnlbench.launch.job import RunJob
from lnlbench.launch.settings import LauncherSettings


@dataclass
class Launched:
    """What a launcher did: the runs it started and, for queueing launchers, their submitit jobs."""

    runs: list[RunJob]
    jobs: list[Any] = field(default_factory=list)
    finished: bool = True  # False while the runs may still be queued or running elsewhere


class Launcher:
    """Base class of launchers. Subclasses set `name` and `description` and implement `launch`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, settings: LauncherSettings, out: Path | str, echo: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.out = Path(out).resolve()
        self.echo = echo

    def check(self) -> None:
        """Raise ConfigError when this launcher cannot work here; called before anything is written."""

    def describe(self) -> str:
        return self.name

    def launch(self, runs: Sequence[RunJob]) -> Launched:
        raise NotImplementedError

    def wait(self, launched: Launched) -> None:
        """Block until every launched run has ended (launchers that run in the foreground have nothing to do)."""


def _run_label(run: RunJob) -> str:
    c = run.config
    return f"{run.run_id} {c.get('method')} {c.get('dataset')} {c.get('noise')} {c.get('rate')} seed {c.get('seed')}"


def _ended(run: RunJob, echo: Callable[[str], None], prefix: str) -> None:
    rec = run.run_dir.read_result() or {}
    if rec.get("status") == "done":
        acc = (rec.get("metrics") or {}).get("test_acc")
        wall = (rec.get("cost") or {}).get("wall_clock_s")
        extra = f" test_acc {acc:.4f}" if isinstance(acc, float) else ""
        extra += f" ({wall:.0f} s)" if isinstance(wall, (int, float)) else ""
        echo(f"{prefix} done {_run_label(run)}{extra}")
    elif rec:
        echo(f"{prefix} {rec.get('status')} {_run_label(run)}: {rec.get('error', '')}")
    else:
        state = status.run_state(run.run_dir.path)
        echo(f"{prefix} {state.state} {_run_label(run)}" + (f": {state.detail}" if state.detail else ""))


class DebugLauncher(Launcher):
    name = "debug"
    description = "in this process, one run after another (for pdb and print debugging)"

    def launch(self, runs: Sequence[RunJob]) -> Launched:
        for i, run in enumerate(runs, 1):
            self.echo(f"[{i}/{len(runs)}] start {_run_label(run)}")
            run()
            _ended(run, self.echo, f"[{i}/{len(runs)}]")
        return Launched(list(runs))
