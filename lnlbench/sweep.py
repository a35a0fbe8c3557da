"""Sweep files: a grid of runs (datasets x noise x noise seeds x backbones x methods x hyperparameters x seeds).

A sweep file is YAML (or TOML) with the keys in `TOP_KEYS`; `docs/sweeps.md` is the reference. Every problem is a
`ConfigError` naming the file, the line (YAML) and the key, raised before anything is written or submitted.

Size (over 400 lines, on purpose): one small validator per key of the file format, kept in one module so that the
format has one reference and every error names FILE:LINE the same way.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lnlbench.errors import ConfigError, Problems
from lnlbench.config import DEFAULT_BACKBONE, DEFAULT_WEIGHTS, LOCAL_PATH_OPTIONS, RunConfig, check_rate

TOP_KEYS = {
    "name": "a label for the sweep (SLURM job name)",
    "datasets": "list of dataset names or {name, data_root, options}",
    "noise": "list of [model, rate] pairs or {model, rate | rates, file, map, variant | variants}",
    "noise_seeds": "seeds of the noisy labels (int or list)",
    "methods": "list of method names or {name, hparams}",
    "hparams": "per-method overrides {method: {key: value or list}}",
    "backbones": "list of timm names or {name, weights, image_size}",
    "image_size": "input size for backbones that do not set one",
    "seeds": "training seeds (int or list)",
    "amp": "mixed precision on GPU: auto, bf16, fp16, off",
    "compile": "torch.compile the model (true/false)",
    "launcher": "launcher settings (see LAUNCHER_KEYS)",
}
DATASET_KEYS = {"name", "data_root", "options"}
# Dataset options that are local paths: resolved from the sweep file's directory like data_root, and left out of the
# run id (lnlbench.config.RunConfig.identity) so the same run has the same id on every machine.
NOISE_KEYS = {"model", "rate", "rates", "file", "map", "variant", "variants"}
METHOD_KEYS = {"name", "hparams"}
BACKBONE_KEYS = {"name", "weights", "image_size"}
LAUNCHER_KEYS = {
    "name": "local, debug, slurm or a plugin's launcher",
    "jobs": "local: runs at a time",
    "partition": "SLURM partition",
    "time": "SLURM time limit per run: minutes or [D-]HH:MM:SS",
    "gpus": "GPUs per run",
    "cpus": "CPUs per run",
    "mem": "memory per run, e.g. 16G",
    "account": "SLURM account",
    "qos": "SLURM quality of service",
    "constraint": "SLURM node constraint",
    "sbatch": "extra sbatch options {option: value}",
    "array_parallelism": "SLURM: array tasks running at once",
    "setup": "shell lines run before each SLURM job (module load ...)",
    "max_requeue": "SLURM: time-outs a run may be requeued after (preemptions are unlimited)",
    "keep_checkpoints": "keep checkpoints/ in finished run directories",
}
AMP_CHOICES = ("auto", "bf16", "fp16", "off")


# ---------------------------------------------------------------------------------------------------- reading ---
class Source:
    """A parsed sweep file: its data and the line of every key and list item (YAML only)."""

    def __init__(self, path: Path, data: Any, lines: dict[tuple, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def where(self, *keys: str | int) -> str:
        """`FILE:LINE` of the deepest known element of `keys` (or `FILE` and the key path for TOML)."""
        for n in range(len(keys), 0, -1):
            line = self.lines.get(tuple(keys[:n]))
            if line is not None:
                return f"{self.path}:{line}"
        return str(self.path)

    def error(self, keys: tuple, message: str) -> ConfigError:
        label = ".".join(str(k) for k in keys)
        return ConfigError(f"{self.where(*keys)}: {label + ': ' if label else ''}{message}")


def read_source(path: Path | str) -> Source:
    """Parse a sweep file (.yaml/.yml or .toml) keeping line numbers of YAML keys and items."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read sweep file {path}: {exc.strerror or exc}; pass an existing file") from None
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            return Source(path, tomllib.loads(text), {})
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[tuple, int] = {}

    def walk(n: Any, keys: tuple) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = (*keys, str(k.value))
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[(*keys, i)] = item.start_mark.line + 1
                walk(item, (*keys, i))

    if node is not None:
        walk(node, ())
    return Source(path, data, lines)


