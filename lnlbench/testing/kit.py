"""The conformance kit: named checks a method plugin must pass, run on tiny real runs, and their report."""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lnlbench.errors import ConfigError

if TYPE_CHECKING:  # torch loads only when a check runs: `lnlbench check-plugin --help` stays light
    from lnlbench.methods import Method

# Every check, in the order it runs, with what it verifies.
CHECKS: dict[str, str] = {
    "hparams_declared": "every hyperparameter has a default, a source and bounds",
    "overrides_validated": "an unknown override and an out-of-bounds override are rejected",
    "one_epoch_cpu": "a run at a budget of one epoch finishes on the CPU",
    "record_schema": "the run's record validates against the record schema",
    "deterministic": "two runs with one seed give the same record, timing fields aside",
    "resume_exact": "interrupted after the first epoch of each phase, a run resumes to the uninterrupted record",
    "no_clean_labels": "the context exposes no clean labels, and permuting them (noisy labels fixed) changes nothing "
                       "the method computed",
    "selections_scorable": "a selecting method reports selections the harness scores (precision and recall)",
}
STATIC_CHECKS = ("hparams_declared", "overrides_validated")  # need no run: cheap for every method


@dataclass
class CheckResult:
    """One check's outcome: passed (True/False; None when it could not be run) and a readable reason."""

    name: str
    passed: bool | None
    reason: str
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return {True: "pass", False: "FAIL", None: "not run"}[self.passed]


@dataclass
class ConformanceReport:
    """Every check run on one method."""

    method: str
    source: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True only when every check that was asked for ran and passed."""
        return bool(self.results) and all(r.passed is True for r in self.results)

    @property
    def failed(self) -> list[str]:
        """Names of the checks that failed or could not be run."""
        return [r.name for r in self.results if r.passed is not True]

    def get(self, name: str) -> CheckResult:
        return next(r for r in self.results if r.name == name)

    def text(self) -> str:
        width = max(len(name) for name in CHECKS)
        lines = [f"conformance of method {self.method!r} (from {self.source}):"]
        lines += [f"  {r.status:<7}  {r.name:<{width}}  {r.reason}" for r in self.results]
        n_ok = sum(r.passed is True for r in self.results)
        verdict = "conforms" if self.passed else f"does not conform (failed: {', '.join(self.failed)})"
        lines.append(f"{n_ok} of {len(self.results)} checks passed: {self.method} {verdict}")
        return "\n".join(lines)


def conformance(method: str | type[Method], **options: Any) -> ConformanceReport:
    """Run the kit on `method` (a registered name or a Method subclass) and raise AssertionError listing every
    failed check; returns the report when all pass. For a plugin's own pytest suite. Options: `run_conformance`."""
    report = run_conformance(method, **options)
    if not report.passed:
        raise AssertionError(report.text())
    return report


def run_conformance(
    method: str | type[Method],
    *,
    hparams: dict[str, Any] | None = None,
    epochs: int = 2,
    checks: list[str] | tuple[str, ...] | None = None,
    workdir: Path | None = None,
) -> ConformanceReport:
    """Run the checks named in `checks` (default: all of CHECKS) on `method` and return the report.

    `epochs` is the budget of the compared runs (at least 2, so that a run can be interrupted after its first
    epoch and resumed); `hparams` are overrides applied on top of the budget (e.g. a larger batch for speed).
    Runs are written under `workdir` (kept) or a temporary directory (removed).
    """
    wanted = list(CHECKS) if checks is None else list(checks)
    unknown = [c for c in wanted if c not in CHECKS]
    if unknown:
        raise ConfigError(f"no conformance check {', '.join(unknown)}; the checks: {', '.join(CHECKS)}")
    if epochs < 2:
        raise ConfigError(f"epochs={epochs}: the kit needs at least 2 (a run is interrupted after its first epoch)")
    with registered(method) as cls:
        report = ConformanceReport(cls.name, cls.source or "unknown")
        run = _Runner(cls, dict(hparams or {}), epochs, wanted, report)
        run.static()
        if any(c not in STATIC_CHECKS for c in wanted):
            with _workdir(workdir) as work, _one_thread():
                run.dynamic(work)
    report.results.sort(key=lambda r: list(CHECKS).index(r.name))
    return report


