"""`lp`: linear probing: a linear head trained on features of the frozen pre-trained backbone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lnlbench import hookimpl
from lnlbench.methods import HParam, Method, MethodOutput, ScheduleItem
from lnlbench.training import FeatureClassifier, choose_probe_settings, optim_from, probe_check, train_linear_head

if TYPE_CHECKING:  # the harness's context (and timm behind it) is not needed to read hyperparameters
    from lnlbench.context import MethodContext

# Defaults: the TURN paper (Ahn et al. 2023) trains its linear-probing step with a noise-robust loss but does not
# fix an optimiser for plain LP. lr and weight decay are chosen per run by the probe rule (lnlbench.training.
# PROBE_RULE: a held-out split of the noisy training labels), because no fixed value fits every resolution: the
# pooled features' norm is about 5 at 32 px and 65 at 64 px (cifar10-mini), so a weight decay of 0.3 that suits
# 64 px holds the 32 px probe at the uniform prediction (issue 11).
_RULE = "lnlbench probe rule (training.PROBE_RULE): null chooses it on a held-out split of the noisy training labels"
LP_HPARAMS: dict[str, HParam] = {
    "epochs": HParam(50, "lnlbench choice: cached features make epochs cheap; accuracy plateaus by ~30", low=1),
    "lr": HParam(None, _RULE + " from {1e-3, 1e-2} (Adam's usual default, Kingma & Ba 2015, and ten times it)",
                 low=0.0, low_open=True),
    "weight_decay": HParam(None, _RULE + " from {0, 1e-3, 1e-2, 0.1, 0.3, 1}", low=0.0),
    "batch_size": HParam(256, "lnlbench choice", low=1),
    "optimizer": HParam("adam", "lnlbench choice", choices=("adam", "adamw", "sgd")),
    "schedule": HParam("cosine", "lnlbench choice", choices=("cosine", "constant")),
    "loss": HParam("ce", "plain linear probing uses cross-entropy", choices=("ce", "gce")),
    "gce_q": HParam(0.7, "Zhang & Sabuncu (NeurIPS 2018), Sec. 4: q = 0.7", low=0.0, high=1.0, low_open=True),
}


class LinearProbe(Method):
    name = "lp"
    description = "Linear probing on a frozen pre-trained backbone (features cached; cf. Kumar et al., ICLR 2022)"
    needs = frozenset({"features"})
    hparam_space = LP_HPARAMS

    @classmethod
    def schedule(cls, hparams: dict, dataset: str) -> list[ScheduleItem]:
        """The probe's epochs; the cosine schedule spans them, so it keeps its shape at any budget."""
        return [ScheduleItem("epochs", int(hparams["epochs"]), f"{LP_HPARAMS['epochs'].default} (lnlbench reference)",
                             f"lr schedule {hparams['schedule']} over all epochs; lr and weight decay by the probe rule"
                             " when null")]

    def fit(self, ctx: MethodContext) -> MethodOutput:
        hp = ctx.hparams
        with ctx.phase("features"):
            train_feats, test_feats = ctx.features("train"), ctx.features("test")
        model = ctx.make_model()
        head = torch.nn.Linear(train_feats.shape[1], ctx.num_classes)
        head.load_state_dict(model.get_classifier().state_dict())
        with ctx.phase("linear_probe"):
            settings, rule = choose_probe_settings(ctx, "linear_probe", head, train_feats, optim_from(hp), hp["loss"],
                                                   hp["gce_q"], hp["lr"], hp["weight_decay"])
            head = train_linear_head(
                ctx, "linear_probe", head, train_feats, ctx.noisy_labels, test_feats, settings,
                loss=hp["loss"], gce_q=hp["gce_q"],
            )
        check = probe_check(ctx, head, train_feats, hp["loss"], hp["gce_q"], "the linear probe")
        diagnostics = {"probe": {**check, "lr": settings.lr, "weight_decay": settings.weight_decay, "rule": rule}}
        if not check["learned"]:
            diagnostics["warnings"] = [check["warning"]]
        return MethodOutput(FeatureClassifier(model, head), diagnostics=diagnostics)


@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    return [LinearProbe]
