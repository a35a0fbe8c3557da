"""The result record, defined once: typed dataclasses, the JSON Schema generated from them, and its validation.

`harness.execute_run` and `execution.write_failure` build records through `ResultRecord`; the report validates every
record it reads against `record_schema()`, which also ships with the package as `lnlbench/schemas/record.schema.json`
for third-party tools (`lnlbench schema` prints it; a test checks the shipped file is the generated one).
Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lnlbench.config import SCHEMA

SCHEMA_FILE = Path(__file__).parent / "schemas" / "record.schema.json"
STATUSES = ("done", "failed", "running")


@dataclass
class BackboneInfo:
    """The backbone: timm architecture, weight source and the SHA-256 of the weight file loaded."""

    name: str
    weights: str
    weights_sha256: str | None = None


@dataclass
class NoiseInfo:
    """The noisy labels: model, rate and seed asked for, the realized rate and transition matrix, their SHA-256."""

    model: str
    rate: float
    seed: int
    realized_rate: float | None
    labels_sha256: str
    transition_matrix: list[list[float]] | None = None
    clean_labels_known: int | None = None


@dataclass
class Metrics:
    """Clean test accuracy (final epoch: the reported number), its per-epoch history and what methods report."""

    test_acc: float
    test_acc_best: float
    history: list[dict[str, Any]] = field(default_factory=list)
    test_acc_best_note: str | None = None
    selection: dict[str, Any] | None = None
    diagnostics: dict[str, Any] | None = None
    extra_test_acc: dict[str, float] | None = None


@dataclass
class Cost:
    """What the run cost, as charged (see docs/records.md), with what was measured in this process beside it."""

    wall_clock_s: float
    device: str
    phases: dict[str, float] = field(default_factory=dict)
    wall_clock_measured_s: float | None = None
    phases_measured: dict[str, float] | None = None
    charges: list[dict[str, Any]] | None = None
    features: dict[str, Any] | None = None
    device_count: int = 1
    gpu_hours: float = 0.0
    peak_mem_mb: float | None = None
    images_seen: int | None = None
    method_s: float | None = None
    images_per_s: float | None = None
    images_by_phase: dict[str, int] | None = None
    images_per_s_by_phase: dict[str, float] | None = None
    threads: int | None = None
    contended: bool | None = None
    contention: dict[str, Any] | None = None


@dataclass
class Env:
    """Versions, host and code provenance."""

    lnlbench: str
    torch: str | None = None
    timm: str | None = None
    python: str | None = None
    host: str | None = None
    git: str | None = None
    git_dirty: bool | None = None
    method_module: str | None = None
    code_sha256: str | None = None
    versions: dict[str, str | None] | None = None  # every installed distribution that computes (None: missing)
    command: dict[str, Any] | None = None  # what started the run: argv and working directory (provenance.invocation)


@dataclass
class ResultRecord:
    """`OUT/<run_id>/result.json`. A done record has `metrics`, `noise` and `n_train`; a failed one has `error`."""

    schema: int
    run_id: str
    status: str
    method: str | None
    config: dict[str, Any]
    backbone: BackboneInfo
    hparams: dict[str, Any] | None = None
    dataset: str | None = None
    dataset_options: dict[str, Any] | None = None
    image_size: int | None = None
    seed: int | None = None
    error: str | None = None
    env: Env | None = None
    cost: Cost | None = None
    numerics: dict[str, Any] | None = None
    data_fingerprint: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    num_classes: int | None = None
    noise: NoiseInfo | None = None
    precision: dict[str, Any] | None = None
    metrics: Metrics | None = None
    reidentified: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as JSON data; fields of the record types that are None are left out, free-form content
        (hparams, config, diagnostics, ...) is kept exactly as it is."""
        return _to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultRecord:
        """Parse and check a record; raise RecordError naming the field."""
        problems = validate(data)
        if problems:
            raise RecordError("; ".join(problems))
        return _build(cls, data)


class RecordError(ValueError):
    """A record that does not follow the schema; the message names each field that does not."""


def _to_json(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if getattr(obj, f.name) is not None}
    return obj