class _Runner:
    """Runs the checks of one method in order, sharing the runs they compare."""

    def __init__(self, cls: type[Method], hparams: dict, epochs: int, wanted: list[str],
                 report: ConformanceReport) -> None:
        self.cls, self.hparams, self.epochs, self.wanted, self.report = cls, hparams, epochs, wanted, report

    def check(self, name: str, fn: Callable[[], tuple[bool | None, str]]) -> bool | None:
        """Run check `name` if it was asked for; an exception it raises is its failure."""
        if name not in self.wanted:
            return None
        t0 = time.perf_counter()
        try:
            passed, reason = fn()
        except Exception as exc:  # the kit reports, it does not crash on the plugin's behalf
            passed, reason = False, f"raised {type(exc).__name__}: {exc}"
        self.report.results.append(CheckResult(name, passed, reason, time.perf_counter() - t0))
        return passed

    def skip(self, names: tuple[str, ...], why: str) -> None:
        for name in names:
            self.check(name, lambda: (None, f"not run: {why}"))

    def static(self) -> None:
        from lnlbench.testing.static import hparam_problems, override_problems

        def declared() -> tuple[bool, str]:
            problems = hparam_problems(self.cls)
            if problems:
                return False, "; ".join(problems)
            return True, f"{len(self.cls.hparam_space)} hyperparameters, each with a default, a source and bounds"

        def overrides() -> tuple[bool, str]:
            problems = override_problems(self.cls)
            if problems:
                return False, "; ".join(problems)
            return True, "an unknown name and each bounded hyperparameter just outside its bounds raise ConfigError"

        self.check("hparams_declared", declared)
        self.check("overrides_validated", overrides)

    def dynamic(self, work: Path) -> None:
        from lnlbench.testing import probes

        cache = work / "cache"
        budget = lambda n: {**self.cls.budget_hparams(n), **self.hparams}  # noqa: E731
        try:
            ref = probes.probe_config(self.cls.name, budget(self.epochs), cache)
        except ConfigError as exc:
            self.skip(tuple(c for c in CHECKS if c not in STATIC_CHECKS), f"the kit's run does not configure: {exc}")
            return
        # One epoch, or the smallest budget the method accepts (DivideMix needs a warm-up and a training epoch).
        one, smallest = ref, self.epochs
        for n in range(1, self.epochs):
            try:
                one, smallest = probes.probe_config(self.cls.name, budget(n), cache), n
                break
            except ConfigError:
                continue
        if _any(self.wanted, "one_epoch_cpu", "record_schema"):
            first = probes.execute(one, work / "one-epoch", cache)
            self.check("one_epoch_cpu", lambda: _ran(first, smallest))
            self.check("record_schema", lambda: _schema(first))
        later = ("deterministic", "resume_exact", "no_clean_labels", "selections_scorable")
        if not _any(self.wanted, *later):
            return
        a = probes.execute(ref, work / "a", cache)
        if not a.done:
            self.skip(later, f"the {self.epochs}-epoch run failed: {a.record.get('error')}")
            return
        steady = self.check("deterministic", lambda: _deterministic(a, probes.execute(ref, work / "b", cache)))
        if steady is False:
            self.skip(("resume_exact", "no_clean_labels"), "runs of one seed differ (see deterministic), so a "
                      "change cannot be told from noise")
        else:
            self.check("resume_exact", lambda: _resume(a, ref, work, cache))
            self.check("no_clean_labels", lambda: _no_clean_labels(a, ref, work, cache))
        self.check("selections_scorable", lambda: _selections(self.cls, a))


def _any(wanted: list[str], *names: str) -> bool:
    return any(n in wanted for n in names)


def _ran(probe: Any, epochs: int) -> tuple[bool, str]:
    status = (probe.raw or probe.record).get("status")
    budget = "one epoch" if epochs == 1 else f"{epochs} epochs (the smallest budget the method accepts)"
    if status != "done":
        return False, (f"the run at {budget} failed: {probe.record.get('error')} "
                       f"(traceback: {probe.result_path.parent}/traceback.txt)")
    rec = probe.record
    return True, (f"{budget}: finished in {rec['cost']['wall_clock_measured_s']:.1f} s, test_acc {rec['metrics']['test_acc']:.3f}, "
                  f"{rec['cost'].get('images_seen', 0)} training images seen")


def _schema(probe: Any) -> tuple[bool | None, str]:
    import json

    from lnlbench.record import validate

    if probe.raw is None:
        return None, "not run: the run ended before a record was made"
    problems = validate(probe.raw)
    if problems:
        return False, "the method's record does not follow the record schema: " + "; ".join(problems[:5])
    written = json.loads(probe.result_path.read_text())
    problems = validate(written)
    if problems:
        return False, f"{probe.result_path.name} does not follow the record schema: " + "; ".join(problems[:5])
    return True, "the record and the written result.json follow lnlbench/schemas/record.schema.json"


def _deterministic(a: Any, b: Any) -> tuple[bool, str]:
    from lnlbench.testing.probes import comparable, first_difference

    if not b.done:
        return False, f"the second run of the same configuration failed: {b.record.get('error')}"
    diff = first_difference(comparable(a.record), comparable(b.record))
    if diff:
        return False, f"two runs with seed {a.record['seed']} differ at {diff}"
    return True, f"two runs with seed {a.record['seed']} gave the same record (cost and env aside)"


