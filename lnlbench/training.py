"""Training loops shared by methods: a linear head on cached features, and full fine-tuning on images."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from lnlbench import engine
from lnlbench.context import MethodContext
from lnlbench.errors import ConfigError
from lnlbench.losses import per_sample_loss
from lnlbench.models import split_backbone_head


@dataclass(frozen=True)
class OptimSettings:
    """Optimiser and schedule of one training phase."""

    epochs: int
    lr: float
    weight_decay: float
    batch_size: int
    optimizer: str = "sgd"  # "sgd" (momentum 0.9) or "adam"
    momentum: float = 0.9
    schedule: str = "cosine"  # "cosine", "constant" or "step"
    milestones: tuple[float, ...] = ()  # "step": fractions of the run after which the lr is divided by 10

    def build(self, params, steps_per_epoch: int):
        """The optimiser and its per-step lr scheduler for a run of `epochs` x `steps_per_epoch` steps."""
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        elif self.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        elif self.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        else:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; use sgd, adam or adamw")
        total = max(1, self.epochs * steps_per_epoch)
        if self.schedule == "cosine":
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        elif self.schedule == "constant":
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        elif self.schedule == "step":
            at = sorted(round(f * total) for f in self.milestones)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 ** sum(s >= m for m in at))
        else:
            raise ConfigError(f"unknown schedule {self.schedule!r}; use cosine, constant or step")
        return opt, sched


def optim_from(hp: dict, prefix: str = "") -> OptimSettings:
    """OptimSettings from hyperparameters named `{prefix}epochs`, `{prefix}lr`, ... (optimizer/schedule optional)."""
    return OptimSettings(
        epochs=int(hp[f"{prefix}epochs"]),
        lr=float(hp[f"{prefix}lr"]),
        weight_decay=float(hp[f"{prefix}weight_decay"]),
        batch_size=int(hp[f"{prefix}batch_size"]),
        optimizer=str(hp.get(f"{prefix}optimizer", "sgd")),
        schedule=str(hp.get(f"{prefix}schedule", "cosine")),
    )


def train_linear_head(
    ctx: MethodContext,
    phase: str,
    head: torch.nn.Linear,
    train_feats: torch.Tensor,
    labels: torch.Tensor,
    test_feats: torch.Tensor,
    settings: OptimSettings,
    loss: str = "ce",
    gce_q: float = 0.7,
) -> torch.nn.Linear:
    """Train `head` on cached features with noisy `labels`; logs test accuracy per epoch; resumable."""
    dev = ctx.device
    head = head.to(dev).float()
    x, y = train_feats.to(dev), labels.to(dev)
    xt = test_feats.to(dev)
    steps = math.ceil(len(x) / settings.batch_size)
    opt, sched = settings.build(head.parameters(), steps)
    for epoch in ctx.epochs(phase, settings.epochs, {"head": head, "opt": opt, "sched": sched}):
        head.train()
        total = torch.zeros((), device=dev)
        for idx in engine.index_batches(torch.arange(len(x)), settings.batch_size, ctx.rng(phase, epoch)):
            idx = idx.to(dev)
            batch_loss = per_sample_loss(loss, head(x[idx]), y[idx], gce_q).mean()
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            sched.step()
            total += batch_loss.detach() * len(idx)
        train_loss = engine.check_finite(total / len(x), phase, epoch)
        head.eval()
        with torch.inference_mode():
            acc = engine.accuracy(head(xt), ctx.test_labels)
        ctx.log_epoch(phase, epoch, train_loss=train_loss, test_acc=acc)
    return head


class FeatureClassifier(torch.nn.Module):
    """Backbone features followed by a linear head, as one model mapping images to logits."""

    def __init__(self, model: torch.nn.Module, head: torch.nn.Linear) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature_fn, _ = split_backbone_head(self.model)
        return self.head(feature_fn(x).float())


def train_steps(
    model: torch.nn.Module,
    batcher: engine.ImageBatcher,
    batches: Iterable[torch.Tensor],
    labels: torch.Tensor,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    precision: engine.Precision,
    aug: torch.Generator | None = None,
    loss: str = "ce",
    gce_q: float = 0.7,
) -> tuple[torch.Tensor, int]:
    """The fine-tuning hot loop: one optimiser step per batch of sample indices, `labels` already on the device.

    Returns the summed loss as a device tensor and the number of images seen; nothing in the loop waits for the
    device (no `.item()`, no host copy of a result), so the host queues the next step while the device runs this one.
    """
    dev = batcher.device
    total = torch.zeros((), device=dev)
    seen = 0
    for idx in batches:
        xb = batcher.batch(idx, aug)
        with precision.autocast(dev):
            logits = model(xb)
        batch_loss = per_sample_loss(loss, logits, labels[engine.to_device(idx, dev)], gce_q).mean()
        opt.zero_grad(set_to_none=True)
        scaler.scale(batch_loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        total += batch_loss.detach() * len(idx)
        seen += len(idx)
    return total, seen


def finetune(
    ctx: MethodContext,
    phase: str,
    model: torch.nn.Module,
    indices: torch.Tensor,
    labels: torch.Tensor,
    settings: OptimSettings,
    augment: bool = True,
    loss: str = "ce",
    gce_q: float = 0.7,
) -> torch.nn.Module:
    """Fine-tune every parameter of `model` on the samples `indices` with `labels` (indexed like the train set)."""
    dev = ctx.device
    per_epoch = len(indices) if ctx.samples_per_epoch is None else min(ctx.samples_per_epoch, len(indices))
    steps = math.ceil(per_epoch / settings.batch_size)
    opt, sched = settings.build(model.parameters(), steps)
    scaler = torch.amp.GradScaler(enabled=ctx.precision.amp_dtype == torch.float16)
    labels_dev = labels.to(dev)
    for epoch in ctx.epochs(phase, settings.epochs, {"model": model, "opt": opt, "sched": sched}):
        model.train()
        aug = ctx.rng(phase, "augment", epoch) if augment else None
        epoch_idx = ctx.epoch_indices(indices, labels, phase, epoch)
        batches = engine.index_batches(
            epoch_idx, settings.batch_size, ctx.rng(phase, epoch), drop_last=len(epoch_idx) > settings.batch_size
        )
        total, seen = train_steps(model, ctx.train, batches, labels_dev, opt, sched, scaler, ctx.precision, aug,
                                  loss, gce_q)
        ctx.images_seen += seen
        train_loss = engine.check_finite(total / max(len(epoch_idx), 1), phase, epoch)
        acc = ctx.evaluate(model)
        ctx.log_epoch(phase, epoch, train_loss=train_loss, test_acc=acc)
    return model
