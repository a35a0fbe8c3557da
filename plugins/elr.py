"""`elr`: Early-Learning Regularization (Liu et al., "Early-Learning Regularization Prevents Memorization of Noisy
Labels", NeurIPS 2020; official code github.com/shengliu66/ELR, `ELR/`: `model/loss.py`, `config_cifar10.json`,
`config_cifar10_asym.json`, `config_cifar100.json`). The plain ELR, not ELR+ (no second network, mixup or weight
averaging).

Each training sample i keeps a target t_i, a temporal ensemble of the network's predictions: every time i is in a
mini-batch, p_i = softmax clamped to [1e-4, 1 - 1e-4] and t_i <- beta t_i + (1 - beta) p_i / sum(p_i) (detached;
t_i starts at zero). The loss is CE + lambda * mean_i log(1 - <t_i, p_i>) (paper Eq. 6 and loss.py): it falls as p_i
moves toward t_i, so the early-learning predictions hold the network back from memorising the noisy labels.
The targets are part of the epoch checkpoint, so a resumed run continues with exactly the targets it stopped with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from lnlbench import hookimpl
from lnlbench.methods import HParam, Method, MethodOutput, ScheduleItem
from lnlbench.training import finetune, optim_from
from lnlbench_plugins.fft import FFT_HPARAMS

if TYPE_CHECKING:  # the harness's context (and timm behind it) is not needed to read hyperparameters
    from lnlbench.context import MethodContext

PROB_CLAMP = 1e-4  # official loss.py: torch.clamp(y_pred, 1e-4, 1.0 - 1e-4)
_FT = "as `fft`, so the comparison isolates the regulariser: "
_OFFICIAL_OPT = " (official configs: SGD lr 0.02, momentum 0.9, weight decay 1e-3, batch 128, 150 epochs)"
_C10 = "official ELR/config_cifar10.json (train_loss.args)"
_C10_ASYM = "official ELR/config_cifar10_asym.json (train_loss.args)"
_C100 = "official ELR/config_cifar100.json (train_loss.args; the README uses it for CIFAR-100 sym and asym)"

ELR_HPARAMS: dict[str, HParam] = {
    **{name: hp.like(prefix=_FT) for name, hp in FFT_HPARAMS.items()},
    "lr": FFT_HPARAMS["lr"].like(prefix=_FT, suffix=_OFFICIAL_OPT),
    "beta": HParam(0.7, f"{_C10}: beta 0.7 (CIFAR-10 symmetric; other datasets use it too)", low=0.0, high=1.0,
                   high_open=True, help="momentum of the per-sample target ensemble"),
    "lambda": HParam(3.0, f"{_C10}: lambda 3 (CIFAR-10 symmetric; other datasets use it too)", low=0.0,
                     help="weight of the regulariser"),
}


class ELRLoss(torch.nn.Module):
    """CE + lambda * log(1 - <t_i, p_i>) with the per-sample targets t as a buffer (saved in checkpoints)."""

    def __init__(self, num_samples: int, num_classes: int, beta: float, lam: float) -> None:
        super().__init__()
        self.beta = beta
        self.lam = lam
        self.register_buffer("targets", torch.zeros(num_samples, num_classes))

    def update_targets(self, probs: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """t_i <- beta t_i + (1 - beta) p_i / sum(p_i) for the batch's samples (no gradient); returns the new t."""
        with torch.no_grad():
            p = probs.detach()
            new = self.beta * self.targets[indices] + (1.0 - self.beta) * p / p.sum(1, keepdim=True)
            self.targets[indices] = new
        return new

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Per-sample ELR loss of a batch of training samples `indices`; updates their targets first (loss.py)."""
        probs = F.softmax(logits.float(), dim=1).clamp(PROB_CLAMP, 1.0 - PROB_CLAMP)
        targets = self.update_targets(probs, indices.to(self.targets.device))
        ce = F.cross_entropy(logits.float(), labels, reduction="none")
        return ce + self.lam * elr_regularizer(targets, probs)


def elr_regularizer(targets: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Per-sample log(1 - <t_i, p_i>): lower the more p_i agrees with t_i (gradient into p only)."""
    return torch.log(1.0 - (targets * probs).sum(1))


class EarlyLearningRegularization(Method):
    name = "elr"
    description = "Early-Learning Regularization: CE plus a pull toward per-sample prediction ensembles (Liu et al., NeurIPS 2020)"
    hparam_space = ELR_HPARAMS

    @classmethod
    def hparam_overrides(cls, dataset: str, noise: str, rate: float) -> dict[str, tuple[Any, str]]:
        """The official configs' beta and lambda: CIFAR-100 (any noise), CIFAR-10 asymmetric."""
        if dataset.startswith("cifar100"):
            return {"beta": (0.9, f"{_C100}: beta 0.9"), "lambda": (7.0, f"{_C100}: lambda 7")}
        if dataset.startswith("cifar10") and noise == "asym":
            return {"beta": (0.9, f"{_C10_ASYM}: beta 0.9"), "lambda": (1.0, f"{_C10_ASYM}: lambda 1")}
        return {}

    @classmethod
    def schedule(cls, hparams: dict, dataset: str) -> list[ScheduleItem]:
        """As `fft`; the target ensemble is per visit of a sample (once per epoch), not scaled with the budget."""
        epochs = int(hparams["epochs"])
        return [
            ScheduleItem("epochs", epochs, "150 (official configs: trainer.epochs); 10 as `fft` (lnlbench reference)",
                         f"lr schedule {hparams['schedule']} over all epochs (official: cosine warm restarts or "
                         "step decay over 150 epochs)"),
            ScheduleItem("target updates per sample", epochs, "one per epoch, at each visit (official loss.py)",
                         f"beta {hparams['beta']} is not rescaled: its memory is about 1 / (1 - beta) visits"),
        ]

    def fit(self, ctx: MethodContext) -> MethodOutput:
        hp = ctx.hparams
        n = len(ctx.noisy_labels)
        elr = ELRLoss(n, ctx.num_classes, float(hp["beta"]), float(hp["lambda"])).to(ctx.device)
        model = ctx.make_model()
        with ctx.phase("finetune"):
            finetune(
                ctx, "finetune", model, torch.arange(n), ctx.noisy_labels, optim_from(hp), augment=hp["augment"],
                loss_fn=elr, extra_state={"elr_targets": elr},
            )
        agree = elr.targets.argmax(1).cpu() == ctx.noisy_labels
        diagnostics = {"beta": elr.beta, "lambda": elr.lam,
                       "targets_agreeing_with_noisy_label": float(agree.float().mean())}
        return MethodOutput(model, diagnostics=diagnostics)


@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    return [EarlyLearningRegularization]
