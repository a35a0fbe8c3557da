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


# --- Symmetric Cross Entropy (Wang et al., ICCV 2019) -----------------------------------------------------------------

SCE_CE_CLIP = 1e-7  # official loss.py: the prediction is clipped to [1e-7, 1] inside the CE term
SCE_LOG_ZERO = -4.0  # SCE paper: log 0 of the one-hot label is replaced by A = -4 (loss.py's 1e-4 clip: -9.21)


def reverse_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, log_zero: float = SCE_LOG_ZERO) -> torch.Tensor:
    """Per-sample RCE -sum_k p_k log q_k with q the one-hot label and log 0 = `log_zero` (A < 0): -A (1 - p_y).

    Bounded in [0, -A]; computed as -A times the probability mass off the label (exact when p_y is close to 1).
    """
    if log_zero >= 0:
        raise ConfigError(f"RCE needs log 0 = A < 0, got {log_zero}; pass a negative value (the paper's A = -4)")
    p = F.softmax(logits.float(), dim=1)
    off_label = p.masked_fill(F.one_hot(labels, p.shape[1]).bool(), 0.0).sum(1)
    return -log_zero * off_label


def symmetric_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float, log_zero: float = SCE_LOG_ZERO
) -> torch.Tensor:
    """Per-sample SCE alpha * CE + beta * RCE (Wang et al., ICCV 2019, Eq. 6); CE on p clipped at 1e-7 (loss.py)."""
    p_y = F.softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)
    ce = -p_y.clamp(SCE_CE_CLIP, 1.0).log()
    return alpha * ce + beta * reverse_cross_entropy(logits, labels, log_zero)


# --- JoCoR's co-regularisation (Wei et al., CVPR 2020) ----------------------------------------------------------------


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(p_b || p_a) + KL(p_a || p_b) of two networks' softmax outputs, gradients into both.

    JoCoR's co-regularisation (paper Eq. 3; official algorithm/loss.py `kl_loss_compute` in both directions, no
    detach): zero when the networks agree, positive otherwise.
    """
    log_a, log_b = F.log_softmax(logits_a.float(), dim=1), F.log_softmax(logits_b.float(), dim=1)
    kl_b_a = (log_b.exp() * (log_b - log_a)).sum(1)
    kl_a_b = (log_a.exp() * (log_a - log_b)).sum(1)
    return kl_b_a + kl_a_b
