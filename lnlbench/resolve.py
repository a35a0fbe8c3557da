"""Configuration resolution, in one place: names checked, every default filled, local paths replaced by the content
they point to (data fingerprint, weights SHA-256, noise-file SHA-256), giving a `RunConfig` and its run id.

Imports are lazy: a first resolution imports what it checks names against (timm's architectures, the method plugins),
and reads data only when its fingerprint is not cached yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lnlbench.errors import ConfigError
from lnlbench.config import RunConfig, check_rate, default_cache_dir


def default_image_size(backbone: str) -> int:
    """The input size of the backbone's pre-trained configuration (224 when timm does not say)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(backbone)
    return int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else 224


def resolve_config(
    *,
    dataset: str,
    noise: str,
    rate: float,
    method: str,
    noise_seed: int = 0,
    seed: int = 0,
    backbone: str = "tf_efficientnet_lite0",
    weights: str = "packaged",
    image_size: int | None = None,
    hparams: dict[str, Any] | None = None,
    dataset_options: dict[str, Any] | None = None,
    data_root: str | None = None,
    noise_file: str | None = None,
    noise_map: str | None = None,
    amp: str = "auto",
    compile: bool = False,
    cache_dir: Path | None = None,
    content: bool = True,
    data_fingerprint: str | None = None,
) -> RunConfig:
    """Check every name and value and fill every default; raise ConfigError naming the fix.

    Resolving reads the content the run id is made of: the weight file's bytes and the data's fingerprint (cached
    under `cache_dir`, so only the first resolution of a dataset reads every image). With `content=False` both stay
    unset: the config is checked but its id is provisional (a dry run on a machine without the data or weights).
    `data_fingerprint`, when given, is the fingerprint of this dataset computed already (a sweep computes it once
    per dataset entry instead of walking the data root for every run).
    """
    from lnlbench.data.base import load_dataset
    from lnlbench.fingerprint import dataset_fingerprint
    from lnlbench.hashing import file_sha256
    from lnlbench.noise import read_asym_map
    from lnlbench.plugin_manager import dataset_registry, method_registry, noise_registry

    # the cheap checks first: a wrong dataset or noise name is reported before torch and timm are imported
    reader = dataset_registry().get(dataset)
    noise_registry().get(noise)
    rate = check_rate(rate)
    if reader.needs_data_root and not data_root:
        raise ConfigError(f"dataset {dataset!r} needs --data-root DIR (the directory that holds its files)")
    method_cls = method_registry().get(method)
    import timm

    from lnlbench.models import weights_sha256

    if not timm.is_model(backbone):
        raise ConfigError(
            f"unknown backbone {backbone!r}; list the timm architectures with `lnlbench backbones '*resnet*'`"
        )
    if image_size is None:
        image_size = default_image_size(backbone)
    if int(image_size) < 8:
        raise ConfigError(f"image size {image_size} is too small; pass --image-size 32 or more")
    noise_options: dict[str, Any] = {}
    if noise == "file":
        if not noise_file:
            raise ConfigError("noise model 'file' needs --noise-file PATH (.npy, .pt or .csv of noisy labels)")
        path = Path(noise_file)
        if not path.is_file():
            raise ConfigError(f"noise file {path} does not exist; pass the path of a .npy, .pt or .csv label file")
        noise_options["file_sha256"] = file_sha256(path)
    if noise_map:
        noise_options["asym_map"] = {str(k): v for k, v in read_asym_map(Path(noise_map)).items()}
    resolved = method_cls.resolve_hparams(dataset, noise, rate, hparams)
    dataset_options = dict(dataset_options or {})
    from lnlbench.data.base import check_options

    check_options(reader, dataset_options)
    weights_digest = fingerprint = None
    if content:
        weights_digest = weights_sha256(backbone, weights)
        fingerprint = data_fingerprint or dataset_fingerprint(
            dataset, data_root, dataset_options, default_cache_dir() if cache_dir is None else cache_dir,
            load=lambda: load_dataset(dataset, data_root, **dataset_options),
        )
    return RunConfig(
        dataset=dataset,
        noise=noise,
        rate=rate,
        method=method,
        hparams=resolved,
        image_size=int(image_size),
        noise_seed=int(noise_seed),
        seed=int(seed),
        backbone=backbone,
        weights=weights,
        dataset_options=dataset_options,
        noise_options=noise_options,
        amp=amp,
        compile=bool(compile),
        data_root=str(data_root) if data_root else None,
        noise_file=str(noise_file) if noise_file else None,
        data_fingerprint=fingerprint,
        weights_sha256=weights_digest,
    )