# ----------------------------------------------------------------------------------------------------- axes ---
@dataclass(frozen=True)
class DatasetEntry:
    name: str
    data_root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoiseEntry:
    model: str
    rate: float
    file: str | None = None
    map: str | None = None
    variant: str | None = None  # CIFAR-N label set (cifar10n: aggre, worse, ...)


@dataclass(frozen=True)
class MethodEntry:
    name: str
    grid: tuple[dict[str, Any], ...]  # one dict of overrides per hyperparameter combination
    where: str = ""


@dataclass(frozen=True)
class BackboneEntry:
    name: str
    weights: str = DEFAULT_WEIGHTS
    image_size: int | None = None


@dataclass
class Sweep:
    """The validated content of a sweep file."""

    path: Path
    name: str
    datasets: list[DatasetEntry]
    noise: list[NoiseEntry]
    noise_seeds: list[int]
    methods: list[MethodEntry]
    backbones: list[BackboneEntry]
    seeds: list[int]
    amp: str = "auto"
    compile: bool = False
    launcher: dict[str, Any] = field(default_factory=dict)

    def runs(self, cache_dir: Path | None = None, provisional_ok: bool = False) -> list[RunConfig]:
        """Every run of the grid, resolved (defaults filled, ids hashed), duplicates removed, in grid order.

        `cache_dir` holds the data fingerprints (default: the run cache, $LNLBENCH_CACHE). With `provisional_ok`
        (dry runs), a run whose data or weights are not on this machine is resolved without their content: its
        id is provisional, and `self.provisional` says why.
        """
        from lnlbench.errors import DataError, WeightsError
        from lnlbench.resolve import resolve_config

        self.provisional: dict[str, str] = {}
        missing: dict[tuple, Exception] = {}
        fingerprints: dict[tuple, str | None] = {}
        configs: dict[str, RunConfig] = {}
        for ds, nz, nseed, bb, method, seed in itertools.product(
            self.datasets, self.noise, self.noise_seeds, self.backbones, self.methods, self.seeds
        ):
            for hp in method.grid:
                args = dict(
                    dataset=ds.name, noise=nz.model, rate=nz.rate, method=method.name, noise_seed=nseed,
                    seed=seed, backbone=bb.name, weights=bb.weights, image_size=bb.image_size, hparams=hp,
                    dataset_options=ds.options, data_root=ds.data_root, noise_file=nz.file, noise_map=nz.map,
                    noise_variant=nz.variant, amp=self.amp, compile=self.compile, cache_dir=cache_dir,
                )
                where = (ds.name, ds.data_root, str(ds.options), bb.name, bb.weights)
                try:
                    try:
                        if where in missing:
                            raise missing[where]
                        cfg = resolve_config(**args, data_fingerprint=fingerprints.get(where[:3]))
                        fingerprints[where[:3]] = cfg.data_fingerprint  # one walk of the data root per dataset entry
                    except (DataError, WeightsError) as exc:
                        if not provisional_ok:
                            raise
                        missing[where] = exc  # looked for once per dataset and weights, not once per run
                        cfg = resolve_config(**args, content=False)
                        self.provisional[cfg.run_id] = str(exc)
                except ConfigError as exc:
                    raise ConfigError(
                        f"{method.where or self.path}: run ({ds.name}, {nz.model} "
                        f"{nz.rate if nz.variant is None else nz.variant}, {method.name} {hp}, "
                        f"{bb.name}, seed {seed}): {exc}"
                    ) from None
                configs.setdefault(cfg.run_id, cfg)
        if not configs:
            raise ConfigError(f"{self.path}: the grid is empty; list at least one entry under every axis")
        return list(configs.values())


