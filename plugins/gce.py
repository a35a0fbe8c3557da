"""`gce`: full fine-tuning with the Generalized Cross Entropy loss (Zhang & Sabuncu, "Generalized Cross Entropy Loss
for Training Deep Neural Networks with Noisy Labels", NeurIPS 2018).

L_q(f(x), y) = (1 - p_y^q) / q (paper Eq. 6), q = 0.7 (Sec. 4). Its gradient is p_y^q times CE's, so samples the
network finds unlikely under their label (often the mislabelled ones) weigh less than under CE; q -> 0 is CE, q = 1
is MAE. The paper's truncated variant (L_trunc with pruning, Sec. 3.3) is not this method. Everything else is `fft`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lnlbench import hookimpl
from lnlbench.methods import HParam, Method, MethodOutput, ScheduleItem
from lnlbench.training import finetune, optim_from
from lnlbench_plugins.fft import FFT_HPARAMS

if TYPE_CHECKING:  # the harness's context (and timm behind it) is not needed to read hyperparameters
    from lnlbench.context import MethodContext

_FT = "as `fft`, so the comparison isolates the loss: "

GCE_HPARAMS: dict[str, HParam] = {
    **{name: hp.like(prefix=_FT) for name, hp in FFT_HPARAMS.items()},
    "q": HParam(0.7, "GCE paper, Sec. 4 (Experiments): q = 0.7 (also TURN's GCE, plugins/turn.py)", low=0.0, high=1.0,
                low_open=True, help="q -> 0 is CE, q = 1 is MAE"),
}


class GeneralizedCrossEntropy(Method):
    name = "gce"
    description = "Full fine-tuning with Generalized Cross Entropy L_q (Zhang & Sabuncu, NeurIPS 2018)"
    hparam_space = GCE_HPARAMS

    @classmethod
    def schedule(cls, hparams: dict, dataset: str) -> list[ScheduleItem]:
        """As `fft`: the epochs, which the cosine schedule spans, so it keeps its shape at any budget."""
        return [ScheduleItem("epochs", int(hparams["epochs"]), f"{FFT_HPARAMS['epochs'].default} (as `fft`)",
                             f"lr schedule {hparams['schedule']} over all epochs")]

    def fit(self, ctx: MethodContext) -> MethodOutput:
        q = float(ctx.hparams["q"])
        model = ctx.make_model()
        with ctx.phase("finetune"):
            finetune(
                ctx, "finetune", model, torch.arange(len(ctx.noisy_labels)), ctx.noisy_labels, optim_from(ctx.hparams),
                augment=ctx.hparams["augment"], loss="gce", gce_q=q,  # lnlbench.losses.generalized_cross_entropy
            )
        return MethodOutput(model, diagnostics={"loss": "gce", "q": q})


@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    return [GeneralizedCrossEntropy]
