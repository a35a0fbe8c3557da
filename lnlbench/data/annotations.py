"""Annotation files as lists of (image, label) with their file and line, and the log of what was wrong in them.

Shared by the readers of datasets distributed as image files plus text annotations (Clothing1M, WebVision,
ILSVRC2012 val) and by `lnlbench prepare`, which checks a copy without stopping at the first problem.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lnlbench.errors import DataError

UNKNOWN = -1  # label value for "not annotated" (e.g. the clean label of most Clothing1M training images)

# Kinds of problem, as `lnlbench prepare` groups them.
MISSING_FILE = "missing-file"
BAD_LINE = "bad-line"
LABEL_RANGE = "label-out-of-range"
NO_LABEL = "key-without-label"
MISSING_IMAGE = "missing-image"
UNREADABLE = "unreadable-image"
CLASS_LIST = "class-list"


@dataclass(frozen=True)
class Issue:
    """One problem in a copy of a dataset, located as precisely as the files allow."""

    kind: str
    path: str  # the annotation file (or image) at fault
    line: int | None  # 1-based line in `path`, when the problem is one line
    message: str

    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def describe(self) -> str:
        return f"{self.where()}: {self.message}"


@dataclass
class IssueLog:
    """Collects problems; raises the first one as a DataError unless bad samples are tolerated.

    A reader tolerates bad samples when asked (`tolerate`); problems that make a whole file unusable (`fatal`) raise
    anyway. `collect` (used by `lnlbench prepare`) never raises, so one pass lists everything wrong with a copy.
    `fix` is appended to raised messages (what the user can do), `dataset` prefixes them.
    """

    dataset: str
    tolerate: bool = False
    collect: bool = False
    fix: str = "fix or remove the entry, or pass tolerate_bad=True to skip bad samples with a counted warning"
    fatal_fix: str = "see docs/datasets.md for the files this dataset needs and where they come from"
    issues: list[Issue] = field(default_factory=list)

    def add(self, kind: str, path: Path | str, line: int | None, message: str, fatal: bool = False) -> None:
        """Record a problem with one sample; `fatal` problems (a whole file unusable) raise even when tolerating."""
        issue = Issue(kind, str(path), line, message)
        if not self.collect and (fatal or not self.tolerate):
            raise DataError(f"{self.dataset}: {issue.describe()}; {self.fix if not fatal else self.fatal_fix}")
        self.issues.append(issue)

    def counts(self) -> dict[str, int]:
        return dict(Counter(i.kind for i in self.issues))

    def warn_skipped(self, stacklevel: int = 3) -> None:
        """One warning summarising the skipped samples (nothing when there were none)."""
        if not self.issues:
            return
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts().items()))
        warnings.warn(
            f"{self.dataset}: skipped {len(self.issues)} bad sample(s) ({counts}), e.g. {self.issues[0].describe()}",
            stacklevel=stacklevel,
        )


def read_lines(path: Path, what: str, log: IssueLog) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank lines of a text file.

    A missing file is a fatal problem for `log` (nothing is yielded when the log only collects); `what` says what
    the file is and where it comes from, for the message.
    """
    if not path.is_file():
        log.add(MISSING_FILE, path, None, f"missing annotation file ({what})", fatal=True)
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, raw in enumerate(f, start=1):
            text = raw.strip()
            if text:
                yield number, text


def parse_labelled(
    path: Path, what: str, num_classes: int, log: IssueLog
) -> list[tuple[str, int, int]]:
    """(key, label, line) of a '<relative path> <label>' file; malformed lines and labels outside
    [0, num_classes) go to `log` (which raises unless bad samples are tolerated)."""
    out: list[tuple[str, int, int]] = []
    for number, text in read_lines(path, what, log):
        parts = text.split()
        if len(parts) != 2:
            log.add(BAD_LINE, path, number, f"expected '<image path> <class index>', got {text[:80]!r}")
            continue
        key, raw = parts
        try:
            label = int(raw)
        except ValueError:
            log.add(BAD_LINE, path, number, f"class index {raw!r} is not an integer")
            continue
        if not 0 <= label < num_classes:
            log.add(LABEL_RANGE, path, number, f"class index {label} is outside the declared classes 0..{num_classes - 1}")
            continue
        out.append((key, label, number))
    return out


def parse_keys(path: Path, what: str, log: IssueLog) -> list[tuple[str, int]]:
    """(key, line) of a file listing one relative image path per line."""
    out: list[tuple[str, int]] = []
    for number, text in read_lines(path, what, log):
        parts = text.split()
        if len(parts) != 1:
            log.add(BAD_LINE, path, number, f"expected one image path per line, got {text[:80]!r}")
            continue
        out.append((parts[0], number))
    return out