def load_sweep(path: Path | str) -> Sweep:
    """Read and validate a sweep file; raise ConfigError with FILE:LINE for any problem."""
    return parse_sweep(read_source(path))


def parse_sweep(src: Source) -> Sweep:
    data = src.data
    if not isinstance(data, dict):
        raise src.error((), "a sweep file is a mapping with keys " + ", ".join(TOP_KEYS))
    _check_keys(src, (), data, set(TOP_KEYS))
    for axis in ("datasets", "noise", "methods"):
        if axis not in data:
            raise src.error((), f"missing `{axis}`; the grid needs at least one entry (see docs/sweeps.md)")
    base = src.path.parent
    # One pass that reports every problem of the file (each with its line), not one per invocation.
    problems = Problems()
    image_size = None
    with problems.check():
        image_size = _opt_int(src, ("image_size",), data.get("image_size"), low=8)
    amp = data.get("amp", "auto")
    if amp not in AMP_CHOICES:
        problems.add(str(src.error(("amp",), f"{amp!r} is not one of {', '.join(AMP_CHOICES)}")))
    compile_ = data.get("compile", False)
    if not isinstance(compile_, bool):
        problems.add(str(src.error(("compile",), f"{compile_!r} must be true or false")))
    name = data.get("name") or src.path.stem

    def each(key: str, default: Any, parse: Callable[[int, Any], list]) -> list:
        out: list = []
        items: list = []
        with problems.check():
            items = _list(src, key, data[key] if default is None else data.get(key, default))
        for i, entry in enumerate(items):
            with problems.check():
                out.extend(parse(i, entry))
        return out

    datasets = each("datasets", None, lambda i, e: [_dataset(src, i, e, base)])
    noise = each("noise", None, lambda i, e: _noise(src, i, e, base))
    backbones = each("backbones", [DEFAULT_BACKBONE], lambda i, e: [_backbone(src, i, e, base, image_size)])
    noise_seeds = seeds = launcher = methods = None
    with problems.check():
        noise_seeds = _ints(src, "noise_seeds", data.get("noise_seeds", [0]))
    with problems.check():
        seeds = _ints(src, "seeds", data.get("seeds", [0]))
    with problems.check():
        launcher = _launcher(src, data.get("launcher") or {})
    with problems.check():
        methods = _methods(src, data, problems)
    problems.messages.sort(key=_line_of)  # in the order of the file
    problems.raise_any()
    return Sweep(
        path=src.path,
        name=str(name),
        datasets=datasets,
        noise=noise,
        noise_seeds=noise_seeds,
        methods=methods,
        backbones=backbones,
        seeds=seeds,
        amp=amp,
        compile=compile_,
        launcher=launcher,
    )


def _line_of(message: str) -> int:
    """The line number a `FILE:LINE: ...` message names (0 when it names none)."""
    found = re.match(r"[^\n]*?:(\d+): ", message)
    return int(found.group(1)) if found else 0


def _check_keys(src: Source, keys: tuple, d: dict, valid: set[str]) -> None:
    for k in d:
        if str(k) not in valid:
            raise src.error(
                (*keys, str(k)), f"unknown key {str(k)!r}; valid keys here: {', '.join(sorted(valid))}"
            )


def _list(src: Source, key: str, value: Any) -> list:
    if isinstance(value, (str, int, float, dict)):
        value = [value]
    if not isinstance(value, list):
        raise src.error((key,), f"expected a list, got {type(value).__name__}")
    if not value:
        raise src.error((key,), "is empty: the grid has no runs; list at least one entry")
    return value


def _ints(src: Source, key: str, value: Any) -> list[int]:
    items = _list(src, key, value)
    for i, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, int):
            raise src.error((key, i), f"{v!r} is not an integer seed")
    return list(dict.fromkeys(items))


def _opt_int(src: Source, keys: tuple, value: Any, low: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise src.error(keys, f"{value!r} must be an integer >= {low}")
    return value


def _path(value: Any, base: Path) -> str | None:
    """A path from the sweep file, relative paths taken from the file's directory."""
    if value is None:
        return None
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else base / p)


