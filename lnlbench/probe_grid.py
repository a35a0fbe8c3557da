"""A grid of linear heads fitted together: one batch order, one feature gather and one product per step for all cells.

The probe rule (`training.choose_probe_settings`) fits the same head for every (lr, weight decay) of its grid. Fitted
one after another, each fit is a few hundred steps of a 1,280 x 10 product on a gathered batch, and the gathers and
skinny products dominate (issue 15: TURN's step 1 was a third of its one-epoch time at 2,000 images on the CPU).
Fitted together, the cells share the batch order (common random numbers: the cells differ only in their lr and weight
decay), so each step gathers the batch once and multiplies it by all heads stacked as one (G C) x D matrix. The
optimisers are torch's SGD (momentum, no dampening), Adam and AdamW, written once over the stacked parameters with a
per-cell lr and weight decay; `tests/test_probe_grid.py` checks each against torch's own on the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from lnlbench import engine
from lnlbench.errors import ConfigError
from lnlbench.losses import per_sample_loss

if TYPE_CHECKING:
    from lnlbench.training import OptimSettings

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam / AdamW defaults, as `OptimSettings.build` uses them
ADAM_EPS = 1e-8


class GridOptimizer:
    """torch's SGD / Adam / AdamW over stacked parameters whose leading dimension is the grid cell."""

    def __init__(self, params: Sequence[torch.Tensor], optimizer: str, lrs: torch.Tensor, weight_decays: torch.Tensor,
                 momentum: float) -> None:
        if optimizer not in ("sgd", "adam", "adamw"):
            raise ConfigError(f"unknown optimizer {optimizer!r}; use sgd, adam or adamw")
        self.params, self.optimizer, self.momentum = list(params), optimizer, momentum
        self.lrs, self.wds = lrs, weight_decays  # one entry per cell
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params] if optimizer != "sgd" else []

    @staticmethod
    def _per_cell(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor], lr_factor: float) -> None:
        """One update of every cell with lr = its lr x `lr_factor` (the schedule's multiplier at this step)."""
        self.t += 1
        for i, (p, g) in enumerate(zip(self.params, grads)):
            lr = self._per_cell(self.lrs, p) * lr_factor
            wd = self._per_cell(self.wds, p)
            if self.optimizer == "adamw":
                p.mul_(1 - lr * wd)
            else:
                g = g + wd * p  # L2 in the gradient, as torch's SGD and Adam
            if self.optimizer == "sgd":
                buf = self.m[i]
                if self.t == 1:
                    buf.copy_(g)
                else:
                    buf.mul_(self.momentum).add_(g)
                p.sub_(lr * buf)
                continue
            b1, b2 = ADAM_BETAS
            self.m[i].lerp_(g, 1 - b1)
            self.v[i].mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (self.v[i].sqrt() / math.sqrt(1 - b2 ** self.t)).add_(ADAM_EPS)
            p.sub_(lr / (1 - b1 ** self.t) * self.m[i] / denom)


def fit_head_grid(
    head: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor, settings: OptimSettings, cells: Sequence[tuple[float, float]], loss: str,
    gce_q: float, generator: torch.Generator,
) -> list[torch.nn.Linear]:
    """One copy of `head` fitted per (lr, weight decay) in `cells`, all on the batch order drawn from `generator`.

    `settings` gives the epochs, batch size, optimiser and schedule; its lr and weight decay are
    ignored. Each returned head equals `training.fit_head` run alone with that cell's lr and weight decay and a
    generator in the same state, up to floating-point order.
    """
    n_cells, classes, dim = len(cells), head.out_features, head.in_features
    dev = x.device
    weight = head.weight.detach().float().to(dev).expand(n_cells, classes, dim).clone().requires_grad_()
    bias = head.bias.detach().float().to(dev).expand(n_cells, classes).clone().requires_grad_()
    lrs = torch.tensor([c[0] for c in cells], dtype=torch.float32, device=dev)
    wds = torch.tensor([c[1] for c in cells], dtype=torch.float32, device=dev)
    opt = GridOptimizer((weight, bias), settings.optimizer, lrs, wds, settings.momentum)
    factor = settings.lr_factor(math.ceil(len(x) / settings.batch_size))
    step = 0
    for _ in range(settings.epochs):
        for idx in engine.index_batches(torch.arange(len(x)), settings.batch_size, generator):
            idx = idx.to(dev)
            xb, yb = x[idx], y[idx]
            logits = (xb @ weight.reshape(n_cells * classes, dim).T).view(len(idx), n_cells, classes) + bias
            cell_first = logits.transpose(0, 1).reshape(n_cells * len(idx), classes)
            losses = per_sample_loss(loss, cell_first, yb.repeat(n_cells), gce_q).view(n_cells, len(idx))
            # each cell's mean loss; summed, since no parameter is shared between cells
            grads = torch.autograd.grad(losses.mean(1).sum(), (weight, bias))
            opt.step(grads, factor(step))
            step += 1
    heads = []
    for c in range(n_cells):
        fitted = torch.nn.Linear(dim, classes).to(dev)
        with torch.no_grad():
            fitted.weight.copy_(weight[c])
            fitted.bias.copy_(bias[c])
        heads.append(fitted.eval())
    return heads
