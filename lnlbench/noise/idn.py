"""Instance-dependent noise of Xia et al., "Part-dependent Label Noise" (NeurIPS 2020).

Follows `get_instance_noisy_label` in the official code (github.com/xiaoboxia/Part-dependent-label-noise, tools.py):
- per-sample flip rate q_n ~ Normal(rate, 0.1) truncated to [0, 1] (their `norm_std` default 0.1);
- per clean class c a random projection W[c] of shape (D, C), entries standard normal;
- p = x_n @ W[y_n]; p[y_n] = -inf; p = q_n * softmax(p); p[y_n] = 1 - q_n; the noisy label is drawn from p.
Differences, on purpose: x is the image as floats in [0, 1] (the official code feeds the normalised training
tensor); images larger than 32 x 32 are first average-pooled to 32 x 32 (CIFAR's native size, so CIFAR images are
used as they are) to keep D, and so the cost, small; the random numbers come from one numpy Generator, drawn in a
fixed order (q from uniforms through the truncated normal's inverse CDF, then the uniforms that pick the labels,
then W[0], W[1], ...); with rate 0 the labels stay clean (the truncated normal would still give flips).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from lnlbench.errors import ConfigError
from lnlbench.noise.base import NoiseInputs, register_noise_model

FLIP_RATE_STD = 0.1  # official code: norm_std default 0.1
MAX_SIDE = 32  # images with a larger side are average-pooled to MAX_SIDE x MAX_SIDE before projection
CHUNK = 4096  # samples converted to floats at a time


def _is_batch(images: Any) -> bool:
    return isinstance(images, np.ndarray) or hasattr(images, "detach")


def _to_numpy(image: Any) -> np.ndarray:
    if hasattr(image, "detach"):
        return image.detach().cpu().numpy()
    return np.asarray(image)


def _pool(batch: np.ndarray) -> np.ndarray:
    """Average-pool a N x C x H x W (or N x H x W) float batch to at most MAX_SIDE on each side."""
    h, w = batch.shape[-2:]
    if h <= MAX_SIDE and w <= MAX_SIDE:
        return batch
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(batch))
    squeeze = x.ndim == 3
    if squeeze:
        x = x.unsqueeze(1)
    pooled = F.adaptive_avg_pool2d(x, (min(h, MAX_SIDE), min(w, MAX_SIDE)))
    return (pooled.squeeze(1) if squeeze else pooled).numpy()


def _features(images: Any, index: np.ndarray) -> np.ndarray:
    """Images `index` as flattened float64 rows in [0, 1] (after pooling large images)."""
    if hasattr(images, "detach"):  # a torch tensor
        import torch

        batch = _to_numpy(images[torch.as_tensor(index)])
    elif isinstance(images, np.ndarray):
        batch = images[index]
    else:
        batch = np.stack([_to_numpy(images[int(i)]) for i in index])
    if batch.dtype == np.uint8:
        batch = batch.astype(np.float64) / 255.0
    elif np.issubdtype(batch.dtype, np.floating):
        batch = batch.astype(np.float64)
    else:
        raise ConfigError(f"idn noise needs uint8 images (or floats in [0, 1]); got dtype {batch.dtype}")
    if batch.ndim not in (3, 4):
        raise ConfigError(
            f"idn noise needs images shaped N x C x H x W or N x H x W; got a batch of shape {batch.shape}"
        )
    return _pool(batch).reshape(batch.shape[0], -1)


def _check_images(images: Any, n: int) -> None:
    if images is None:
        raise ConfigError("idn noise depends on the images; pass images (the training images, uint8 N x C x H x W)")
    if len(images) != n:
        raise ConfigError(f"idn noise got {len(images)} images for {n} labels; pass the training images in label order")


def flip_rates(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-sample flip rates from Normal(rate, 0.1) truncated to [0, 1] (inverse-CDF sampling)."""
    a, b = (0.0 - rate) / FLIP_RATE_STD, (1.0 - rate) / FLIP_RATE_STD
    from scipy.stats import truncnorm  # scipy.stats is slow to import; only IDN draws need it

    return truncnorm(a, b, loc=rate, scale=FLIP_RATE_STD).ppf(rng.random(n))


def _idn_cache_extras(inputs: NoiseInputs, num_classes: int) -> dict[str, Any]:
    images = inputs.images
    if images is None or not _is_batch(images):
        return {}  # lazy images: the dataset key names them
    array = np.ascontiguousarray(_to_numpy(images))
    return {"images_sha256": hashlib.sha256(array.tobytes()).hexdigest(), "images_shape": list(array.shape)}


@register_noise_model(
    "idn",
    "instance-dependent (Xia et al., NeurIPS 2020): per-sample flip rate ~ Normal(rate, 0.1) truncated to [0,1], "
    "flipped-to class drawn from a softmax of a per-class random projection of the image",
    cache_extras=_idn_cache_extras,
)
def instance_dependent(
    clean: np.ndarray, num_classes: int, rate: float, rng: np.random.Generator, inputs: NoiseInputs
) -> np.ndarray:
    n = clean.shape[0]
    _check_images(inputs.images, n)
    if rate == 0 or n == 0:
        return clean.copy()
    if num_classes < 2:
        raise ConfigError(f"noise model 'idn' needs at least 2 classes; this dataset has {num_classes}")
    q = flip_rates(rate, n, rng)
    pick = rng.random(n)
    dim = _features(inputs.images, np.arange(1)).shape[1]
    noisy = clean.copy()
    for c in range(num_classes):
        projection = rng.standard_normal((dim, num_classes))  # drawn for every class, so W[c] never depends on data
        members = np.flatnonzero(clean == c)
        for start in range(0, members.shape[0], CHUNK):
            idx = members[start : start + CHUNK]
            logits = _features(inputs.images, idx) @ projection
            logits[:, c] = -np.inf
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs *= (q[idx] / probs.sum(axis=1))[:, None]
            probs[:, c] = 1.0 - q[idx]
            cumulative = np.cumsum(probs, axis=1)
            chosen = (cumulative < pick[idx, None] * cumulative[:, -1:]).sum(axis=1)
            noisy[idx] = np.minimum(chosen, num_classes - 1)
    return noisy
