"""`sce`: full fine-tuning with the Symmetric Cross Entropy loss (Wang et al., "Symmetric Cross Entropy for Robust
Learning with Noisy Labels", ICCV 2019; official code github.com/YisenWang/symmetric_cross_entropy_for_noisy_labels,
`loss.py` and `train_models.py`).

L_SL = alpha * CE + beta * RCE (paper Eq. 6). RCE = -sum_k p_k log q_k is CE with prediction and label swapped; the
label q is one-hot, so log 0 is replaced by a constant A < 0 and RCE = -A (1 - p_y), bounded in [0, -A]. alpha, beta
per dataset from the paper (Sec. 4.1) and the official `train_models.py`; everything else is `fft`.

A: the paper sets A = -4 (where it defines RCE and in its experimental setup); the official `loss.py` instead clips the one-hot label at 1e-4, which is
A = ln(1e-4) = -9.21. The default follows the paper; `--set log_zero=-9.2103` gives the official code's RCE weight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from lnlbench import hookimpl
from lnlbench.losses import SCE_LOG_ZERO, symmetric_cross_entropy
from lnlbench.methods import HParam, Method, MethodOutput, ScheduleItem
from lnlbench.training import finetune, optim_from
from lnlbench_plugins.fft import FFT_HPARAMS

if TYPE_CHECKING:  # the harness's context (and timm behind it) is not needed to read hyperparameters
    from lnlbench.context import MethodContext

_FT = "as `fft`, so the comparison isolates the loss: "
_CIFAR10 = "SCE paper, Sec. 4.1 and official train_models.py (CIFAR-10: -alpha 0.1 -beta 1.0)"
_CIFAR100 = "SCE paper, Sec. 4.1 and official train_models.py (CIFAR-100: -alpha 6.0 -beta 0.1)"

SCE_HPARAMS: dict[str, HParam] = {
    **{name: hp.like(prefix=_FT) for name, hp in FFT_HPARAMS.items()},
    "alpha": HParam(0.1, _CIFAR10 + "; CIFAR-100 has its own values", low=0.0, help="weight of CE"),
    "beta": HParam(1.0, _CIFAR10 + "; CIFAR-100 has its own values", low=0.0, help="weight of RCE"),
    "log_zero": HParam(
        SCE_LOG_ZERO,
        "SCE paper: log 0 = A with A = -4 (official loss.py clips the label at 1e-4 instead: A = ln 1e-4 = -9.21)",
        help="A, the value of log 0 in RCE", high=0.0, high_open=True,
    ),
}


class SymmetricCrossEntropy(Method):
    name = "sce"
    description = "Full fine-tuning with Symmetric Cross Entropy, alpha CE + beta RCE (Wang et al., ICCV 2019)"
    hparam_space = SCE_HPARAMS

    @classmethod
    def hparam_overrides(cls, dataset: str, noise: str, rate: float) -> dict[str, tuple[Any, str]]:
        """CIFAR-100's alpha and beta (the defaults are CIFAR-10's, used for every other dataset)."""
        if dataset.startswith("cifar100"):
            return {"alpha": (6.0, _CIFAR100), "beta": (0.1, _CIFAR100)}
        return {}

    @classmethod
    def validate(cls, hparams: dict, rate: float) -> None:
        from lnlbench.errors import ConfigError

        if hparams["alpha"] == 0 and hparams["beta"] == 0:
            raise ConfigError("sce with alpha=0 and beta=0 has no loss; pass --set alpha=... or --set beta=...")

    @classmethod
    def schedule(cls, hparams: dict, dataset: str) -> list[ScheduleItem]:
        """As `fft`: the epochs, which the cosine schedule spans, so it keeps its shape at any budget."""
        return [ScheduleItem("epochs", int(hparams["epochs"]), f"{FFT_HPARAMS['epochs'].default} (as `fft`)",
                             f"lr schedule {hparams['schedule']} over all epochs")]

    def fit(self, ctx: MethodContext) -> MethodOutput:
        hp = ctx.hparams
        alpha, beta, log_zero = float(hp["alpha"]), float(hp["beta"]), float(hp["log_zero"])

        def sce_loss(logits: torch.Tensor, labels: torch.Tensor, _indices: torch.Tensor) -> torch.Tensor:
            return symmetric_cross_entropy(logits, labels, alpha, beta, log_zero)

        model = ctx.make_model()
        with ctx.phase("finetune"):
            finetune(
                ctx, "finetune", model, torch.arange(len(ctx.noisy_labels)), ctx.noisy_labels, optim_from(hp),
                augment=hp["augment"], loss_fn=sce_loss,
            )
        return MethodOutput(model, diagnostics={"loss": "sce", "alpha": alpha, "beta": beta, "log_zero": log_zero})


@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    return [SymmetricCrossEntropy]
