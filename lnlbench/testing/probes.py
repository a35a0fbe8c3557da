"""Tiny real runs the conformance kit compares: what each saw, and the patches that interrupt or perturb them.

Every run goes through `lnlbench.harness.execute_run` on the embedded digits (1,297 real training images), timm's
`test_efficientnet` with random weights at 8 px, on the CPU, so a run takes about a second. The patches are the ones
the resume tests use (tests/test_resume_methods.py): an exception raised right after a checkpoint is written, which
the harness records as a failed attempt and leaves the checkpoints for the next one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from lnlbench import engine, harness
from lnlbench.config import RunConfig
from lnlbench.data.base import Dataset, Split, load_dataset
from lnlbench.plugin_manager import dataset_registry

DATASET, NOISE, RATE = "digits", "sym", 0.4
BACKBONE, WEIGHTS, IMAGE_SIZE = "test_efficientnet", "random", 8
# Record fields that measure time or the machine, not what the method computed; dropped before records are compared.
TIMING_FIELDS = ("cost", "env")
# Counts, not times: these must match too (MethodContext checkpoints the per-phase counts, so a resumed run counts
# every attempt's images in the phase that trained on them).
KEPT_COST_FIELDS = ("images_seen", "images_by_phase")


class KitInterruption(Exception):
    """Raised right after a checkpoint is written, as a kill or a pre-emption would stop the run there."""


@dataclass
class Probe:
    """One run and what the kit observed of it."""

    record: dict[str, Any]  # as returned (after the harness's schema conformance)
    raw: dict[str, Any] | None  # as the method left it, before the schema check turned a bad one into a failure
    result_path: Path
    context: Any = None  # the MethodContext the method received
    checkpoints: list[tuple[str, int]] = field(default_factory=list)  # (phase, epoch) of each checkpoint written
    seeded: list[tuple[str, int]] = field(default_factory=list)  # (phase, epoch) of each epoch the run started

    @property
    def done(self) -> bool:
        return self.record.get("status") == "done"


def probe_config(method: str, hparams: dict[str, Any], cache: Path, seed: int = 0) -> RunConfig:
    """The kit's run configuration of `method` (its budget and the caller's overrides in `hparams`)."""
    return harness.resolve_config(dataset=DATASET, noise=NOISE, rate=RATE, method=method, backbone=BACKBONE,
                                  weights=WEIGHTS, image_size=IMAGE_SIZE, hparams=hparams, seed=seed,
                                  cache_dir=cache)


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    """`obj.name = value` for the duration of the block."""
    before = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, before)


def execute(config: RunConfig, out: Path, cache: Path, *, stop_after: str | None = None) -> Probe:
    """Run `config` into `out` on the CPU, observing it; with `stop_after`, interrupt after that phase's first epoch."""
    seen: dict[str, Any] = {"raw": None, "ctx": None}
    checkpoints: list[tuple[str, int]] = []
    seeded: list[tuple[str, int]] = []
    real_save, real_seed, real_conform, real_ctx = (engine.atomic_torch_save, engine.seed_epoch, harness.conforming,
                                                    harness.MethodContext)

    def save(obj: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        result = real_save(obj, path, *args, **kwargs)
        path = Path(path)
        if path.parent.name == "checkpoints" and isinstance(obj, dict) and "epoch" in obj:
            checkpoints.append((path.stem, int(obj["epoch"])))
            if stop_after is not None and path.stem == stop_after and int(obj["epoch"]) == 0:
                raise KitInterruption(f"stopped by the conformance kit after the first epoch of {stop_after}")
        return result

    def seed(seed_value: int, loop: str, epoch: int, *args: Any, **kwargs: Any) -> Any:
        seeded.append((loop, int(epoch)))
        return real_seed(seed_value, loop, epoch, *args, **kwargs)

    def conforming(record: dict[str, Any]) -> dict[str, Any]:
        seen["raw"] = json.loads(json.dumps(record, default=repr))
        return real_conform(record)

    def context(*args: Any, **kwargs: Any) -> Any:
        seen["ctx"] = real_ctx(*args, **kwargs)
        return seen["ctx"]

    with patched(engine, "atomic_torch_save", save), patched(engine, "seed_epoch", seed), \
            patched(harness, "conforming", conforming), patched(harness, "MethodContext", context):
        record = harness.execute_run(config, out, cache_dir=cache, device="cpu", verbose=False)
    return Probe(record, seen["raw"], Path(out) / config.run_id / "result.json", seen["ctx"], checkpoints, seeded)


def permutation_of_clean_labels(clean: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The clean labels shuffled across samples (a seeded permutation): same class counts, other samples clean."""
    order = torch.randperm(len(clean), generator=torch.Generator().manual_seed(seed))
    return clean[order]


@contextlib.contextmanager
def clean_labels_replaced(config: RunConfig, cache: Path, clean: torch.Tensor) -> Iterator[None]:
    """Runs in the block see `clean` as the training set's clean labels, with the noisy labels left as they were.

    The dataset reader itself is swapped (so a method that reloads the dataset sees the new labels too); the noisy
    labels and the data fingerprint are those of the real data, so the run id and what the method trains on stay.
    """
    reader = dataset_registry().get(config.dataset)
    data = load_dataset(config.dataset, config.data_root, **config.dataset_options)
    fingerprint = harness.check_data_fingerprint(config, data, cache)
    noisy = harness.make_noisy_labels(config, data, cache, fingerprint)
    changed = replace(data, train=Split(images=data.train.images, labels=clean))

    def load(*args: Any, **kwargs: Any) -> Dataset:
        return changed

    with patched(reader, "load", load), \
            patched(harness, "check_data_fingerprint", lambda *a, **k: fingerprint), \
            patched(harness, "make_noisy_labels", lambda *a, **k: noisy):
        yield


def comparable(record: dict[str, Any], *, drop_selection_scores: bool = False) -> dict[str, Any]:
    """The record without its timing and machine fields (`cost` keeps its image counts)."""
    out = {k: v for k, v in record.items() if k not in TIMING_FIELDS}
    out["cost"] = {k: record.get("cost", {}).get(k) for k in KEPT_COST_FIELDS}
    if drop_selection_scores:
        out = json.loads(json.dumps(out))
        for network in (out.get("metrics") or {}).get("selection") or {}:
            entry = out["metrics"]["selection"][network]
            for scores in [entry.get("final") or {}, *entry.get("by_epoch", [])]:
                for key in ("precision", "recall", "subset_noise_rate", "scored_on"):
                    scores.pop(key, None)
    return out


def first_difference(a: Any, b: Any, path: str = "record") -> str | None:
    """Where two JSON values first differ, as 'path: a vs b'; None when they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{path}.{key}: {'missing' if key not in a else _short(a[key])} vs " \
                       f"{'missing' if key not in b else _short(b[key])}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} entries"
        return None
    if a != b and not (isinstance(a, float) and isinstance(b, float) and a != a and b != b):  # NaN == NaN here
        return f"{path}: {_short(a)} vs {_short(b)}"
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 80 else text[:77] + "..."


def exposed_clean_labels(ctx: Any, clean: torch.Tensor, noisy: torch.Tensor) -> list[str]:
    """Attributes of the context (and of the objects it holds, one level down) that equal the clean labels or the
    clean mask; empty when it exposes neither."""
    mask = noisy == clean
    found: list[str] = []

    def leaks(value: Any) -> bool:
        if not isinstance(value, torch.Tensor) or value.shape != clean.shape:
            return False
        v = value.detach().cpu()
        return (v.dtype != torch.bool and torch.equal(v.long(), clean)) or \
            (v.dtype == torch.bool and torch.equal(v, mask))

    for name, value in vars(ctx).items():
        if leaks(value):
            found.append(f"ctx.{name}")
        elif hasattr(value, "__dict__") and not isinstance(value, (torch.nn.Module, type)):
            found += [f"ctx.{name}.{sub}" for sub, inner in vars(value).items() if leaks(inner)]
    return found
