"""ImageNet synsets (WordNet ids) in ILSVRC2012 class-index order, and the files that map images or ids to them.

WebVision 1.0 queried the same 1,000 concepts as ILSVRC2012 and numbers them the same way: WebVision class k is
ImageNet class k, the k-th synset in sorted WordNet-id order (`info/synsets.txt` in the WebVision download lists
them, one `<wnid> <words>` per line, as does `LOC_synset_mapping.txt` in the Kaggle ImageNet download). The
mini-WebVision protocol (Jiang et al. 2018, MentorNet; DivideMix) keeps classes 0..49, listed in
`MINI_WEBVISION_SYNSETS`; the full list of 1,000 comes from timm's copy of the ILSVRC2012 synsets.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from lnlbench.errors import DataError

NUM_IMAGENET_CLASSES = 1000
WNID = re.compile(r"^n\d{8}$")

# ImageNet classes 0..49 = mini-WebVision's 50 classes: (WordNet id, first lemma). Checked against timm's
# ImageNetInfo in tests/test_webvision.py.
MINI_WEBVISION_SYNSETS: tuple[tuple[str, str], ...] = (
    ("n01440764", "tench"),
    ("n01443537", "goldfish"),
    ("n01484850", "great white shark"),
    ("n01491361", "tiger shark"),
    ("n01494475", "hammerhead"),
    ("n01496331", "electric ray"),
    ("n01498041", "stingray"),
    ("n01514668", "cock"),
    ("n01514859", "hen"),
    ("n01518878", "ostrich"),
    ("n01530575", "brambling"),
    ("n01531178", "goldfinch"),
    ("n01532829", "house finch"),
    ("n01534433", "junco"),
    ("n01537544", "indigo bunting"),
    ("n01558993", "robin"),
    ("n01560419", "bulbul"),
    ("n01580077", "jay"),
    ("n01582220", "magpie"),
    ("n01592084", "chickadee"),
    ("n01601694", "water ouzel"),
    ("n01608432", "kite"),
    ("n01614925", "bald eagle"),
    ("n01616318", "vulture"),
    ("n01622779", "great grey owl"),
    ("n01629819", "European fire salamander"),
    ("n01630670", "common newt"),
    ("n01631663", "eft"),
    ("n01632458", "spotted salamander"),
    ("n01632777", "axolotl"),
    ("n01641577", "bullfrog"),
    ("n01644373", "tree frog"),
    ("n01644900", "tailed frog"),
    ("n01664065", "loggerhead"),
    ("n01665541", "leatherback turtle"),
    ("n01667114", "mud turtle"),
    ("n01667778", "terrapin"),
    ("n01669191", "box turtle"),
    ("n01675722", "banded gecko"),
    ("n01677366", "common iguana"),
    ("n01682714", "American chameleon"),
    ("n01685808", "whiptail"),
    ("n01687978", "agama"),
    ("n01688243", "frilled lizard"),
    ("n01689811", "alligator lizard"),
    ("n01692333", "Gila monster"),
    ("n01693334", "green lizard"),
    ("n01694178", "African chameleon"),
    ("n01695060", "Komodo dragon"),
    ("n01697457", "African crocodile"),
)


def imagenet_synsets() -> list[tuple[str, str]]:
    """The 1,000 ILSVRC2012 classes as (wnid, first lemma), in class-index order (sorted WordNet ids)."""
    try:
        from timm.data import ImageNetInfo
    except ImportError:  # timm is a dependency; this only guards against a broken install
        return list(MINI_WEBVISION_SYNSETS)
    info = ImageNetInfo()
    return [(info.index_to_label_name(k), info.index_to_description(k).split(",")[0].strip()) for k in range(1000)]


def first_synsets(n: int) -> list[tuple[str, str]]:
    """ImageNet classes 0..n-1 as (wnid, lemma); the embedded table serves n <= 50 without timm."""
    if n <= len(MINI_WEBVISION_SYNSETS):
        return list(MINI_WEBVISION_SYNSETS[:n])
    table = imagenet_synsets()
    if n > len(table):
        raise DataError(f"ImageNet has {NUM_IMAGENET_CLASSES} classes; {n} were asked for")
    return table[:n]


def read_synset_file(path: Path, log=None) -> list[tuple[str, str]]:
    """(wnid, first word) per line of a synset list: WebVision `info/synsets.txt` or Kaggle
    `LOC_synset_mapping.txt` ('n01440764 tench, Tinca tinca').

    A malformed line raises DataError naming it, or, given an `IssueLog`, is reported to it and skipped.
    """
    out: list[tuple[str, str]] = []
    if not path.is_file():
        raise DataError(f"synset list {path} does not exist")
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text:
                continue
            wnid, _, words = text.partition(" ")
            if not WNID.match(wnid):
                message = f"expected '<wnid> <words>' with a WordNet id like n01440764, got {text[:60]!r}"
                if log is None:
                    raise DataError(f"{path}:{number}: {message}")
                log.add("bad-line", path, number, message)
                continue
            out.append((wnid, words.split(",")[0].strip() or wnid))
    return out


def imagenet_order_problem(listed: list[tuple[str, str]], n: int) -> tuple[int | None, str] | None:
    """(line, message) where a synset list departs from ILSVRC2012's class order in its first n entries, else None.

    Lines are counted among the non-blank ones.
    """
    expected = first_synsets(min(n, NUM_IMAGENET_CLASSES))
    if len(listed) < len(expected):
        return None, f"lists {len(listed)} synsets; {len(expected)} classes need at least that many"
    for k, ((got, _), (want, name)) in enumerate(zip(listed, expected)):
        if got != want:
            return k + 1, (
                f"class {k} is {got}, but ImageNet (ILSVRC2012) class {k} is {want} ({name}); WebVision and "
                f"ILSVRC2012 number their classes in the same sorted-wnid order: use the synsets.txt that came with "
                f"WebVision 1.0 (info/synsets.txt)"
            )
    return None


def check_imagenet_order(listed: list[tuple[str, str]], path: Path, n: int) -> None:
    """DataError naming the first line where a synset list departs from ILSVRC2012's class order (first n)."""
    problem = imagenet_order_problem(listed, n)
    if problem is not None:
        line, message = problem
        raise DataError(f"{path}{f':{line}' if line else ''}: {message}")


