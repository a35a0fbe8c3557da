"""Noise from users' files: the `file` noise model (noisy labels) and `read_asym_map` (a class map for `asym`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from lnlbench.hashing import file_sha256
from lnlbench.errors import ConfigError, DataError
from lnlbench.noise.base import NoiseInputs, as_labels, register_noise_model

LABEL_FILE_SUFFIXES = (".npy", ".pt", ".csv")
CSV_LABEL_COLUMNS = ("noisy_label", "label")  # tried in this order when the CSV has a header
PT_LABEL_KEYS = ("noisy_label", "label", "labels")  # tried in this order when a .pt file holds a dict


def _existing_file(path: str | Path | None, what: str, fix: str) -> Path:
    if path is None:
        raise ConfigError(f"{what} needs a file; {fix}")
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"{what}: {file} does not exist or is not a file; {fix}")
    return file


def _parse_int(text: str, file: Path, line: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise DataError(
            f"{file}, line {line}: {text.strip()!r} is not an integer class index; write one integer label per line"
        ) from None


def _read_csv_labels(file: Path) -> np.ndarray:
    with file.open(newline="") as handle:
        rows = [(number, row) for number, row in enumerate(csv.reader(handle), start=1) if any(c.strip() for c in row)]
    if not rows:
        raise DataError(f"{file} holds no labels; write one integer label per line")
    first = [cell.strip() for cell in rows[0][1]]
    column = 0
    if not all(cell.lstrip("-").isdigit() for cell in first):  # a header row
        names = [name.lower() for name in first]
        found = [name for name in CSV_LABEL_COLUMNS if name in names]
        if not found:
            raise DataError(
                f"{file} has header {first} without a label column; name the column "
                f"{' or '.join(CSV_LABEL_COLUMNS)}, or write one integer label per line without a header"
            )
        column = names.index(found[0])
        rows = rows[1:]
    elif len(first) > 1:
        raise DataError(
            f"{file} has {len(first)} columns and no header; add a header naming the label column "
            f"({' or '.join(CSV_LABEL_COLUMNS)}) or write one label per line"
        )
    values = []
    for number, row in rows:
        if column >= len(row):
            raise DataError(f"{file}, line {number}: the label column is missing; give every row a label")
        values.append(_parse_int(row[column], file, number))
    return np.asarray(values, dtype=np.int64)


def _read_pt_labels(file: Path) -> Any:
    import torch

    try:
        content = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for bad or unsafe pickles
        raise DataError(
            f"{file} could not be read as a torch file of labels ({type(error).__name__}: {error}); "
            "save a 1-D integer tensor with torch.save(torch.as_tensor(labels, dtype=torch.int64), path)"
        ) from None
    if isinstance(content, dict):
        keys = [key for key in PT_LABEL_KEYS if key in content]
        if not keys:
            raise DataError(
                f"{file} holds a dict with keys {sorted(map(str, content))} but none of {list(PT_LABEL_KEYS)}; "
                "save the labels under one of those keys, or save the tensor itself"
            )
        content = content[keys[0]]
    if isinstance(content, (list, tuple)):
        content = np.asarray(content)
    if not (hasattr(content, "detach") or isinstance(content, np.ndarray)):
        raise DataError(f"{file} holds a {type(content).__name__}, not a tensor of labels; save a 1-D integer tensor")
    return content


def read_label_file(path: str | Path) -> Any:
    """Labels as stored in a .npy, .pt or .csv file (not yet checked for dtype, length or range)."""
    fix = f"pass a {', '.join(LABEL_FILE_SUFFIXES)} file of noisy labels, one per training sample"
    file = _existing_file(path, "file noise", fix)
    suffix = file.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(file, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise DataError(
                f"{file} is not a readable .npy array ({error}); save the labels with numpy.save(path, labels)"
            ) from None
    if suffix == ".pt":
        return _read_pt_labels(file)
    if suffix == ".csv":
        return _read_csv_labels(file)
    raise ConfigError(f"file noise: {file} has suffix {file.suffix!r}; {fix}")


def _file_cache_extras(inputs: NoiseInputs, num_classes: int) -> dict[str, Any]:
    file = _existing_file(inputs.path, "file noise", "pass path=... (on the command line, the noisy-label file)")
    return {"file_sha256": file_sha256(file)}


def _file_cache_extras_with_subset(inputs: NoiseInputs, num_classes: int) -> dict[str, Any]:
    from lnlbench.noise.base import labels_sha256

    extras = _file_cache_extras(inputs, num_classes)
    if inputs.indices is not None:
        extras["indices_sha256"] = labels_sha256(inputs.indices)
    return extras


@register_noise_model(
    "file",
    "noisy labels read from a file (.npy, .pt or .csv: one label per sample, or a CSV column label/noisy_label); "
    "with a training subset, a file for the full set is indexed by the samples' original indices; "
    "the rate is ignored",
    uses_rate=False,
    cache_extras=_file_cache_extras_with_subset,
)
def labels_from_file(
    clean: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator, inputs: NoiseInputs
) -> np.ndarray:
    labels = read_label_file(inputs.path)
    n = clean.shape[0]
    if inputs.indices is not None and np.shape(labels)[:1] != (n,):
        # a training subset (lnlbench.data.subset) and a file for the full set: take each sample's original index
        full = as_labels(labels, num_classes, f"noisy labels in {inputs.path}")
        index = np.asarray(inputs.indices, dtype=np.int64)
        if index.size and index.max() >= full.shape[0]:
            raise DataError(
                f"noisy labels in {inputs.path} hold {full.shape[0]} labels, but the training subset uses original "
                f"index {int(index.max())}; give one label per image of the full training set, or one per sample "
                f"of the subset"
            )
        return full[index]
    return as_labels(labels, num_classes, f"noisy labels in {inputs.path}", n=n)


def _map_int(value: Any, file: Path, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{file}: {where} {value!r} is not an integer class index; write class indices as integers")
    try:
        return int(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise ConfigError(
            f"{file}: {where} {value!r} is not an integer class index; write class indices as integers"
        ) from None


def read_asym_map(path: str | Path) -> dict[int, int]:
    """A {clean class: noisy class} map from JSON {"src": dst, ...} or CSV lines `src,dst` (optional header)."""
    fix = 'write JSON {"3": 5, "5": 3} or CSV lines such as 3,5'
    file = _existing_file(path, "asym noise map", fix)
    mapping: dict[int, int] = {}
    if file.suffix.lower() == ".json":
        try:
            content = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{file} is not valid JSON ({error}); {fix}") from None
        if not isinstance(content, dict):
            raise ConfigError(f"{file} holds a JSON {type(content).__name__}, not an object; {fix}")
        pairs = [(_map_int(k, file, "source class"), _map_int(v, file, "target class")) for k, v in content.items()]
    else:
        with file.open(newline="") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
        if rows and not rows[0][0].strip().lstrip("-").isdigit():
            rows = rows[1:]  # a header such as src,dst
        pairs = []
        for number, row in enumerate(rows, start=1):
            if len(row) != 2:
                raise ConfigError(f"{file}: row {number} has {len(row)} fields, not 2; {fix}")
            pairs.append((_map_int(row[0], file, "source class"), _map_int(row[1], file, "target class")))
    for src, dst in pairs:
        if src in mapping:
            raise ConfigError(f"{file} maps class {src} twice; give each source class one target")
        mapping[src] = dst
    if not mapping:
        raise ConfigError(f"{file} holds an empty map; {fix}")
    return mapping
