"""CIFAR-N: real human labels of the CIFAR-10 / CIFAR-100 training images, as noise models `cifar10n`, `cifar100n`.

Wei et al., "Learning with Noisy Labels Revisited: A Study Using Real-World Human Annotations", ICLR 2022. The label
files are the ones the authors release (repository UCSC-REAL/cifar-10-100n, `data/CIFAR-10_human.pt` and
`data/CIFAR-100_human.pt`; licence CC BY-NC 4.0): torch-saved dicts of numpy int64 arrays indexed by the position of
each image in the official training set. Key names (`clean_label`, `aggre_label`, `worse_label`,
`random_label1..3`, `noisy_label`) are those of the released files (the dataset's README in that repository).

The file is loaded without running code from it (`torch.load(weights_only=True)` with exactly the numpy types such a
file refers to allow-listed), and its `clean_label` must equal the dataset's training labels in order (after any
subset, whose samples keep their original index) before a single label is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lnlbench.errors import ConfigError
from lnlbench.noise.base import NoiseInputs, register_noise_model

CITATION = (
    'Jiaheng Wei, Zhaowei Zhu, Hao Cheng, Tongliang Liu, Gang Niu and Yang Liu, "Learning with Noisy Labels '
    'Revisited: A Study Using Real-World Human Annotations", ICLR 2022'
)
LICENCE = "CC BY-NC 4.0 (research use with attribution)"
RELEASE = "https://github.com/UCSC-REAL/cifar-10-100n (folder data/)"
CLEAN_KEY = "clean_label"


@dataclass(frozen=True)
class CifarNSource:
    """One CIFAR-N release: its file, the dataset it labels, and which key holds each variant."""

    model: str
    file_name: str
    dataset: str
    num_classes: int
    train_size: int  # images in the official training set the file is indexed by
    variants: dict[str, str]  # variant name -> key in the file
    official_order_hint: str  # how to get the training images in the order the file is indexed by


CIFAR_N: dict[str, CifarNSource] = {
    "cifar10n": CifarNSource(
        model="cifar10n",
        file_name="CIFAR-10_human.pt",
        dataset="cifar10",
        num_classes=10,
        train_size=50_000,
        variants={
            "aggre": "aggre_label",
            "worse": "worse_label",
            "random1": "random_label1",
            "random2": "random_label2",
            "random3": "random_label3",
        },
        official_order_hint=(
            "use the official CIFAR-10 release (cifar-10-python.tar.gz, e.g. `lnlbench run --download`) or a copy "
            "that keeps its order (e.g. one made by `build_cifar10.py DEST --official-order`), and pass --data-root DEST"
        ),
    ),
    "cifar100n": CifarNSource(
        model="cifar100n",
        file_name="CIFAR-100_human.pt",
        dataset="cifar100",
        num_classes=100,
        train_size=50_000,
        variants={"noisy": "noisy_label"},
        official_order_hint="use the official CIFAR-100 release (cifar-100-python.tar.gz, e.g. `lnlbench run --download`)",
    ),
}


def is_cifar_n(model: str) -> bool:
    return model in CIFAR_N


def check_variant(model: str, variant: str | None) -> str:
    """The variant of CIFAR-N model `model`, or a ConfigError listing the ones it has."""
    source = CIFAR_N[model]
    names = ", ".join(source.variants)
    if variant is None:
        raise ConfigError(f"noise model {model!r} needs --variant (in a sweep file, variant:); one of {names}")
    if variant not in source.variants:
        raise ConfigError(f"noise model {model!r} has no variant {variant!r}; pick one of {names}")
    return variant


def find_label_file(model: str, data_root: str | Path | None, noise_file: str | Path | None) -> Path:
    """The CIFAR-N label file: `noise_file` if given, else `FILE` in the data root or its `cifar-n/` folder, or in
    the folder holding the data root or its `cifar-n/` folder."""
    source = CIFAR_N[model]
    if noise_file:
        path = Path(noise_file).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"noise file {path} does not exist; pass the path of {source.file_name} (released at {RELEASE})"
            )
        return path
    looked: list[Path] = []
    if data_root:
        root = Path(data_root).expanduser()
        looked = [  # the data root, its cifar-n/ folder, and the same beside it (a sibling cifar-n/)
            root / source.file_name, root / "cifar-n" / source.file_name,
            root.parent / source.file_name, root.parent / "cifar-n" / source.file_name,
        ]
        for path in looked:
            if path.is_file():
                return path
    where = f" (looked for {', '.join(map(str, looked))})" if looked else ""
    raise ConfigError(
        f"noise model {model!r} needs {source.file_name}{where}; pass --noise-file PATH (in a sweep file, file:) or "
        f"put it in the data root; it is released at {RELEASE}"
    )


def _load_safely(path: Path) -> Any:
    """`torch.load` that can build only tensors, dicts, lists and int64 numpy arrays: a pickle naming anything else
    (code to run, other classes) is refused before it is called."""
    import torch

    try:  # numpy 2 keeps _reconstruct in numpy._core; the files name it by its numpy 1 path numpy.core.multiarray
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    allowed = [
        (_reconstruct, "numpy.core.multiarray._reconstruct"),  # as the released files name it
        _reconstruct,  # as numpy 2 names it in files saved today
        np.ndarray,
        np.dtype,
        type(np.dtype(np.int64)),  # numpy.dtypes.Int64DType: how an int64 array's dtype is rebuilt
    ]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


def _reason(error: Exception) -> str:
    """The line of torch's long weights-only message that names what was refused (else its first line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if "global" in line.lower() or "got <" in line]
    return (named or lines or [""])[0].split(". Please use", 1)[0][:300]  # not torch's advice to trust the file


