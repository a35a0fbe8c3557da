"""Find and read run records below result directories; flatten the usable ones into one row per run.

A run directory holds `config.json` from its start and `result.json` once it finished (status "done" or
"failed"). A `config.json` without `result.json` is an unfinished run (still running, killed, or never started).
Nothing is dropped silently: unreadable files and records of another schema are skipped with a warning that names
the file, failed and unfinished runs are listed.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lnlbench.errors import ConfigError
from lnlbench.hashing import canonical_json, json_digest
from lnlbench.record import record_schema, validate
from lnlbench.config import SCHEMA  # config.py needs only the standard library: no torch here

RECORD_SCHEMA = record_schema()

# Schemas the report still reads, flagged: schema 1 ids name the data by its dataset name only, its cost is
# measured rather than charged, and it records neither contention nor a code hash.
OLD_SCHEMAS = (1,)

# Config fields that vary between the repetitions averaged into one cell. The noise seed draws new noisy labels of
# the same model and rate; it is pooled with the training seed and every pooled group says how many draws it holds.
REPETITION_FIELDS = ("seed", "noise_seed")
# Config fields that place a group in a table cell rather than describing a variant of a method.
CELL_FIELDS = ("dataset", "backbone", "noise", "rate", "method")
REQUIRED_CONFIG = ("dataset", "noise", "rate", "method", "backbone")


@dataclass
class Scan:
    """What was found below the result directories."""

    runs: pd.DataFrame  # one row per finished ("done") run
    problems: list[dict[str, Any]] = field(default_factory=list)  # failed and unfinished runs
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"} for unusable files
    warnings: list[str] = field(default_factory=list)
    n_files: int = 0


def find_run_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(result.json paths, config.json paths of directories without a result.json) below `root`, sorted."""
    results: list[Path] = []
    unfinished: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names = set(filenames)
        if "result.json" in names:
            results.append(Path(dirpath) / "result.json")
        elif "config.json" in names:
            unfinished.append(Path(dirpath) / "config.json")
    return results, unfinished


def _canonical(obj: Any) -> str:
    return canonical_json(obj, compact=True)


def short_hash(obj: Any, n: int = 8) -> str:
    """First `n` hex digits of the SHA-256 of `obj`'s canonical (compact) JSON."""
    return json_digest(obj, n, compact=True)