def _dataset(src: Source, i: int, entry: Any, base: Path) -> DatasetEntry:
    from lnlbench.data.base import check_options
    from lnlbench.plugin_manager import dataset_registry

    keys: tuple = ("datasets", i)
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or "name" not in entry:
        raise src.error(keys, f"{entry!r}: write a dataset name or {{name: ..., data_root: ..., options: {{...}}}}")
    _check_keys(src, keys, entry, DATASET_KEYS)
    name = str(entry["name"])
    try:
        reader = dataset_registry().get(name)
    except ConfigError as exc:
        raise src.error((*keys, "name"), str(exc)) from None
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise src.error((*keys, "options"), "expected a mapping {option: value}")
    try:
        check_options(reader, options)
    except ConfigError as exc:
        raise src.error((*keys, "options"), str(exc)) from None
    if reader.needs_data_root and not entry.get("data_root"):
        raise src.error(keys, f"dataset {name!r} needs `data_root: DIR` (the directory that holds its files)")
    options = {k: (_path(v, base) if k in LOCAL_PATH_OPTIONS and isinstance(v, str) else v) for k, v in options.items()}
    return DatasetEntry(name, _path(entry.get("data_root"), base), options)


def _noise(src: Source, i: int, entry: Any, base: Path) -> list[NoiseEntry]:
    from lnlbench.plugin_manager import noise_registry

    keys: tuple = ("noise", i)
    if isinstance(entry, list):
        if len(entry) != 2:
            raise src.error(keys, f"{entry!r}: write a [model, rate] pair such as [sym, 0.4]")
        entry = {"model": entry[0], "rate": entry[1]}
    if not isinstance(entry, dict) or "model" not in entry:
        raise src.error(keys, f"{entry!r}: write [model, rate] or {{model: sym, rates: [0.2, 0.4]}}")
    _check_keys(src, keys, entry, NOISE_KEYS)
    model = str(entry["model"])
    try:
        noise_model = noise_registry().get(model)
    except ConfigError as exc:
        raise src.error((*keys, "model") if (*keys, "model") in src.lines else keys, str(exc)) from None
    variants = _noise_variants(src, keys, model, entry)
    if not noise_model.uses_rate and "rate" not in entry and "rates" not in entry:
        entry = {**entry, "rate": 0.0}  # the model ignores the rate (file, cifar10n): it need not be written
    if ("rate" in entry) == ("rates" in entry):
        raise src.error(keys, "give exactly one of `rate: 0.4` or `rates: [0.2, 0.4]`")
    rates = entry["rates"] if "rates" in entry else [entry["rate"]]
    if not isinstance(rates, list) or not rates:
        raise src.error((*keys, "rates"), "expected a non-empty list of fractions")
    out = []
    for r in rates:
        try:
            rate = check_rate(r)
        except ConfigError as exc:
            raise src.error((*keys, "rates" if "rates" in entry else "rate"), str(exc)) from None
        for variant in variants:
            out.append(NoiseEntry(model, rate, _path(entry.get("file"), base), _path(entry.get("map"), base), variant))
    return out


def _noise_variants(src: Source, keys: tuple, model: str, entry: dict) -> list[str | None]:
    """The entry's `variant: worse` or `variants: [worse, aggre]`, checked against the model ([None]: none)."""
    from lnlbench.noise import cifar_n

    if "variant" in entry and "variants" in entry:
        raise src.error(keys, "give one of `variant: worse` or `variants: [worse, aggre]`, not both")
    where = (*keys, "variants" if "variants" in entry else "variant")
    written = entry["variants"] if "variants" in entry else [entry["variant"]] if "variant" in entry else [None]
    if not isinstance(written, list) or not written:
        raise src.error(where, "expected a non-empty list of variant names, e.g. [worse, aggre]")
    if not cifar_n.is_cifar_n(model):
        if written != [None]:
            raise src.error(where, f"noise model {model!r} has no variants; remove this "
                                   f"(variants belong to {', '.join(cifar_n.CIFAR_N)})")
        return [None]
    try:
        return [cifar_n.check_variant(model, None if v is None else str(v)) for v in written]
    except ConfigError as exc:
        raise src.error(where if where in src.lines else keys, str(exc)) from None