_FILES: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}  # (path, size, mtime) -> checked arrays


def read_cifar_n_file(model: str, path: str | Path, variant: str) -> dict[str, np.ndarray]:
    """`clean_label` and the variant's labels from a CIFAR-N file, as int64 arrays checked for type, length and
    range; anything else is a ConfigError naming the problem and the fix."""
    source = CIFAR_N[model]
    file = Path(path).expanduser()
    fix = f"pass the {source.file_name} its authors release ({RELEASE})"
    stat = file.stat()
    memo_key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _FILES:
        try:
            _FILES[memo_key] = _load_safely(file)
        except Exception as error:  # torch raises several types for unreadable or unsafe pickles
            raise ConfigError(
                f"{file} is not a CIFAR-N label file that loads safely ({type(error).__name__}: {_reason(error)}); "
                f"nothing from it was run; {fix}"
            ) from None
    content = _FILES[memo_key]
    if not isinstance(content, dict):
        raise ConfigError(f"{file} holds a {type(content).__name__}, not the dict of a CIFAR-N file; {fix}")
    key = source.variants[variant]
    missing = [k for k in (CLEAN_KEY, key) if k not in content]
    if missing:
        raise ConfigError(
            f"{file} lacks the key(s) {', '.join(missing)} (has: {', '.join(sorted(map(str, content)))}), so it is "
            f"not a {model} file; {fix}"
        )
    out = {}
    for name in (CLEAN_KEY, key):
        array = np.asarray(content[name])
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise ConfigError(f"{file}: {name!r} is a {array.dtype} array of shape {array.shape}, not 1-D integer "
                              f"labels; {fix}")
        if array.shape[0] != source.train_size:
            raise ConfigError(
                f"{file}: {name!r} holds {array.shape[0]} labels, but {model} labels the {source.train_size} images "
                f"of the official {source.dataset} training set; {fix}"
            )
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= source.num_classes:
            raise ConfigError(
                f"{file}: {name!r} contains label {low if low < 0 else high}, outside [0, {source.num_classes}); {fix}"
            )
        out[name] = array.astype(np.int64)
    return out


