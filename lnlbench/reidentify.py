"""Move records of an older schema to content-addressed run ids, without re-running them.

A schema-1 run id named its data by the dataset's name and a weight file by its file name. Re-identifying reads the
data and weights the run's `config.json` points to, checks that they are what the run used (the noisy labels made
from the data must hash to the record's `labels_sha256`, the weights to its `weights_sha256`), and writes the record
under its schema-2 id, with what cannot be known any more said plainly: contention and code hash unknown, and the
record's provenance under `reidentified`.

Cost is re-charged where the records themselves show what was measured: a run that read its features from a cache
filled by another run of the same directory (same data, backbone, weights, resolution, precision) is charged that
run's measured extraction, marked as charged on re-identification.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lnlbench
from lnlbench.errors import ConfigError
from lnlbench.config import SCHEMA, RunConfig, RunDir, write_json_atomic
from lnlbench.status import old_schema_dirs, read_json

CACHE_HIT_SHARE = 0.5  # a features phase under half of the group's largest is a cache read, not an extraction


@dataclass
class Moved:
    """One re-identified run."""

    old_id: str
    new_id: str
    method: str
    charged_features_s: float | None  # extraction charged from a sibling run (None: none charged)


def _feature_key(rec: dict[str, Any], fingerprint: str, weights: str | None) -> tuple:
    precision = (rec.get("precision") or {}).get("precision")
    return (fingerprint, rec["config"].get("backbone"), weights, rec["config"].get("image_size"), precision)


def _new_config(old: dict[str, Any], data_root: str | None, cache_dir: Path | None) -> RunConfig:
    from lnlbench.data.base import load_dataset
    from lnlbench.fingerprint import dataset_fingerprint
    from lnlbench.models import weights_sha256

    fields = {k: v for k, v in old.items() if k not in ("schema", "run_id")}
    if data_root is not None:
        fields["data_root"] = data_root
    fields["data_fingerprint"] = dataset_fingerprint(
        fields["dataset"], fields.get("data_root"), fields.get("dataset_options") or {}, cache_dir,
        load=lambda: load_dataset(fields["dataset"], fields.get("data_root"), **(fields.get("dataset_options") or {})),
    )
    fields["weights_sha256"] = weights_sha256(fields["backbone"], fields["weights"])
    return RunConfig(**{k: v for k, v in fields.items() if k in RunConfig.__dataclass_fields__})


def _check_same_inputs(config: RunConfig, record: dict[str, Any], cache_dir: Path | None) -> None:
    """Raise ConfigError unless the data and weights found now are the ones the record was made with."""
    from lnlbench.data.base import load_dataset
    from lnlbench.harness import make_noisy_labels

    used = (record.get("backbone") or {}).get("weights_sha256")
    if used != config.weights_sha256:
        raise ConfigError(
            f"run {record.get('run_id')}: the weights found now (SHA-256 {config.weights_sha256}) are not the ones it "
            f"used ({used}); re-identify it where those weights are installed, or re-run it"
        )
    data = load_dataset(config.dataset, config.data_root, **config.dataset_options)
    labels = make_noisy_labels(config, data, cache_dir, config.data_fingerprint)
    expected = (record.get("noise") or {}).get("labels_sha256")
    if labels.sha256 != expected:
        raise ConfigError(
            f"run {record.get('run_id')}: the data under {config.data_root} gives noisy labels {labels.sha256[:12]}, "
            f"the record's were {str(expected)[:12]}: this is not the data the run used; pass --data-root to the "
            "right copy, or re-run it"
        )


def reidentify(
    out: Path | str,
    *,
    data_root: str | None = None,
    cache_dir: Path | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> list[Moved]:
    """Re-identify every finished older-schema run under `out`; failed ones are left for a sweep to recompute."""
    out = Path(out)
    plans: list[tuple[Path, RunConfig, dict[str, Any]]] = []
    for run_dir in old_schema_dirs(out):
        record = read_json(run_dir / "result.json")
        old_config = read_json(run_dir / "config.json")
        if record is None or record.get("status") != "done" or old_config is None:
            echo(f"skip {run_dir.name}: not a finished run with its config.json (a sweep recomputes it)")
            continue
        config = _new_config(old_config, data_root, cache_dir)
        _check_same_inputs(config, record, cache_dir)
        plans.append((run_dir, config, record))

    # Which run of each feature-cache group measured the extraction the others read from the cache.
    extraction: dict[tuple, tuple[float, str]] = {}
    for _, config, record in plans:
        seconds = ((record.get("cost") or {}).get("phases") or {}).get("features")
        if isinstance(seconds, (int, float)):
            key = _feature_key(record, config.data_fingerprint or "", config.weights_sha256)
            if seconds > extraction.get(key, (0.0, ""))[0]:
                extraction[key] = (float(seconds), record["run_id"])

    moved: list[Moved] = []
    for run_dir, config, record in plans:
        new = _upgrade_record(record, config, extraction)
        charged = next((c["seconds"] for c in new["cost"]["charges"] if c["phase"] == "features"), None)
        moved.append(Moved(record["run_id"], config.run_id, config.method, charged))
        echo(f"{record['run_id']} -> {config.run_id} ({config.method}"
             + (f", features charged {charged:.1f} s from the cache's extraction" if charged is not None else "") + ")")
        if dry_run:
            continue
        target = RunDir(out, config.run_id)
        if target.path.exists() and target.path != run_dir:
            raise ConfigError(f"{target.path} exists already; move it away before re-identifying {run_dir}")
        target.path.mkdir(parents=True)
        for item in run_dir.iterdir():
            if item.name not in ("config.json", "result.json") and item.is_file():
                shutil.copy2(item, target.path / item.name)
        write_json_atomic(target.config, config.to_json())
        write_json_atomic(target.result, new)
        shutil.rmtree(run_dir)
    return moved


def _upgrade_record(record: dict[str, Any], config: RunConfig, extraction: dict[tuple, tuple[float, str]]) -> dict:
    new = dict(record)
    cost = dict(record.get("cost") or {})
    phases = dict(cost.get("phases") or {})
    charges: list[dict[str, Any]] = []
    own = phases.get("features")
    key = _feature_key(record, config.data_fingerprint or "", config.weights_sha256)
    if isinstance(own, (int, float)) and key in extraction:
        seconds, by = extraction[key]
        if by != record["run_id"] and own < CACHE_HIT_SHARE * seconds:
            charges.append({"phase": "features", "seconds": seconds, "replaces_s": float(own),
                            "source": f"feature cache filled by run {by} (charged on re-identification)"})
    measured_wall = cost.get("wall_clock_s")
    cost["phases_measured"] = dict(phases)
    cost["wall_clock_measured_s"] = measured_wall
    for c in charges:
        phases[c["phase"]] = phases.get(c["phase"], 0.0) + c["seconds"] - c["replaces_s"]
    cost["phases"] = phases
    cost["charges"] = charges
    if isinstance(measured_wall, (int, float)):
        cost["wall_clock_s"] = measured_wall + sum(c["seconds"] - c["replaces_s"] for c in charges)
    cost.setdefault("contended", None)  # not recorded by schema 1
    cost.setdefault("contention", None)
    new["cost"] = cost
    new["schema"] = SCHEMA
    new["run_id"] = config.run_id
    new["config"] = config.identity()
    new["data_fingerprint"] = config.data_fingerprint
    new.setdefault("numerics", None)  # the thread count was not recorded by schema 1
    env = dict(record.get("env") or {})
    env.setdefault("code_sha256", None)
    env.setdefault("git_dirty", None)
    new["env"] = env
    new["reidentified"] = {
        "from_run_id": record["run_id"],
        "from_schema": record.get("schema"),
        "by": f"lnlbench {lnlbench.__version__}",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "checked": "noisy labels re-made from the data hash to the record's labels_sha256; weights to its "
                   "weights_sha256",
        "unknown": "contention, CPU thread count and code hash were not recorded by schema 1",
    }
    return new