def _methods(src: Source, data: dict, problems: Problems) -> list[MethodEntry]:
    """Every method entry with its hyperparameter grid; a bad entry's problems go to `problems` (it is skipped)."""
    from lnlbench.plugin_manager import method_registry

    registry = method_registry()
    shared = data.get("hparams") or {}
    if not isinstance(shared, dict):
        raise src.error(("hparams",), "expected a mapping {method: {hyperparameter: value or list}}")
    entries = []
    items = _list(src, "methods", data["methods"])
    for i, entry in enumerate(items):
        with problems.check():
            entries.append(_method(src, i, entry, registry, shared, problems))
    # every name written under `methods`, parsed or not (a bad entry is reported once, not again from `hparams`)
    listed = {str(e.get("name") if isinstance(e, dict) else e) for e in items}
    for m in shared:
        if str(m) not in listed:
            problems.add(str(src.error(
                ("hparams", str(m)), f"method {m!r} is not listed under `methods`; add it there or remove this"
            )))
    return entries


def _method(src: Source, i: int, entry: Any, registry: Any, shared: dict, problems: Problems) -> MethodEntry:
    """One `methods` entry and its hyperparameter grid; every bad hyperparameter is reported, then the entry fails."""
    keys: tuple = ("methods", i)
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or "name" not in entry:
        raise src.error(keys, f"{entry!r}: write a method name or {{name: ..., hparams: {{...}}}}")
    _check_keys(src, keys, entry, METHOD_KEYS)
    name = str(entry["name"])
    try:
        cls = registry.get(name)
    except ConfigError as exc:
        raise src.error((*keys, "name") if (*keys, "name") in src.lines else keys, str(exc)) from None
    own = Problems()
    values: dict[str, list] = {}
    sources = ((("hparams", name), shared.get(name) or {}), ((*keys, "hparams"), entry.get("hparams") or {}))
    for where, overrides in sources:  # the method entry's own overrides come last and win
        if not isinstance(overrides, dict):
            own.add(str(src.error(where, "expected a mapping {hyperparameter: value or list of values}")))
            continue
        for k, v in overrides.items():
            k = str(k)
            if k not in cls.hparam_space:
                own.add(str(src.error(
                    (*where, k),
                    f"method {name!r} has no hyperparameter {k!r}; valid: {', '.join(sorted(cls.hparam_space))}",
                )))
                continue
            vs = v if isinstance(v, list) else [v]
            if not vs:
                own.add(str(src.error((*where, k), "an empty list gives an empty grid; list at least one value")))
                continue
            for value in vs:
                try:
                    cls.hparam_space[k].check(k, value)
                except ConfigError as exc:
                    own.add(str(src.error((*where, k), str(exc))))
            values[k] = vs
    own.raise_any()
    names = sorted(values)
    grid = tuple(dict(zip(names, combo)) for combo in itertools.product(*(values[k] for k in names)))
    return MethodEntry(name, grid, src.where(*keys))


def _backbone(src: Source, i: int, entry: Any, base: Path, image_size: int | None) -> BackboneEntry:
    import timm

    keys: tuple = ("backbones", i)
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict) or "name" not in entry:
        raise src.error(keys, f"{entry!r}: write a timm name or {{name: ..., weights: ..., image_size: ...}}")
    _check_keys(src, keys, entry, BACKBONE_KEYS)
    name = str(entry["name"])
    if not timm.is_model(name):
        raise src.error(keys, f"unknown backbone {name!r}; list timm architectures with `lnlbench backbones '*net*'`")
    weights = str(entry.get("weights", DEFAULT_WEIGHTS))
    if weights not in ("packaged", "timm", "random"):
        weights = _path(weights, base) or weights
        if not Path(weights).is_file():
            raise src.error(
                (*keys, "weights"), f"weight file {weights} does not exist; give packaged, timm, random or a file"
            )
    size = _opt_int(src, (*keys, "image_size"), entry.get("image_size"), low=8)
    return BackboneEntry(name, weights, size if size is not None else image_size)