def aligned_labels(
    model: str, path: str | Path, variant: str, clean: np.ndarray, num_classes: int, indices: Any = None
) -> np.ndarray:
    """The variant's noisy labels for the dataset's training samples, after checking that the file's `clean_label`
    at each sample's original index equals the sample's label (the images are in the order the file is indexed by).

    `indices[i]` is training sample i's index in the full official training set (a subset's); None: sample i is
    image i.
    """
    source = CIFAR_N[model]
    file = Path(path)
    if num_classes != source.num_classes:
        raise ConfigError(
            f"noise model {model!r} labels {source.dataset} ({source.num_classes} classes), but the dataset has "
            f"{num_classes} classes; use it with --dataset {source.dataset}"
        )
    labels = read_cifar_n_file(model, file, variant)
    clean = np.asarray(clean, dtype=np.int64)
    not_official = f"the training images are not in the official {source.dataset} order {file.name} is indexed by"
    if indices is None:
        if clean.shape[0] != source.train_size:
            raise ConfigError(
                f"{not_official}: the dataset has {clean.shape[0]} training images, {file.name} labels "
                f"{source.train_size}; {source.official_order_hint} (with that set, --option per_class=N or "
                f"--option subset=first:N takes fewer images, each keeping its index)"
            )
        index = np.arange(clean.shape[0])
    else:
        index = np.asarray(indices, dtype=np.int64)
        if index.shape != clean.shape or (index.size and (index.min() < 0 or index.max() >= source.train_size)):
            raise ConfigError(
                f"{not_official}: the subset's original indices do not fit {file.name} (its {source.train_size} "
                f"images); {source.official_order_hint}"
            )
    wrong = np.flatnonzero(labels[CLEAN_KEY][index] != clean)
    if wrong.size:
        first = int(index[wrong[0]])
        raise ConfigError(
            f"{not_official}: its clean_label disagrees with the dataset's training labels for {wrong.size} of "
            f"{clean.shape[0]} images (first: training image {first}, label {int(clean[wrong[0]])} here, "
            f"{int(labels[CLEAN_KEY][first])} in the file); {source.official_order_hint}"
        )
    return labels[source.variants[variant]][index]


def _cache_extras(inputs: NoiseInputs, num_classes: int) -> dict[str, Any]:
    from lnlbench.hashing import file_sha256
    from lnlbench.noise.base import labels_sha256

    if inputs.path is None:
        raise ConfigError("CIFAR-N noise needs its label file; pass path=... (on the command line, --noise-file)")
    return {
        "file_sha256": file_sha256(Path(inputs.path)),
        "variant": inputs.variant,
        "indices_sha256": None if inputs.indices is None else labels_sha256(inputs.indices),
    }


def _register(source: CifarNSource) -> None:
    def make(clean: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator, inputs: NoiseInputs) -> Any:
        if inputs.path is None:
            raise ConfigError(f"noise model {source.model!r} needs {source.file_name}; pass --noise-file PATH")
        variant = check_variant(source.model, inputs.variant)
        return aligned_labels(source.model, inputs.path, variant, clean, num_classes, inputs.indices)

    register_noise_model(
        source.model,
        f"{source.dataset.upper().replace('CIFAR', 'CIFAR-')}N real human labels ({source.file_name}), "
        f"--variant {'|'.join(source.variants)}; images must be in the official order; the rate is ignored",
        uses_rate=False,
        cache_extras=_cache_extras,
    )(make)


for _source in CIFAR_N.values():
    _register(_source)


_ALIGNED: set[tuple[str, str, str]] = set()  # (data fingerprint, file sha256, variant) checked in this process


def check_alignment(model: str, path: Path, variant: str, data_fingerprint: str | None, load: Any) -> None:
    """Check (once per process for a given data content, file and variant) that the file's clean labels match the
    training labels of `load()`'s dataset; a mismatch is a ConfigError before any run starts."""
    from lnlbench.hashing import file_sha256

    key = (str(data_fingerprint), file_sha256(path), variant)
    if data_fingerprint is not None and key in _ALIGNED:
        return
    data = load()
    aligned_labels(
        model, path, variant, data.train.labels.numpy(), data.num_classes, data.extra.get("train_indices")
    )
    _ALIGNED.add(key)
