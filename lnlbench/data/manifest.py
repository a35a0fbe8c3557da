"""What each file-based dataset must contain, and the check of a local copy against it (`lnlbench prepare`).

A reader module registers a `Manifest`: the files a copy needs (and where they come from), how to scan the copy
into per-split image lists (`DatasetIndex`), and the split sizes the dataset's authors published. `check_copy`
scans a copy without stopping at the first problem and reports missing files, malformed lines, labels out of
range, listed images that are missing, unreadable images (when asked to decode them), and split sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lnlbench.data.annotations import (
    MISSING_FILE,
    UNREADABLE,
    Issue,
    IssueLog,
    SplitIndex,
    drop_missing,
)
from lnlbench.errors import ConfigError, DataError
from lnlbench.registry import Registry


@dataclass(frozen=True)
class RequiredFile:
    """A file (or directory, path ending in '/') a copy must have, relative to its root, and what it is."""

    relpath: str
    what: str
    optional: bool = False


@dataclass
class DatasetIndex:
    """A scanned copy: class names and, per split, the images (relative to `root`) with their labels."""

    name: str
    root: Path
    classes: list[str]
    splits: dict[str, SplitIndex]
    files: list[RequiredFile]  # the files this copy's layout relies on
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """How to check one dataset: scan(root, options, log) -> DatasetIndex, and published split sizes."""

    name: str
    source: str  # where the dataset comes from (one line; docs/datasets.md has the details)
    scan: Callable[[Path, dict[str, Any], IssueLog], DatasetIndex]
    published: Callable[[dict[str, Any]], dict[str, int]]  # split -> size, for the options given
    options: tuple[str, ...] = ()  # the scan options `lnlbench prepare` accepts (e.g. classes)


MANIFESTS: Registry[Manifest] = Registry("dataset manifest")


def register_manifest(manifest: Manifest) -> Manifest:
    MANIFESTS.add(manifest.name, manifest)
    return manifest


@dataclass
class SplitReport:
    listed: int
    present: int
    missing: int
    unreadable: int | None  # None when images were not decoded
    published: int | None

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class CheckReport:
    """The outcome of `check_copy`; `complete` when nothing is wrong."""

    dataset: str
    root: str
    layout: str
    classes: int
    files: list[dict]
    splits: dict[str, SplitReport]
    issues: list[Issue]
    notes: list[str]
    decoded: bool
    cache: dict | None = None

    @property
    def complete(self) -> bool:
        return not self.issues

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for issue in self.issues:
            out[issue.kind] = out.get(issue.kind, 0) + 1
        return out

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "root": self.root,
            "complete": self.complete,
            "layout": self.layout,
            "classes": self.classes,
            "files": self.files,
            "splits": {k: v.to_json() for k, v in self.splits.items()},
            "decoded": self.decoded,
            "problem_counts": self.counts(),
            "problems": [{"kind": i.kind, "path": i.path, "line": i.line, "message": i.message} for i in self.issues],
            "notes": self.notes,
            "cache": self.cache,
        }

    def format(self, max_listed: int = 20) -> str:
        """A report for people: files, per-split counts, then the problems (the first `max_listed` of each kind)."""
        lines = [f"{self.dataset} at {self.root}: {'COMPLETE' if self.complete else 'INCOMPLETE'}"]
        if self.layout:
            lines.append(f"  layout: {self.layout}")
        lines.append(f"  classes: {self.classes}")
        lines.append("  files:")
        for f in self.files:
            state = "ok" if f["present"] else ("missing (optional)" if f["optional"] else "MISSING")
            lines.append(f"    {f['path']:<34} {state:<18} {f['what']}")
        lines.append("  splits:")
        for name, s in self.splits.items():
            unreadable = "not decoded" if s.unreadable is None else f"{s.unreadable} unreadable"
            published = f", published {s.published}" if s.published is not None else ""
            lines.append(f"    {name:<10} {s.listed} listed, {s.present} present, {s.missing} missing, {unreadable}{published}")
        if self.cache:
            c = self.cache
            lines.append(
                f"  cache: {c['directory']} ({c['already']} already cached, {c['added']} added, "
                f"{len(c['failed'])} failed, {c['seconds']} s)"
            )
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.issues:
            lines.append(f"  problems ({', '.join(f'{n} {k}' for k, n in sorted(self.counts().items()))}):")
            shown: dict[str, int] = {}
            for issue in self.issues:
                shown[issue.kind] = shown.get(issue.kind, 0) + 1
                if shown[issue.kind] <= max_listed:
                    lines.append(f"    [{issue.kind}] {issue.describe()}")
                elif shown[issue.kind] == max_listed + 1:
                    lines.append(f"    [{issue.kind}] ... (see --json for all)")
        return "\n".join(lines)


def scan_copy(name: str, root: Path, options: dict[str, Any] | None = None) -> tuple[DatasetIndex, IssueLog]:
    """Scan a copy collecting every problem instead of raising."""
    manifest = MANIFESTS.get(name)
    options = dict(options or {})
    unknown = sorted(set(options) - set(manifest.options))
    if unknown:
        raise ConfigError(
            f"prepare {name}: unknown option(s) {', '.join(unknown)}; it takes: {', '.join(manifest.options) or '(none)'}"
        )
    if not root.is_dir():
        raise DataError(f"{name}: the data root {root} is not a directory; pass --data-root DIR ({manifest.source})")
    log = IssueLog(name, collect=True)
    return manifest.scan(root, options, log), log


def check_copy(
    name: str,
    root: Path,
    options: dict[str, Any] | None = None,
    decode: Callable[[list[str]], dict[str, str]] | None = None,
    strict_counts: bool = False,
) -> CheckReport:
    """Check a local copy of dataset `name` at `root`.

    `decode(relpaths)` decodes the images that are present and returns {relative path: error} for those that fail
    (building the cache does this); without it images are not decoded. Split sizes that differ from the published
    ones are notes, or problems with `strict_counts`.
    """
    manifest = MANIFESTS.get(name)
    index, log = scan_copy(name, root, options)
    published = manifest.published(dict(options or {}))
    files = [
        {"path": f.relpath, "what": f.what, "optional": f.optional, "present": (root / f.relpath).exists()}
        for f in index.files
    ]
    reported = {i.path for i in log.issues if i.kind == MISSING_FILE}
    for f in files:
        if not f["present"] and not f["optional"] and str(root / f["path"]) not in reported:
            log.add(MISSING_FILE, root / f["path"], None, f"missing ({f['what']})")
    present: dict[str, SplitIndex] = {}
    missing: dict[str, int] = {}
    for split_name, split in index.splits.items():
        before = len(log.issues)
        present[split_name] = drop_missing(split, root, log)
        missing[split_name] = len(log.issues) - before
    unreadable: dict[str, str] | None = None
    if decode is not None:
        unreadable = decode(list(dict.fromkeys(rel for s in present.values() for rel in s.relpaths)))
    splits: dict[str, SplitReport] = {}
    notes = list(index.notes)
    for split_name, split in index.splits.items():
        bad = None
        if unreadable is not None:
            bad = 0
            for i, rel in enumerate(present[split_name].relpaths):
                if rel in unreadable:
                    bad += 1
                    where = present[split_name].where(i)
                    log.add(UNREADABLE, root / rel, None, f"does not decode ({unreadable[rel]}); listed at {where}")
        expected = published.get(split_name)
        splits[split_name] = SplitReport(len(split), len(present[split_name]), missing[split_name], bad, expected)
        if expected is not None and expected != len(split):
            message = f"split {split_name} lists {len(split)} images; the published size is {expected}"
            if strict_counts:
                log.add("count", split.sources[0] if len(split) else str(root), None, message)
            else:
                notes.append(message + " (a subset or another version; --strict-counts makes this a problem)")
    return CheckReport(
        dataset=name,
        root=str(root),
        layout=str(index.extra.get("layout", "")),
        classes=len(index.classes),
        files=files,
        splits=splits,
        issues=log.issues,
        notes=notes,
        decoded=unreadable is not None,
    )


def all_relpaths(index: DatasetIndex) -> list[str]:
    """Every image of every split, once, in split order."""
    seen: dict[str, None] = {}
    for split in index.splits.values():
        seen.update(dict.fromkeys(split.relpaths))
    return list(seen)


def label_counts(split: SplitIndex, num_classes: int) -> np.ndarray:
    """Images per class of a split (by its noisy labels where it has them)."""
    labels = split.selection_labels()
    return np.bincount(labels[labels >= 0], minlength=num_classes)