def _launcher(src: Source, d: Any) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise src.error(("launcher",), "expected a mapping of launcher settings")
    _check_keys(src, ("launcher",), d, set(LAUNCHER_KEYS))
    for key in ("jobs", "gpus", "cpus", "array_parallelism", "max_requeue"):
        if key in d:
            _opt_int(src, ("launcher", key), d[key], low=0 if key in ("gpus", "max_requeue") else 1)
    if "sbatch" in d and not isinstance(d["sbatch"], dict):
        raise src.error(("launcher", "sbatch"), "expected a mapping {sbatch option: value}, e.g. {exclude: node3}")
    if "setup" in d and not (isinstance(d["setup"], list) and all(isinstance(s, str) for s in d["setup"])):
        raise src.error(("launcher", "setup"), "expected a list of shell lines")
    for key, parse in (("time", parse_time_min), ("mem", parse_mem_gb)):
        if key in d:
            try:
                parse(d[key])
            except ConfigError as exc:
                raise src.error(("launcher", key), str(exc)) from None
    return dict(d)


def parse_time_min(value: Any) -> int:
    """A SLURM time limit in whole minutes: an int (minutes) or SLURM's own forms M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    if isinstance(value, bool):
        raise ConfigError(f"time {value!r} is not a duration; write minutes (60) or HH:MM:SS")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ConfigError(f"time {value!r} must be positive")
        return int(math.ceil(value))
    text = str(value).strip()
    days, rest = (text.split("-", 1) if "-" in text else ("0", text))
    parts = rest.split(":")
    if not days.isdigit() or not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
        raise ConfigError(f"time {value!r} is not a duration; write minutes (60) or [D-]HH:MM:SS")
    nums = [int(p) for p in parts]
    if "-" in text:  # sbatch(1): days-hours, days-hours:minutes, days-hours:minutes:seconds
        h, m, s = (nums + [0, 0])[:3]
    elif len(nums) == 3:  # hours:minutes:seconds
        h, m, s = nums
    else:  # minutes, minutes:seconds
        h, m, s = 0, nums[0], (nums[1] if len(nums) == 2 else 0)
    seconds = ((int(days) * 24 + h) * 60 + m) * 60 + s
    if seconds <= 0:
        raise ConfigError(f"time {value!r} must be positive")
    return math.ceil(seconds / 60)


_MEM_UNITS_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}


def parse_mem_mb(value: Any) -> int:
    """Memory in whole MB, the unit sbatch takes (`--mem=4000M`), from a number of GB (8, "8") or a size with a unit:
    16G, 16GB, 4000M, 1T (binary units, as sbatch); fractions are rounded up to the next MB."""
    if isinstance(value, bool):
        raise ConfigError(f"memory {value!r} is not a size; write e.g. 16G, 4000M or a number of GB")
    if isinstance(value, (int, float)):
        number, unit = float(value), "G"
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(value), flags=re.IGNORECASE)
        if not m:
            raise ConfigError(f"memory {value!r} is not a size; write e.g. 16G, 4000M or a number of GB")
        number, unit = float(m.group(1)), (m.group(2).upper() or "G")
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"memory {value!r} must be positive; write e.g. 16G, 4000M or a number of GB")
    return max(1, math.ceil(number * _MEM_UNITS_MB[unit] - 1e-9))


def parse_mem_gb(value: Any) -> float:
    """Memory in GB (binary, as sbatch) from the same forms as `parse_mem_mb`."""
    return parse_mem_mb(value) / 1024
