"""Mutation check of the noise models, the shared selection code, the MixMatch pieces and the built-in methods.

    python tools/mutation.py                  # every mutant of tools/mutants.py; exit 1 if one survives
    python tools/mutation.py --only own-division turn-all-samples
    python tools/mutation.py --update-doc docs/mutation.md

Each mutant is applied to a fresh temporary copy of the repository's `lnlbench/`, `plugins/` (as `lnlbench_plugins/`),
`tests/` and `pyproject.toml` (one snapshot per run, of the working tree or of `--rev REV`), never to the checkout
itself, and only the tests named for it run there, with the copy first on PYTHONPATH. A guard plugin stops a run
whose `lnlbench` or `lnlbench_plugins` would be imported from anywhere but the copy (an editable install of the
checkout, say). Before any mutant, the unmutated snapshot must pass every named test. A mutant is killed when its
tests fail (or run past the timeout), survives when they pass; a survivor the list marks equivalent is reported so.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import MUTANTS, Mutant  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- mutation-results:begin -->", "<!-- mutation-results:end -->"
GUARD = '''"""Refuse to test anything but this copy (written by tools/mutation.py)."""
import os
from pathlib import Path

import pytest


def pytest_configure(config):
    import lnlbench
    import lnlbench_plugins

    root = Path(os.environ["LNLBENCH_MUTATION_ROOT"]).resolve()
    for module in (lnlbench, lnlbench_plugins):
        where = Path(module.__file__).resolve()
        if root not in where.parents:
            raise pytest.UsageError(f"{module.__name__} imported from {where}, not from the mutation copy {root}")
'''


@dataclass
class Outcome:
    """What happened to one mutant."""

    mutant: Mutant
    status: str  # killed, survived, equivalent, stale, error
    seconds: float
    detail: str = ""


def take_snapshot(dest: Path, rev: str | None) -> None:
    """Copy the code and tests the mutants touch into `dest`, plugins under their import name: from the working tree,
    or from git revision `rev`. Every mutant of a run starts from this one snapshot, so files edited in the checkout
    while the check runs cannot mix into it."""
    if rev is None:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
        shutil.copytree(REPO / "lnlbench", dest / "lnlbench", ignore=ignore)
        shutil.copytree(REPO / "plugins", dest / "lnlbench_plugins", ignore=ignore)
        shutil.copytree(REPO / "tests", dest / "tests", ignore=ignore)
        shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    else:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", rev, "lnlbench", "plugins", "tests", "pyproject.toml"],
            capture_output=True, check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
        (dest / "plugins").rename(dest / "lnlbench_plugins")
    (dest / "_mutation_guard.py").write_text(GUARD)


def copied_path(path: str) -> str:
    """Where a repository-relative source path lives in the copy."""
    return "lnlbench_plugins/" + path.removeprefix("plugins/") if path.startswith("plugins/") else path


def run_pytest(root: Path, tests: list[str], timeout: float) -> tuple[int | None, str]:
    """Run `tests` in the copy at `root`; returns (exit code, or None on timeout, and the output's tail)."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        LNLBENCH_MUTATION_ROOT=str(root),
        PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS="1",
        OMP_WAIT_POLICY="PASSIVE",
    )
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "_mutation_guard",
           "--rootdir", str(root), *tests]
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    tail = (proc.stdout + proc.stderr).strip().splitlines()
    return proc.returncode, "\n".join(tail[-15:])


