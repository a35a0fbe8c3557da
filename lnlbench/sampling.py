"""Generic sample draws the harness makes for any dataset: the per-epoch class-balanced subset."""

from __future__ import annotations

import math

import numpy as np
import torch


def balanced_epoch_indices(
    noisy_labels: torch.Tensor | np.ndarray,
    num_samples: int,
    generator: torch.Generator,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Indices of one epoch's class-balanced random subset (DivideMix's Clothing1M protocol; any dataset may ask).

    DivideMix (`dataloader_clothing1M.py`, mode 'all') draws, each epoch, `num_samples` = num_batches x batch size
    images (1000 x 32 x 2 for warm-up) with at most num_samples / num_classes per noisy class. Here each class
    gives ceil(num_samples / num_classes) of its images (all of them when it has fewer) drawn without replacement,
    then the pool is shuffled and cut to `num_samples`. Labels < 0 are never drawn. Deterministic in `generator`.
    """
    labels = torch.as_tensor(noisy_labels, dtype=torch.long).reshape(-1)
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    classes = int(num_classes) if num_classes is not None else int(labels.max().item()) + 1 if len(labels) else 0
    if classes < 1:
        return torch.zeros(0, dtype=torch.long)
    quota = math.ceil(num_samples / classes)
    order = torch.randperm(len(labels), generator=generator)
    shuffled = labels[order]
    picked = [order[shuffled == c][:quota] for c in range(classes)]
    pool = torch.cat(picked)
    return pool[torch.randperm(len(pool), generator=generator)][:num_samples]
