"""Batch image transforms as tensor ops on the images' device: backbone preprocessing and CIFAR-style augmentation."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lnlbench.device_copy import to_device

# ImageNet channel statistics, as in timm.data.constants.IMAGENET_DEFAULT_MEAN / IMAGENET_DEFAULT_STD.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PAD_MODES = ("constant", "reflect")


def _check_batch(images: torch.Tensor, name: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        what = f"{images.dtype} tensor of shape {tuple(images.shape)}" if isinstance(images, torch.Tensor) else images
        raise TypeError(f"{name} expects a uint8 tensor B x C x H x W, got {what}")


def preprocess(
    images: torch.Tensor,
    size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> torch.Tensor:
    """uint8 B x C x H x W (C = 1 or 3) -> float32 B x 3 x size x size: resized (bilinear, antialiased), normalised."""
    _check_batch(images, "preprocess")
    channels = images.shape[1]
    if channels not in (1, 3):
        raise ValueError(f"preprocess expects 1 or 3 channels, got {channels}")
    x = images.to(torch.float32).div_(255.0)
    if channels == 1:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean_t, std_t = _channel_stats(tuple(mean), tuple(std), x.device)
    return (x - mean_t) / std_t


@functools.lru_cache(maxsize=16)
def _channel_stats(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std as 1 x 3 x 1 x 1 float32 tensors on `device`, made once per device: building them per batch
    copied two host tensors to the GPU, and each blocking copy made the host wait for the GPU."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return to_device(mean_t, device), to_device(std_t, device)


@dataclass(frozen=True)
class ImageTransform:
    """What a backbone declares about its input: square size and per-channel normalisation."""

    size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return preprocess(images, self.size, self.mean, self.std)


def _reflect(index: torch.Tensor, length: int) -> torch.Tensor:
    """Mirror out-of-range indices back into [0, length) without repeating the edge (numpy/torch 'reflect')."""
    period = 2 * (length - 1)
    if period == 0:
        return torch.zeros_like(index)
    index = index.remainder(period)
    return torch.where(index >= length, period - index, index)


def augment(
    images: torch.Tensor,
    generator: torch.Generator,
    pad: int = 4,
    flip: bool = True,
    pad_mode: str = "constant",
) -> torch.Tensor:
    """Random crop after padding by `pad` (back to the input size) and random horizontal flip, for a whole batch.

    The standard CIFAR recipe (pad 4 with zeros, crop 32, flip with probability 1/2), as in DivideMix's CIFAR loader
    (torchvision `RandomCrop(32, padding=4)`, whose padding defaults to zeros, then `RandomHorizontalFlip()`).
    Offsets and flips are drawn from `generator` (a CPU generator) in a fixed order, so the result depends only on
    the generator's state; the draws go to the images' device in one copy that does not block, and the crop is one
    gather there.
    """
    _check_batch(images, "augment")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    if generator.device.type != "cpu":
        raise ValueError("augment draws its offsets on the CPU: pass a CPU torch.Generator")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    b, _, h, w = images.shape
    offset_y = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    offset_x = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)

    device = images.device
    drawn = to_device(torch.stack((offset_y, offset_x, flips.to(offset_y.dtype))), device)
    offset_y, offset_x, flips = drawn[0], drawn[1], drawn[2].bool()
    # Source row/column of every output pixel, in the unpadded image's coordinates (may fall outside it).
    rows = (offset_y - pad).unsqueeze(1) + torch.arange(h, device=device)  # B x H
    cols = (offset_x - pad).unsqueeze(1) + torch.arange(w, device=device)  # B x W
    cols = torch.where(flips.unsqueeze(1), cols.flip(1), cols)  # a flipped crop reads its columns right to left
    if pad_mode == "reflect":
        valid = None
        rows, cols = _reflect(rows, h), _reflect(cols, w)
    else:
        valid = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)  # B x H x W
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    batch = torch.arange(b, device=device).view(b, 1, 1)
    out = images[batch, :, rows.unsqueeze(2), cols.unsqueeze(1)]  # advanced indices first: B x H x W x C
    if valid is not None:
        out = out * valid.unsqueeze(3).to(out.dtype)
    return out.permute(0, 3, 1, 2).contiguous()