def _build(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kind = _dataclass_in(hints[f.name])
        value = data[f.name]
        kwargs[f.name] = _build(kind, value) if kind is not None and isinstance(value, dict) else value
    return cls(**kwargs)


def _dataclass_in(hint: Any) -> type | None:
    for arg in (typing.get_args(hint) or (hint,)):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


# -- JSON Schema, generated from the dataclasses -------------------------------------------------------------------
def _schema_of(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if hint is Any:
        return {}
    if origin in (typing.Union, types.UnionType):
        options = [_schema_of(a) for a in typing.get_args(hint)]
        return {"anyOf": options}
    if hint is type(None):
        return {"type": "null"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    if origin is list:
        (item,) = typing.get_args(hint)
        return {"type": "array", "items": _schema_of(item)}
    if origin is dict:
        _, value = typing.get_args(hint)
        return {"type": "object", "additionalProperties": _schema_of(value)}
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        props = {f.name: _schema_of(hints[f.name]) for f in dataclasses.fields(hint)}
        required = [f.name for f in dataclasses.fields(hint)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        doc = (hint.__doc__ or "").strip().splitlines()[0]
        return {"type": "object", "description": doc, "properties": props, "required": required}
    raise TypeError(f"no JSON Schema for {hint!r}")


def record_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a result record of this schema version."""
    schema = _schema_of(ResultRecord)
    schema["properties"]["schema"] = {"const": SCHEMA}
    schema["properties"]["status"] = {"enum": list(STATUSES)}
    schema["allOf"] = [
        {"if": {"properties": {"status": {"const": "done"}}},
         "then": {"required": ["metrics", "noise", "n_train", "cost", "env"]}},
        {"if": {"properties": {"status": {"const": "failed"}}}, "then": {"required": ["error"]}},
    ]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://lnlbench.invalid/record-schema-{SCHEMA}.json",
            "title": f"lnlbench result record, schema {SCHEMA}", **schema}


def schema_text() -> str:
    """The generated schema as the shipped file holds it."""
    return json.dumps(record_schema(), indent=2, sort_keys=True) + "\n"


# -- validation (the subset of JSON Schema the generator emits) ----------------------------------------------------
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _matches(schema: dict[str, Any], value: Any, where: str, problems: list[str]) -> None:
    if "anyOf" in schema:
        tried: list[list[str]] = []
        for option in schema["anyOf"]:
            trial: list[str] = []
            _matches(option, value, where, trial)
            if not trial:
                return
            tried.append(trial)
        # the option of the value's own kind says what is wrong inside it ("record.cost.wall_clock_s: missing")
        own = [t for o, t in zip(schema["anyOf"], tried) if _kind_fits(o, value)]
        if len(own) == 1:
            problems.extend(own[0])
            return
        kinds = " or ".join(o.get("type", "any") for o in schema["anyOf"])
        problems.append(f"{where}: {value!r:.60} is not {kinds}")
        return
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    kind = schema.get("type")
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is not None:
        ok = isinstance(value, _TYPES[kind])
    else:
        ok = True
    if not ok:
        problems.append(f"{where}: {value!r:.60} is not of type {kind}")
        return
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}.{name}: missing")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                _matches(props[k], v, f"{where}.{k}", problems)
            elif isinstance(extra, dict):
                _matches(extra, v, f"{where}.{k}", problems)
        for rule in schema.get("allOf", []):
            cond = rule["if"]["properties"]
            if all(value.get(k) == c.get("const") for k, c in cond.items()):
                for name in rule["then"].get("required", []):
                    if name not in value:
                        problems.append(f"{where}.{name}: missing (required when status is {value.get('status')!r})")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            _matches(schema["items"], v, f"{where}[{i}]", problems)


def _kind_fits(schema: dict[str, Any], value: Any) -> bool:
    kind = schema.get("type")
    if kind in ("integer", "number"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return kind is None or isinstance(value, _TYPES.get(kind, object))


def validate(record: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """The ways `record` departs from the record schema, each naming the field ("record.cost.phases: missing")."""
    problems: list[str] = []
    _matches(schema or record_schema(), record, "record", problems)
    return problems