@dataclass
class SplitIndex:
    """The images of one split, by path relative to the data root, with labels and where each was listed.

    `labels` are the clean labels (UNKNOWN = -1 where nobody checked them); `noisy_labels` the labels the dataset
    ships for training, when they differ from clean ones. `sources[i]` and `lines[i]` name the annotation file and
    line that listed image i (for error messages).
    """

    relpaths: list[str]
    labels: np.ndarray
    sources: list[str]
    lines: np.ndarray
    noisy_labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.relpaths)

    def where(self, i: int) -> str:
        """'file:line' that listed image i ('folder' for images found by listing a folder, line 0)."""
        line = int(self.lines[i])
        return f"{self.sources[i]}:{line}" if line > 0 else self.sources[i]

    def take(self, keep: np.ndarray | Sequence[int]) -> SplitIndex:
        """The entries at positions `keep` (a boolean mask or indices), in order."""
        keep = np.asarray(keep)
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        return SplitIndex(
            relpaths=[self.relpaths[i] for i in idx],
            labels=self.labels[idx],
            sources=[self.sources[i] for i in idx],
            lines=self.lines[idx],
            noisy_labels=None if self.noisy_labels is None else self.noisy_labels[idx],
        )

    def selection_labels(self) -> np.ndarray:
        """The labels that per-class limits count by: the noisy ones where the split has them."""
        return self.noisy_labels if self.noisy_labels is not None else self.labels

    def digest(self) -> str:
        """SHA-256 of the paths and labels: different selections of a dataset hash differently."""
        h = hashlib.sha256()
        h.update("\n".join(self.relpaths).encode())
        h.update(self.labels.astype(np.int64).tobytes())
        if self.noisy_labels is not None:
            h.update(self.noisy_labels.astype(np.int64).tobytes())
        return h.hexdigest()


def make_split(entries: Sequence[tuple[str, int, int]], source: str, noisy: Sequence[int] | None = None) -> SplitIndex:
    """A SplitIndex from (relpath, clean label, line) triples all listed in `source`."""
    return SplitIndex(
        relpaths=[e[0] for e in entries],
        labels=np.asarray([e[1] for e in entries], dtype=np.int64).reshape(-1),
        sources=[source] * len(entries),
        lines=np.asarray([e[2] for e in entries], dtype=np.int64).reshape(-1),
        noisy_labels=None if noisy is None else np.asarray(noisy, dtype=np.int64).reshape(-1),
    )


def select(split: SplitIndex, max_per_class: int | None, limit: int | None) -> SplitIndex:
    """At most `max_per_class` images per class (the first ones listed), then at most `limit` in all.

    `limit` keeps images evenly spread over the whole list (indices round(linspace(0, n - 1, limit))), so a small
    limit still samples every part of a list that is ordered by class. Both are deterministic.
    """
    if max_per_class is not None:
        labels = split.selection_labels()
        keep = np.zeros(len(split), dtype=bool)
        seen: Counter[int] = Counter()
        for i, label in enumerate(labels.tolist()):
            if seen[label] < max_per_class:
                seen[label] += 1
                keep[i] = True
        split = split.take(keep)
    if limit is not None and len(split) > limit:
        split = split.take(np.unique(np.round(np.linspace(0, len(split) - 1, limit)).astype(np.int64)))
    return split


def check_positive(dataset: str, name: str, value: object) -> None:
    """ConfigError unless `value` is None or a positive int."""
    from lnlbench.errors import ConfigError

    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{dataset}: option {name} must be a positive integer, got {value!r}")


def exists_many(paths: Sequence[Path], workers: int = 16) -> np.ndarray:
    """Boolean array: which files exist (stat calls in a thread pool, which helps on network file systems)."""
    if len(paths) < 2048:
        return np.fromiter((os.path.isfile(p) for p in paths), dtype=bool, count=len(paths))
    chunk = 4096
    parts = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = list(pool.map(lambda ps: [os.path.isfile(p) for p in ps], parts))
    return np.asarray([x for part in found for x in part], dtype=bool)


def drop_missing(
    split: SplitIndex, root: Path, log: IssueLog, known: Callable[[str], bool] | None = None
) -> SplitIndex:
    """Entries whose image file exists (or that `known` says are available elsewhere, e.g. in the cache).

    A missing image is reported to `log` naming the annotation file and line that listed it.
    """
    todo = [i for i, rel in enumerate(split.relpaths) if known is None or not known(rel)]
    found = exists_many([root / split.relpaths[i] for i in todo])
    keep = np.ones(len(split), dtype=bool)
    for i, ok in zip(todo, found.tolist()):
        if not ok:
            line = int(split.lines[i]) or None
            log.add(MISSING_IMAGE, split.sources[i], line, f"lists {split.relpaths[i]} but {root / split.relpaths[i]} does not exist")
            keep[i] = False
    return split if keep.all() else split.take(keep)
