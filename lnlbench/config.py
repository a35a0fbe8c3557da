"""Run configurations, run ids, run directories and result records."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lnlbench.atomic import write_json_atomic

__all__ = ["RunConfig", "RunDir", "check_rate", "default_cache_dir", "write_json_atomic"]
from lnlbench.errors import ConfigError
from lnlbench.hashing import json_digest

# 2: content-addressed ids (data fingerprint, weights SHA-256), charged cost, contention and code provenance.
SCHEMA = 2
# Dataset options naming local paths (caches, companion datasets): where the files are, not what the run computes.
LOCAL_PATH_OPTIONS = frozenset({"cache_dir", "ilsvrc12_root"})
# RunConfig fields naming local paths: they enter the id only through the content they point to.
LOCAL_PATH_FIELDS = ("data_root", "noise_file")
DEFAULT_BACKBONE = "tf_efficientnet_lite0"
DEFAULT_WEIGHTS = "packaged"
WEIGHT_SOURCES = ("packaged", "timm", "random")  # anything else is a path to a weight file


@dataclass(frozen=True)
class RunConfig:
    """One fully resolved run. Every field enters the run id except local paths (`data_root`, `noise_file`, a
    weights file's path, path-valued dataset options), which enter by the content they point to instead:
    `data_fingerprint` (the dataset's content), `weights_sha256` (the weight file's bytes) and the noise file's
    SHA-256 in `noise_options`."""

    dataset: str
    noise: str
    rate: float
    method: str
    hparams: dict[str, Any]
    image_size: int
    noise_seed: int = 0
    seed: int = 0
    backbone: str = DEFAULT_BACKBONE
    weights: str = DEFAULT_WEIGHTS
    dataset_options: dict[str, Any] = field(default_factory=dict)
    noise_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"file_sha256": ..., "asym_map": {...}}
    amp: str = "auto"
    compile: bool = False
    data_root: str | None = None
    noise_file: str | None = None  # a path; its content hash is in noise_options
    data_fingerprint: str | None = None  # SHA-256 of the data's content (lnlbench.fingerprint); None: unresolved
    weights_sha256: str | None = None  # SHA-256 of the weight file (None for random weights)

    def identity(self) -> dict[str, Any]:
        """The fields that define what the run computes (no local paths); a copy the caller may change."""
        return copy.deepcopy(self._identity_view())

    def _identity_view(self) -> dict[str, Any]:
        """`identity()` sharing this config's nested values: read-only, but cheap (a sweep plan makes thousands)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in LOCAL_PATH_FIELDS}
        d["dataset_options"] = {k: v for k, v in self.dataset_options.items() if k not in LOCAL_PATH_OPTIONS}
        if self.weights not in WEIGHT_SOURCES:
            d["weights"] = "file"  # the path stays out; the file's content is in weights_sha256
        d["schema"] = SCHEMA
        return d

    @property
    def run_id(self) -> str:
        return json_digest(self._identity_view(), 16)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["run_id"] = self.run_id
        d["schema"] = SCHEMA
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunConfig:
        if d.get("schema") != SCHEMA:
            raise ConfigError(
                f"run config of schema {d.get('schema')!r}, this lnlbench reads schema {SCHEMA}; "
                "rerun it with this version into a fresh output directory"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def default_cache_dir() -> Path:
    """Where noisy labels, features and data fingerprints are cached: $LNLBENCH_CACHE or ~/.cache/lnlbench."""
    return Path(os.environ.get("LNLBENCH_CACHE", Path.home() / ".cache" / "lnlbench"))


def check_rate(rate: float) -> float:
    """A noise rate must be a fraction in [0, 1]."""
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"noise rate {rate!r} is not a number; pass a fraction such as 0.4") from None
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"noise rate {rate} is outside [0, 1]; pass a fraction such as 0.4 (not 40)")
    return rate




class RunDir:
    """`OUT/<run_id>/`: config.json, log.txt, checkpoints/, traceback.txt and, when finished, result.json."""

    def __init__(self, out: Path | str, run_id: str) -> None:
        self.path = Path(out) / run_id

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def result(self) -> Path:
        return self.path / "result.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def traceback(self) -> Path:
        return self.path / "traceback.txt"

    @property
    def log(self) -> Path:
        return self.path / "log.txt"

    def read_result(self) -> dict | None:
        """The finished record, or None when absent or unreadable."""
        try:
            return json.loads(self.result.read_text())
        except (OSError, ValueError):
            return None

    def done_record(self) -> dict | None:
        """The record if this run is done under this schema, else None: the one answer to "is this run done?"."""
        rec = self.read_result()
        return rec if rec and rec.get("status") == "done" and rec.get("schema") == SCHEMA else None

    def is_done(self) -> bool:
        return self.done_record() is not None

    def remove_checkpoints(self) -> None:
        """Delete the training checkpoints (once the finished record is on disk: they are what a resume needs)."""
        import shutil

        shutil.rmtree(self.checkpoints, ignore_errors=True)