def run_mutant(mutant: Mutant, snapshot: Path, timeout: float, keep: bool) -> Outcome:
    """Apply `mutant` in a fresh copy of `snapshot`, run its tests, classify the result."""
    start = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix=f"lnlbench-mutant-{mutant.id}-"))
    try:
        shutil.copytree(snapshot, root, dirs_exist_ok=True)
        target = root / copied_path(mutant.path)
        source = target.read_text()
        count = source.count(mutant.find)
        if count != 1:
            return Outcome(mutant, "stale", 0.0, f"snippet found {count} times in {mutant.path}")
        target.write_text(source.replace(mutant.find, mutant.replace))
        code, tail = run_pytest(root, list(mutant.tests), timeout)
        seconds = time.monotonic() - start
        if code is None or code == 1:  # tests failed (or hung): the bug was noticed
            return Outcome(mutant, "killed", seconds, tail.splitlines()[-1] if tail else "")
        if code == 0:
            return Outcome(mutant, "equivalent" if mutant.equivalent else "survived", seconds)
        return Outcome(mutant, "error", seconds, f"pytest exit code {code}:\n{tail}")
    finally:
        if keep:
            print(f"  kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def baseline(mutants: list[Mutant], snapshot: Path, timeout: float) -> None:
    """The unmutated snapshot must import from itself and pass every test the mutants name; exit otherwise."""
    tests = sorted({t for m in mutants for t in m.tests})
    root = Path(tempfile.mkdtemp(prefix="lnlbench-mutant-baseline-"))
    try:
        shutil.copytree(snapshot, root, dirs_exist_ok=True)
        code, tail = run_pytest(root, tests, timeout * 3)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if code != 0:
        sys.exit(f"the unmutated copy fails its tests (exit {code}); fix that first:\n{tail}")
    print(f"baseline: {len(tests)} test selections pass on the unmutated copy", file=sys.stderr)


def git(*args: str) -> str:
    """Output of a git command in the repository (stripped); raises when git fails."""
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def describe_source(rev: str | None) -> str:
    """Which code a run is about to mutate, read when its snapshot is taken: a commit, or the working tree (and
    whether it has uncommitted changes)."""
    if rev is not None:
        return f"git revision `{rev[:7]}`"
    dirty = git("status", "--porcelain", "--", "lnlbench", "plugins", "tests", "pyproject.toml")
    return f"the working tree at `{git('rev-parse', '--short', 'HEAD')}`" + (" with uncommitted changes" if dirty else "")


def markdown(outcomes: list[Outcome], source: str) -> str:
    """The per-mutant table and the kill rate, as Markdown."""
    day = time.strftime("%Y-%m-%d")
    lines = [f"Last run {day} on {source}.", "", "| mutant | file | what it breaks | result | tests |",
             "|---|---|---|---|---|"]
    for o in outcomes:
        result = o.status + (f": {o.mutant.equivalent}" if o.status == "equivalent" else "")
        tests = ", ".join(f"`{t.removeprefix('tests/')}`" for t in o.mutant.tests)
        lines.append(f"| `{o.mutant.id}` | `{o.mutant.path}` | {o.mutant.what} | {result} | {tests} |")
    lines += ["", summary(outcomes)]
    return "\n".join(lines)


def summary(outcomes: list[Outcome]) -> str:
    """Counts per status and the kill rate over the non-equivalent mutants."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("killed", "survived", "equivalent", "stale", "error")}
    scored = counts["killed"] + counts["survived"]
    rate = f"{counts['killed']}/{scored} = {100 * counts['killed'] / scored:.0f}%" if scored else "n/a"
    parts = ", ".join(f"{v} {k}" for k, v in counts.items() if v or k in ("killed", "survived", "equivalent"))
    return f"{len(outcomes)} mutants: {parts}. Kill rate over non-equivalent mutants: {rate}."


def update_doc(path: Path, table: str) -> None:
    """Replace the block between the result markers in `path` with `table`."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"{path} has no {BEGIN} ... {END} block to update")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run these mutants only")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1; one core each)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant before it counts as killed")
    parser.add_argument("--rev", metavar="REV", help="mutate git revision REV (e.g. HEAD) instead of the working tree")
    parser.add_argument("--skip-baseline", action="store_true", help="do not check the unmutated copy first")
    parser.add_argument("--keep", action="store_true", help="keep each temporary copy (for debugging a mutant)")
    parser.add_argument("--update-doc", type=Path, metavar="MD", help="write the result table into this Markdown file")
    args = parser.parse_args(argv)

    mutants = list(MUTANTS)
    if args.only:
        unknown = set(args.only) - {m.id for m in mutants}
        if unknown:
            parser.error(f"unknown mutant(s) {', '.join(sorted(unknown))}; see --list")
        mutants = [m for m in mutants if m.id in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.id:34} {m.path:28} {m.what}")
        return 0
    rev = git("rev-parse", "--verify", f"{args.rev}^{{commit}}") if args.rev else None  # fixed now, not at the end
    source = describe_source(rev)
    snapshot = Path(tempfile.mkdtemp(prefix="lnlbench-mutation-snapshot-"))
    try:
        take_snapshot(snapshot, rev)
        if not args.skip_baseline:
            baseline(mutants, snapshot, args.timeout)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each mutant is a subprocess in its own copy
            futures = [pool.submit(run_mutant, m, snapshot, args.timeout, args.keep) for m in mutants]
            for i, future in enumerate(futures, 1):
                outcome = future.result()
                print(f"[{i}/{len(mutants)}] {outcome.status:10} {outcome.mutant.id} ({outcome.seconds:.0f} s)",
                      file=sys.stderr)
                if outcome.status in ("error", "stale"):
                    print("  " + outcome.detail.replace("\n", "\n  "), file=sys.stderr)
        outcomes = [f.result() for f in futures]
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)
    table = markdown(outcomes, source)
    print(table)
    if args.update_doc:
        update_doc(args.update_doc, table)
    bad = [o for o in outcomes if o.status in ("survived", "stale", "error")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
