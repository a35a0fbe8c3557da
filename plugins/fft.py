"""`fft`: plain full fine-tuning of backbone and head on all noisy labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lnlbench import hookimpl
from lnlbench.methods import HParam, Method, MethodOutput, ScheduleItem
from lnlbench.training import finetune, optim_from

if TYPE_CHECKING:  # the harness's context (and timm behind it) is not needed to read hyperparameters
    from lnlbench.context import MethodContext

# SGD with momentum and cosine decay is the common fine-tuning recipe for ImageNet-pretrained CNNs on CIFAR
# (e.g. Kornblith et al., CVPR 2019); the TURN paper's FFT baseline fine-tunes all parameters with cross-entropy.
FFT_HPARAMS: dict[str, HParam] = {
    "epochs": HParam(10, "lnlbench choice: long enough to memorise noisy labels on cifar10-mini (5,000 images)", low=1),
    "lr": HParam(0.01, "lnlbench choice: SGD fine-tuning lr (Kornblith et al., CVPR 2019 search range)", low=0.0, low_open=True),
    "weight_decay": HParam(5e-4, "CIFAR convention (Co-teaching / DivideMix official code)", low=0.0),
    "batch_size": HParam(64, "DivideMix official code, CIFAR batch size", low=1),
    "optimizer": HParam("sgd", "DivideMix / Co-teaching+ official code use SGD with momentum 0.9", choices=("sgd", "adam", "adamw")),
    "schedule": HParam("cosine", "lnlbench choice", choices=("cosine", "constant")),
    "augment": HParam(True, "random crop (pad 4) + horizontal flip, the CIFAR convention"),
}


class FullFineTune(Method):
    name = "fft"
    description = "Full fine-tuning of backbone and head with cross-entropy (the standard transfer baseline)"
    hparam_space = FFT_HPARAMS

    @classmethod
    def schedule(cls, hparams: dict, dataset: str) -> list[ScheduleItem]:
        """The epochs; the cosine schedule spans them, so it keeps its shape at any budget."""
        return [ScheduleItem("epochs", int(hparams["epochs"]), f"{FFT_HPARAMS['epochs'].default} (lnlbench reference)",
                             f"lr schedule {hparams['schedule']} over all epochs")]

    def fit(self, ctx: MethodContext) -> MethodOutput:
        model = ctx.make_model()
        with ctx.phase("finetune"):
            finetune(
                ctx, "finetune", model, torch.arange(len(ctx.noisy_labels)), ctx.noisy_labels, optim_from(ctx.hparams),
                augment=ctx.hparams["augment"],
            )
        return MethodOutput(model)


@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    return [FullFineTune]
