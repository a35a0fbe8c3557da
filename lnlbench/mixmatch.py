"""MixMatch pieces used by DivideMix (Berthelot et al., NeurIPS 2019; Li et al., ICLR 2020, official Train_cifar.py).

Pure tensor functions: sharpening, label co-refinement, co-guessing, the MixMatch mix with l = max(l, 1 - l), the
semi-supervised loss, the linear ramp-up of its unlabelled weight, the uniform-prior penalty and the negative-entropy
confidence penalty used during warm-up under asymmetric noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """p^(1/T), renormalised over classes (temperature sharpening)."""
    pt = p.pow(1.0 / temperature)
    return pt / pt.sum(dim=1, keepdim=True)


def co_refine(labels_onehot: torch.Tensor, w: torch.Tensor, p_net: torch.Tensor, temperature: float) -> torch.Tensor:
    """Label co-refinement: sharpen(w * y + (1 - w) * p), `w` the peer's clean probability of each labelled sample and
    `p` the network's own prediction averaged over two augmentations."""
    w = w.view(-1, 1).to(p_net.dtype)
    return sharpen(w * labels_onehot + (1.0 - w) * p_net, temperature)


def co_guess(probs: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """Label co-guessing: sharpen the average of both networks' predictions on both augmentations."""
    return sharpen(torch.stack(probs).mean(0), temperature)


def mix(inputs: torch.Tensor, targets: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """MixMatch's mixup over the concatenated batch: l ~ Beta(alpha, alpha), l = max(l, 1 - l), partners from a
    random permutation; returns (mixed inputs, mixed targets, l). Draws from the global RNG (reseeded per epoch)."""
    lam = float(torch.distributions.Beta(float(alpha), float(alpha)).sample())
    lam = max(lam, 1.0 - lam)
    perm = torch.randperm(inputs.shape[0]).to(inputs.device)
    return lam * inputs + (1 - lam) * inputs[perm], lam * targets + (1 - lam) * targets[perm], lam


def semi_loss(
    logits_x: torch.Tensor, targets_x: torch.Tensor, logits_u: torch.Tensor, targets_u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lx, the soft-target cross-entropy of the labelled part, and Lu, the mean squared error of the unlabelled part's
    probabilities (DivideMix's SemiLoss)."""
    lx = -(F.log_softmax(logits_x.float(), dim=1) * targets_x).sum(1).mean()
    if logits_u.shape[0] == 0:
        lu = logits_x.new_zeros((), dtype=torch.float32)
    else:
        lu = (torch.softmax(logits_u.float(), dim=1) - targets_u).pow(2).mean()
    return lx, lu


def linear_rampup(current: float, warmup: float, rampup_length: float, lambda_u: float) -> float:
    """lambda_u * clip((current - warmup) / rampup_length, 0, 1), `current` in (fractional) epochs."""
    if rampup_length <= 0:
        return lambda_u if current >= warmup else 0.0
    return lambda_u * float(min(max((current - warmup) / rampup_length, 0.0), 1.0))


def uniform_prior_penalty(logits: torch.Tensor) -> torch.Tensor:
    """KL(uniform prior || mean prediction): sum_c pi_c log(pi_c / mean_p_c), keeping the batch from collapsing onto
    few classes (DivideMix's `penalty`)."""
    num_classes = logits.shape[1]
    prior = torch.full((num_classes,), 1.0 / num_classes, device=logits.device)
    pred_mean = torch.softmax(logits.float(), dim=1).mean(0)
    return (prior * torch.log(prior / pred_mean)).sum()


def negative_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean of sum_c p_c log p_c: the confidence penalty added to warm-up CE under asymmetric noise (NegEntropy)."""
    probs = torch.softmax(logits.float(), dim=1)
    return (probs * torch.log(probs.clamp_min(1e-12))).sum(1).mean()
