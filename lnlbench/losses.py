"""Losses used by several methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lnlbench.errors import ConfigError


def generalized_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Per-sample GCE loss (1 - p_y^q) / q of Zhang & Sabuncu (NeurIPS 2018); q -> 0 recovers CE, q = 1 is MAE."""
    p = F.softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1).clamp_min(1e-7)
    return (1.0 - p.pow(q)) / q


def per_sample_loss(name: str, logits: torch.Tensor, labels: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Per-sample loss by name: "ce" or "gce"."""
    if name == "ce":
        return F.cross_entropy(logits.float(), labels, reduction="none")
    if name == "gce":
        return generalized_cross_entropy(logits, labels, q)
    raise ConfigError(f"unknown loss {name!r}; use ce or gce")