def variant_fields(config: dict[str, Any], version: str) -> dict[str, str]:
    """Everything in a run's identity except the cell fields and the seeds, flattened to `name -> JSON value`."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if key in CELL_FIELDS or key in REPETITION_FIELDS or key == "schema":
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                out[f"{key}.{sub}"] = _canonical(v)
        else:
            out[key] = _canonical(value)
    out["lnlbench"] = _canonical(version)
    return out


def _number(value: Any) -> float:
    """A float, or NaN for anything that is not a finite-or-infinite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def flatten_record(rec: dict[str, Any], variants: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """One finished record as a flat row; raises ValueError naming what is missing.

    `variants` caches the variant fields per group key (they depend on the group only)."""
    config = rec.get("config")
    if not isinstance(config, dict):
        raise ValueError("it has no 'config' object")
    missing = [k for k in REQUIRED_CONFIG if k not in config]
    if missing:
        raise ValueError(f"its config lacks {', '.join(missing)}")
    metrics = rec.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError("status is 'done' but it has no 'metrics' object")
    acc = _number(metrics.get("test_acc"))
    if not math.isfinite(acc):
        raise ValueError(f"metrics.test_acc is {metrics.get('test_acc')!r}, not a number")
    best = _number(metrics.get("test_acc_best"))
    env = rec.get("env") if isinstance(rec.get("env"), dict) else {}
    version = str(env.get("lnlbench") or "unknown")
    identity = {k: v for k, v in config.items() if k not in REPETITION_FIELDS and k != "schema"}
    identity["lnlbench"] = version
    numerics = rec.get("numerics") if isinstance(rec.get("numerics"), dict) else {}
    if numerics.get("device_type") == "cpu":
        # CPU results depend on the thread count (reduction order): runs on different counts are never pooled.
        identity["cpu_threads"] = numerics.get("cpu_threads")
    noise = rec.get("noise") if isinstance(rec.get("noise"), dict) else {}
    cost = rec.get("cost") if isinstance(rec.get("cost"), dict) else {}
    device = str(cost.get("device") or "unknown")
    wall = _number(cost.get("wall_clock_s"))
    count = _number(cost.get("device_count"))
    count = 1.0 if not math.isfinite(count) else count
    gpu_hours = _number(cost.get("gpu_hours"))
    if not math.isfinite(gpu_hours):
        gpu_hours = count * wall / 3600 if device.startswith("cuda") else 0.0
    hparams = config.get("hparams") if isinstance(config.get("hparams"), dict) else {}
    group_key = short_hash(identity, 16)
    variants = {} if variants is None else variants
    if group_key not in variants:
        variants[group_key] = variant_fields(config, version)
    row: dict[str, Any] = {
        "run_id": str(rec.get("run_id") or short_hash(config, 16)),
        "dataset": str(config["dataset"]),
        "backbone": str(config["backbone"]),
        "weights": str(config.get("weights", "")),
        "method": str(config["method"]),
        "noise": str(config["noise"]),
        "noise_variant": noise_variant(config),
        "rate": float(config["rate"]),
        "noise_seed": config.get("noise_seed", 0),
        "seed": config.get("seed", rec.get("seed", 0)),
        "image_size": config.get("image_size"),
        "version": version,
        "group_key": group_key,
        "variant": variants[group_key],
        "hparams_json": _canonical(hparams),
        "hparams_hash": short_hash(hparams),
        "labels_sha256": str(noise.get("labels_sha256") or ""),
        "realized_rate": _number(noise.get("realized_rate")),
        "acc_final": acc,
        "acc_best": best if math.isfinite(best) else acc,
        "wall_clock_s": wall,
        "gpu_hours": gpu_hours,
        "device": device,
        "device_count": count,
        "peak_mem_mb": _number(cost.get("peak_mem_mb")),
        "images_seen": _number(cost.get("images_seen")),
        "schema": rec.get("schema"),
        "data_fingerprint": str(config.get("data_fingerprint") or rec.get("data_fingerprint") or ""),
        "n_train": _number(rec.get("n_train")),
        "cpu_threads": numerics.get("cpu_threads") if numerics.get("device_type") == "cpu" else None,
        "contended": cost.get("contended") if isinstance(cost.get("contended"), bool) else None,
        "code_sha256": str(env.get("code_sha256") or ""),
        "git_dirty": env.get("git_dirty") if isinstance(env.get("git_dirty"), bool) else None,
    }
    phases = cost.get("phases")
    if isinstance(phases, dict):
        for name, seconds in phases.items():
            row[f"phase.{name}"] = _number(seconds)
    selection = metrics.get("selection")
    if isinstance(selection, dict):
        for net, entry in selection.items():
            final = entry.get("final") if isinstance(entry, dict) else None
            if isinstance(final, dict):
                for key in ("precision", "recall", "fraction"):
                    row[f"sel.{net}.{key}"] = _number(final.get(key))
    return row


def noise_variant(config: dict[str, Any]) -> str:
    """The label set of a noise model that has several and no rate (CIFAR-N's 'worse', 'aggre', ...), else ''."""
    options = config.get("noise_options") if isinstance(config.get("noise_options"), dict) else {}
    variant = options.get("variant")
    return str(variant) if variant else ""


def _problem(kind: str, path: str, d: dict[str, Any], error: str) -> dict[str, Any]:
    config = d.get("config") if isinstance(d.get("config"), dict) else d
    return {
        "kind": kind,
        "run_id": str(d.get("run_id", "")),
        "method": str(config.get("method", "")),
        "dataset": str(config.get("dataset", "")),
        "backbone": str(config.get("backbone", "")),
        "noise": str(config.get("noise", "")),
        "rate": config.get("rate"),
        "seed": config.get("seed"),
        "noise_seed": config.get("noise_seed"),
        "error": error,
        "path": path,
    }


def _read_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def scan(dirs: list[Path]) -> Scan:
    """Read every record below `dirs`; raise ConfigError when a directory is missing or holds no run at all."""
    rows: list[dict[str, Any]] = []
    out = Scan(runs=pd.DataFrame())
    seen: dict[str, str] = {}
    variants: dict[str, dict[str, str]] = {}
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"result directory {root} does not exist; pass the --out directory of your runs")
        results, unfinished = find_run_files(root)
        if not results and not unfinished:
            raise ConfigError(
                f"no runs under {root} (no result.json or config.json below it); pass the --out directory "
                "given to `lnlbench run` or to the sweep"
            )
        out.n_files += len(results) + len(unfinished)
        for path in results:
            shown = str(path)
            try:
                rec = _read_json(path)
            except (OSError, ValueError) as exc:
                _skip(out, shown, f"unreadable or truncated JSON ({type(exc).__name__}: {exc})")
                continue
            if not isinstance(rec, dict):
                _skip(out, shown, "not a JSON object")
                continue
            if rec.get("schema") != SCHEMA and rec.get("schema") not in OLD_SCHEMAS:
                _skip(out, shown, f"record schema {rec.get('schema')!r}; this report reads schema {SCHEMA}")
                continue
            if rec.get("schema") == SCHEMA:
                problems = validate(rec, RECORD_SCHEMA)
                if problems:
                    _skip(out, shown, "does not follow the record schema (lnlbench/schemas/record.schema.json): "
                                      + "; ".join(problems[:5]))
                    continue
            status = rec.get("status")
            if status == "failed":
                out.problems.append(_problem("failed", shown, rec, str(rec.get("error") or "no error message")))
                continue
            if status != "done":
                out.problems.append(_problem("unfinished", shown, rec, f"status {status!r}"))
                continue
            try:
                row = flatten_record(rec, variants)
            except (ValueError, TypeError, KeyError) as exc:
                _skip(out, shown, f"malformed record: {exc}")
                continue
            if row["run_id"] in seen:
                out.warnings.append(
                    f"run {row['run_id']} appears twice ({seen[row['run_id']]} and {shown}); counted once"
                )
                continue
            seen[row["run_id"]] = shown
            row["path"] = shown
            rows.append(row)
        for path in unfinished:
            shown = str(path)
            try:
                cfg = _read_json(path)
            except (OSError, ValueError) as exc:
                _skip(out, shown, f"unreadable config.json of a run without result ({type(exc).__name__})")
                continue
            if not isinstance(cfg, dict) or "method" not in cfg or "dataset" not in cfg:
                continue  # a config.json of something other than an lnlbench run
            out.problems.append(
                _problem("unfinished", shown, cfg, "config.json without result.json: running, killed or not started")
            )
    out.runs = label_datasets(pd.DataFrame(rows))
    n_old = int((out.runs["schema"] != SCHEMA).sum()) if len(out.runs) else 0
    if n_old:
        out.warnings.append(
            f"{n_old} record(s) of an older schema (before schema {SCHEMA}): their run ids name the data by dataset "
            "name only, their cost is as measured (not charged for cached or resumed work), and they record neither "
            "contention nor a code hash; they are marked 'schema-old'. `lnlbench reidentify DIR` moves them to "
            "content-addressed ids"
        )
    return out


def label_datasets(runs: pd.DataFrame) -> pd.DataFrame:
    """Give data that share a dataset name but not their content distinct labels: `name (N train, data abcd1234)`.

    Tables are per dataset label, so two such sets are never pooled in one cell."""
    if runs.empty:
        return runs
    runs = runs.copy()
    runs["dataset_name"] = runs["dataset"]
    for name, g in runs.groupby("dataset_name"):
        contents = g[["data_fingerprint", "n_train"]].drop_duplicates()
        if len(contents) < 2:
            continue
        for idx, r in g.iterrows():
            n = f"{int(r['n_train']):,} train" if math.isfinite(r["n_train"]) else "size unknown"
            fp = r["data_fingerprint"][:8] or "unknown content (schema-old)"
            runs.at[idx, "dataset"] = f"{name} ({n}, data {fp})"
    return runs


def _skip(out: Scan, path: str, reason: str) -> None:
    out.skipped.append({"path": path, "reason": reason})
    out.warnings.append(f"skipped {path}: {reason}")