def _resume(a: Any, config: Any, work: Path, cache: Path) -> tuple[bool, str]:
    from lnlbench.testing import probes

    phases = list(dict.fromkeys(phase for phase, _ in a.checkpoints))
    if not phases:
        trained = a.record["cost"].get("images_seen", 0) or a.record["metrics"].get("history")
        if trained:
            return False, ("the method trains but never checkpoints, so an interrupted run starts over: wrap each "
                           "epoch loop in ctx.epochs(phase, n, state)")
        return True, "no epoch loop (no training images seen, no history): nothing to resume"
    for phase in phases:
        out = work / f"resume-{phase}"
        stopped = probes.execute(config, out, cache, stop_after=phase)
        if "KitInterruption" not in str(stopped.record.get("error")):
            return False, f"interrupting after the first epoch of {phase} did not stop the run " \
                          f"(status {stopped.record.get('status')}: {stopped.record.get('error')})"
        resumed = probes.execute(config, out, cache)
        if not resumed.done:
            return False, f"the run resumed after the first epoch of {phase} failed: {resumed.record.get('error')}"
        if (phase, 0) in resumed.seeded:
            return False, f"the resumed run started {phase} over at epoch 1 instead of continuing from its checkpoint"
        diff = probes.first_difference(probes.comparable(a.record), probes.comparable(resumed.record))
        if diff:
            return False, f"interrupted after the first epoch of {phase} and resumed, the record differs at {diff}"
    return True, (f"interrupted after the first epoch of {', '.join(phases)} (one run each) and resumed: the "
                  "uninterrupted record each time")


def _no_clean_labels(a: Any, config: Any, work: Path, cache: Path) -> tuple[bool, str]:
    import torch

    from lnlbench.data.base import load_dataset
    from lnlbench.testing import probes

    clean = load_dataset(config.dataset, config.data_root, **config.dataset_options).train.labels
    noisy = a.context.noisy_labels.detach().cpu()
    leaks = probes.exposed_clean_labels(a.context, clean, noisy)
    if leaks:
        return False, f"the method's context exposes the clean labels: {', '.join(leaks)}"
    permuted = probes.permutation_of_clean_labels(clean)
    moved = int(((noisy == permuted) != (noisy == clean)).sum())
    with probes.clean_labels_replaced(config, cache, permuted):
        seen = load_dataset(config.dataset, config.data_root, **config.dataset_options).train.labels
        if not torch.equal(seen, permuted):
            raise RuntimeError("the kit could not replace the clean labels (the dataset reader ignored the patch)")
        p = probes.execute(config, work / "permuted", cache)
    if not p.done:
        return False, f"the run with permuted clean labels failed: {p.record.get('error')}"
    diff = probes.first_difference(probes.comparable(a.record, drop_selection_scores=True),
                                   probes.comparable(p.record, drop_selection_scores=True))
    if diff:
        return False, (f"permuting the clean labels (noisy labels fixed; {moved} samples changed clean/noisy "
                       f"status) changed the record at {diff}: the method reads clean labels or their scores")
    return True, (f"nothing in the context equals the clean labels; permuting them ({moved} samples changed "
                  "clean/noisy status) left the record the same, selection scores aside")


def _selections(cls: type[Method], a: Any) -> tuple[bool, str]:
    selection = a.record["metrics"].get("selection") or {}
    if not selection:
        if cls.selects:
            return False, "the method declares selects = True but recorded no selection (call ctx.record_selection)"
        return True, "the method does not select (selects = False): nothing to score"
    problems = []
    for network, entry in selection.items():
        final = entry.get("final") or {}
        for key in ("precision", "recall"):
            value = final.get(key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
                problems.append(f"{network}: final {key} {value!r} is not a number in [0, 1]"
                                + (" (an empty selection)" if final.get("size") == 0 else ""))
    if problems:
        return False, "; ".join(problems)
    note = "" if cls.selects else " (though it declares selects = False)"
    finals = ", ".join(f"{n} precision {e['final']['precision']:.3f} recall {e['final']['recall']:.3f}"
                       for n, e in selection.items())
    return True, f"scored{note}: {finals}"


@contextlib.contextmanager
def registered(method: str | type[Method]) -> Iterator[type[Method]]:
    """The method class, registered for the block when it is a class the plugins did not provide."""
    from lnlbench import hookimpl
    from lnlbench.methods import Method
    from lnlbench.plugin_manager import method_registry, plugin_manager

    if isinstance(method, str):
        yield method_registry().get(method)
        return
    if not (isinstance(method, type) and issubclass(method, Method) and method.name):
        raise ConfigError(f"{method!r} is not a named lnlbench.methods.Method subclass or a method name")
    if method.name in method_registry().names():
        if method_registry().get(method.name) is not method:
            raise ConfigError(f"another method is registered as {method.name!r}; give this one another name")
        yield method
        return

    class KitRegistration:
        """Registers one method class for the conformance kit."""

        __name__ = "the conformance kit (not installed)"

        @hookimpl
        def lnlbench_methods(self) -> list[type[Method]]:
            return [method]

    shim = KitRegistration()
    plugin_manager().register(shim, name=f"lnlbench-kit-{method.name}")
    method_registry.cache_clear()
    try:
        yield method_registry().get(method.name)
    finally:
        plugin_manager().unregister(shim)
        method_registry.cache_clear()


@contextlib.contextmanager
def _workdir(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        yield Path(workdir)
        return
    with tempfile.TemporaryDirectory(prefix="lnlbench-kit-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One torch thread for the kit's runs (the same reduction order in every run it compares)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
