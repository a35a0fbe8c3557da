"""Exact resume for every built-in method: stop a run after the first epoch of a phase, resume it, and compare its
record with an uninterrupted run of the same configuration (identical on CPU).

Runs go through `lnlbench.harness.execute_run` on the embedded digits with timm's tiny `test_efficientnet` (random
weights, 8 px). The interruption is an exception raised right after a checkpoint of the chosen phase is written, which
the runner records as a failed run and leaves the checkpoints for the next attempt, as after a crash or a pre-emption.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lnlbench import engine
from lnlbench.plugin_manager import method_registry
from lnlbench.harness import execute_run, resolve_config

# Budgets small enough for seconds per run; every method still runs more than one epoch of each phase it has.
TINY: dict[str, dict] = {
    "lp": {"epochs": 3, "batch_size": 256},
    "fft": {"epochs": 2, "batch_size": 256},
    "turn": {"lp_epochs": 2, "ft_epochs": 2, "ft_batch_size": 256},
    "coteaching": {"epochs": 2, "batch_size": 256},
    "dividemix": {"epochs": 4, "batch_size": 128},
    "gce": {"epochs": 2, "batch_size": 256},
    "sce": {"epochs": 2, "batch_size": 256},
    "elr": {"epochs": 2, "batch_size": 256},
    "jocor": {"epochs": 2, "batch_size": 256},
    "unicon": {"epochs": 3, "warmup_epochs": 1, "batch_size": 128},
}
# (method, phase whose first epoch the run is stopped after)
CASES = [
    ("lp", "linear_probe"),
    ("fft", "finetune"),
    ("turn", "linear_probe"),
    ("turn", "finetune"),
    ("coteaching", "train"),
    ("dividemix", "warmup"),
    ("dividemix", "train"),
    ("gce", "finetune"),
    ("sce", "finetune"),
    ("elr", "finetune"),
    ("jocor", "train"),
    ("unicon", "train"),  # its one-epoch warm-up resumes through the same loop as DivideMix's (tested above)
]


def builtin_methods() -> set[str]:
    """The methods this package registers itself (not third-party plugins)."""
    registry = method_registry()
    return {name for name in registry.names() if registry.get(name).source == "lnlbench"}


class Interrupted(Exception):
    """Raised after a checkpoint is written, as a kill would stop the run there."""



def config_for(method: str):
    """The run configuration of `method` on digits at its tiny budget."""
    return resolve_config(dataset="digits", noise="sym", rate=0.4, method=method, backbone="test_efficientnet",
                          weights="random", image_size=8, hparams=TINY[method])


def comparable(record: dict) -> str:
    """What must not change with an interruption: every metric, the hyperparameters and the images seen, in all and
    per phase (a resumed phase counts its earlier attempts' images too, else its images/s is wrong)."""
    return json.dumps({"metrics": record["metrics"], "hparams": record["hparams"],
                       "images_seen": record["cost"]["images_seen"],
                       "images_by_phase": record["cost"]["images_by_phase"]}, sort_keys=True)


def test_every_builtin_method_is_covered():
    assert builtin_methods() == set(TINY)
    assert {m for m, _ in CASES} == set(TINY)


@pytest.mark.parametrize(("method", "phase"), CASES, ids=[f"{m}-{p}" for m, p in CASES])
def test_interrupted_run_resumes_to_the_uninterrupted_record(tmp_path, monkeypatch, method, phase):
    config = config_for(method)
    reference = execute_run(config, tmp_path / "straight", cache_dir=tmp_path / "cache", device="cpu", verbose=False)
    assert reference["status"] == "done", reference.get("error")

    real_save = engine.atomic_torch_save
    stops: list[Path] = []

    def save_then_stop(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        path = Path(path)
        if path.parent.name == "checkpoints" and path.stem == phase and not stops:
            stops.append(path)
            raise Interrupted(f"stopped after the first epoch of {phase}")

    monkeypatch.setattr(engine, "atomic_torch_save", save_then_stop)
    out = tmp_path / "interrupted"
    first = execute_run(config, out, cache_dir=tmp_path / "cache", device="cpu", verbose=False)
    assert stops, f"{method} never checkpointed phase {phase!r}"
    assert first["status"] == "failed" and "Interrupted" in first["error"]
    assert engine.safe_torch_load(stops[0])["epoch"] == 0  # stopped after the first epoch, not later

    monkeypatch.setattr(engine, "atomic_torch_save", real_save)
    real_seed = engine.seed_epoch
    started: list[tuple[str, int]] = []

    def seed_spy(seed, loop, epoch, *args, **kwargs):
        started.append((loop, epoch))
        return real_seed(seed, loop, epoch, *args, **kwargs)

    monkeypatch.setattr(engine, "seed_epoch", seed_spy)
    resumed = execute_run(config, out, cache_dir=tmp_path / "cache", device="cpu", verbose=False)
    assert resumed["status"] == "done", resumed.get("error")
    assert [e for loop, e in started if loop == phase][:1] == [1]  # it resumed at epoch 2; it did not start over
    assert comparable(resumed) == comparable(reference)
