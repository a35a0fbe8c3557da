"""Configuration resolution, in one place: names checked, every default filled, local paths replaced by the content
they point to (data fingerprint, weights SHA-256, noise-file SHA-256), giving a `RunConfig` and its run id.

Imports are lazy: a first resolution imports what it checks names against (timm's architectures, the method plugins),
and reads data only when its fingerprint is not cached yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lnlbench.errors import Problems
from lnlbench.config import RunConfig, check_rate, default_cache_dir


MIN_IMAGE_SIZE = 8  # the smallest input the backbones' strides take; pre-trained features want 64 or more


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
    noise_variant: str | None = None,
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
    `noise_variant` picks the label set of a CIFAR-N model (`cifar10n` worse, ...); its label file is `noise_file`
    or found in the data root, and with `content` its alignment with the training images is checked here.
    """
    from lnlbench.data.base import load_dataset
    from lnlbench.fingerprint import dataset_fingerprint
    from lnlbench.hashing import file_sha256
    from lnlbench.noise import read_asym_map
    from lnlbench.plugin_manager import dataset_registry, method_registry, noise_registry

    from lnlbench.data.base import check_options

    # One validation pass in two stages, each reporting every problem it finds. First what needs no method code
    # (so a typo in a dataset or noise name is reported without importing torch and timm), then the rest.
    problems = Problems()
    reader = None
    with problems.check():
        reader = dataset_registry().get(dataset)
    with problems.check():
        noise_registry().get(noise)
    with problems.check():
        rate = check_rate(rate)
    if reader is not None and reader.needs_data_root and not data_root:
        problems.add(f"dataset {dataset!r} needs --data-root DIR (the directory that holds its files)")
    dataset_options = dict(dataset_options or {})
    if reader is not None:
        with problems.check():
            check_options(reader, dataset_options)
    if image_size is not None and int(image_size) < MIN_IMAGE_SIZE:
        problems.add(f"image size {image_size} is too small; pass --image-size {MIN_IMAGE_SIZE} or more "
                     f"(ImageNet features need 64 or more to be useful)")
    noise_options: dict[str, Any] = {}
    if noise == "file" and not noise_file:
        problems.add("noise model 'file' needs --noise-file PATH (.npy, .pt or .csv of noisy labels)")
    elif noise == "file" and not Path(noise_file).is_file():
        problems.add(f"noise file {noise_file} does not exist; pass the path of a .npy, .pt or .csv label file")
    elif noise == "file":
        noise_options["file_sha256"] = file_sha256(Path(noise_file))
    if noise_map:
        with problems.check():
            noise_options["asym_map"] = {str(k): v for k, v in read_asym_map(Path(noise_map)).items()}
    from lnlbench.noise import cifar_n

    if cifar_n.is_cifar_n(noise):
        with problems.check():
            noise_options["variant"] = cifar_n.check_variant(noise, noise_variant)
        with problems.check():
            noise_file = str(cifar_n.find_label_file(noise, data_root, noise_file))
            noise_options["file_sha256"] = file_sha256(Path(noise_file))
    elif noise_variant is not None:
        problems.add(f"noise model {noise!r} has no variants; drop --variant {noise_variant} (variants belong to "
                     f"{', '.join(cifar_n.CIFAR_N)})")
    problems.raise_any()

    import timm

    from lnlbench.models import PACKAGED, PACKAGED_ARCH, weights_sha256

    method_cls = resolved = None
    with problems.check():
        method_cls = method_registry().get(method)
    if not timm.is_model(backbone):
        problems.add(f"unknown backbone {backbone!r}; list the timm architectures with `lnlbench backbones '*resnet*'`")
    elif weights == PACKAGED and timm.models.get_arch_name(backbone) != PACKAGED_ARCH:
        problems.add(
            f"packaged weights exist only for {PACKAGED_ARCH}, not {backbone!r}; use --backbone {PACKAGED_ARCH}, or "
            f"--weights timm (`lnlbench backbones --offline` lists what is on this machine) or a file for {backbone}"
        )
    elif image_size is None:
        image_size = default_image_size(backbone)
    if method_cls is not None:
        with problems.check():
            resolved = method_cls.resolve_hparams(dataset, noise, rate, hparams)
    problems.raise_any()
    weights_digest = fingerprint = None
    if content:
        weights_digest = weights_sha256(backbone, weights)
        fingerprint = data_fingerprint or dataset_fingerprint(
            dataset, data_root, dataset_options, default_cache_dir() if cache_dir is None else cache_dir,
            load=lambda: load_dataset(dataset, data_root, **dataset_options),
        )
        if cifar_n.is_cifar_n(noise):  # before any training: the file's clean labels must match the images
            cifar_n.check_alignment(
                noise, Path(str(noise_file)), noise_options["variant"], fingerprint,
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