def unique_names(synsets: list[tuple[str, str]]) -> list[str]:
    """Class names from lemmas, with the wnid appended where a lemma repeats (ImageNet has a few, e.g. 'crane')."""
    counts: dict[str, int] = {}
    for _, name in synsets:
        counts[name] = counts.get(name, 0) + 1
    return [name if counts[name] == 1 else f"{name} ({wnid})" for wnid, name in synsets]


def read_devkit_meta(path: Path) -> dict[int, str]:
    """ILSVRC2012_ID (1..1000) -> wnid from the devkit's `data/meta.mat` (ILSVRC2012_devkit_t12.tar.gz).

    The devkit's ids are NOT the sorted-wnid class indices; `ILSVRC2012_validation_ground_truth.txt` is written
    in them, so it needs this file to be read.
    """
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(
            f"ILSVRC2012 devkit file {path} does not exist; the labels in ILSVRC2012_validation_ground_truth.txt "
            f"are devkit ids that need data/meta.mat from ILSVRC2012_devkit_t12.tar.gz"
        )
    try:
        records = loadmat(str(path), squeeze_me=True)["synsets"]
        out = {}
        for rec in records:
            if int(rec["num_children"]) == 0:
                out[int(rec["ILSVRC2012_ID"])] = str(rec["WNID"])
    except Exception as exc:  # scipy raises several types for a truncated or foreign .mat
        raise DataError(f"cannot read the ILSVRC2012 devkit synsets from {path} ({type(exc).__name__}: {exc})") from None
    if len(out) != NUM_IMAGENET_CLASSES:
        raise DataError(f"{path} lists {len(out)} leaf synsets; the ILSVRC2012 devkit has {NUM_IMAGENET_CLASSES}")
    return out


def read_loc_val_solution(path: Path) -> dict[str, tuple[str, int]]:
    """Image id -> (wnid, line) from Kaggle's `LOC_val_solution.csv` ('ImageId,PredictionString'; the first word of
    PredictionString is the image's synset)."""
    out: dict[str, tuple[str, int]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
            raise DataError(f"{path}:1: expected the header 'ImageId,PredictionString' of Kaggle's LOC_val_solution.csv")
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            words = row[1].split() if len(row) > 1 else []
            if not words or not WNID.match(words[0]):
                raise DataError(f"{path}:{number}: expected '<image id>,<wnid> <box>...', got {','.join(row)[:80]!r}")
            out[row[0].strip()] = (words[0], number)
    return out
