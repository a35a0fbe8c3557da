"""`turn`: TURN (Ahn et al., "Fine-tuning Pre-trained Models for Robustness Under Noisy Labels", 2023).

Step 1, linear probing of the frozen pre-trained backbone with a noise-robust loss (GCE), on cached features.
Step 2, noise reduction: per-sample losses of the step-1 model, a two-component GMM per class, clean when the
posterior of the low-loss component exceeds a threshold, then class-balanced selection (every class keeps as many
samples as the smallest class's clean count, most confident first).
Step 3, full fine-tuning of backbone and head, from the pre-trained backbone and the step-1 head, on the selection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sys

import torch

from lnlbench import hookimpl
from lnlbench.errors import TrainingError
from lnlbench.losses import generalized_cross_entropy
from lnlbench.methods import HParam, Method, MethodOutput, ScheduleItem, scale_epochs
from lnlbench.sample_selection import (
    BALANCE_RULES,
    GMM_MAX_ITER,
    GMM_REG_COVAR,
    GMM_TOL,
    NORMALIZATIONS,
    class_balanced_selection,
    classwise_clean_posterior,
    probe_losses,
    summarize_fits,
)
from lnlbench.training import choose_probe_settings, finetune, optim_from, probe_check
from lnlbench_plugins.fft import FFT_HPARAMS
from lnlbench_plugins.lp import LP_HPARAMS

if TYPE_CHECKING:  # the harness's context (and timm behind it) is not needed to read hyperparameters
    from lnlbench.context import MethodContext

_LP = "as `lp` (plugins/lp.py): "
REF_LP_EPOCHS = int(LP_HPARAMS["epochs"].default)
REF_FT_EPOCHS = int(FFT_HPARAMS["epochs"].default)


def lp_epochs_for(hp: dict) -> int:
    """Step-1 epochs: given, or the reference 50 per 10 fine-tuning epochs scaled to ft_epochs (SCALING_RULE)."""
    if hp["lp_epochs"] is not None:
        return int(hp["lp_epochs"])
    return int(scale_epochs(REF_LP_EPOCHS, REF_FT_EPOCHS, int(hp["ft_epochs"])))
_FT = "as `fft`, so step 3 differs from FFT only in its data and init: "

TURN_HPARAMS: dict[str, HParam] = {
    # Step 1: linear probing on cached features. The paper fixes the robust loss, not the optimiser.
    "lp_epochs": HParam(
        None,
        f"lnlbench reference schedule ({REF_LP_EPOCHS} probe epochs per {REF_FT_EPOCHS} fine-tuning epochs: `lp`'s "
        f"{REF_LP_EPOCHS}, `fft`'s {REF_FT_EPOCHS}; the paper fixes neither); null scales it with ft_epochs by the "
        "budget rule",
        low=1,
    ),
    "lp_lr": LP_HPARAMS["lr"].like(prefix=_LP, suffix=", on the GCE loss"),
    "lp_weight_decay": LP_HPARAMS["weight_decay"].like(prefix=_LP, suffix=", on the GCE loss"),
    "lp_batch_size": LP_HPARAMS["batch_size"].like(prefix=_LP),
    "lp_optimizer": LP_HPARAMS["optimizer"].like(_LP + "Adam"),
    "lp_schedule": LP_HPARAMS["schedule"].like(_LP + "cosine"),
    "loss": HParam("gce", "TURN paper, step 1: linear probing with a noise-robust loss (GCE)", choices=("gce", "ce")),
    "gce_q": LP_HPARAMS["gce_q"].like(),
    # Step 2: noise reduction.
    "selection_loss": HParam(
        "ce", "DivideMix official Train_cifar.py (eval_train): the mixture is fitted to per-sample cross-entropy",
        help="per-sample loss of the step-1 model the mixture is fitted to", choices=("ce", "gce"),
    ),
    "normalize": HParam(
        "class-minmax",
        "lnlbench choice: DivideMix (Train_cifar.py) min-max normalises losses before its GMM; TURN fits one GMM per "
        "class, so the min-max runs per class too",
        help="loss normalisation before the mixture", choices=NORMALIZATIONS,
    ),
    "gmm_max_iter": HParam(GMM_MAX_ITER, "DivideMix official Train_cifar.py: GaussianMixture(max_iter=10)", low=1),
    "gmm_tol": HParam(GMM_TOL, "DivideMix official Train_cifar.py: GaussianMixture(tol=1e-2)", low=0.0, low_open=True),
    "gmm_reg_covar": HParam(
        GMM_REG_COVAR, "DivideMix official Train_cifar.py: GaussianMixture(reg_covar=5e-4)", low=0.0
    ),
    "threshold": HParam(
        0.5, "TURN paper, step 2 (clean when the low-loss posterior exceeds 0.5, as DivideMix's p_threshold)",
        low=0.0, high=1.0, low_open=True, high_open=True,
    ),
    "balance": HParam(
        "min", "TURN paper, step 2: each class keeps the smallest class's clean count, most confident first",
        help="'none' keeps every sample over the threshold", choices=BALANCE_RULES,
    ),
    # Step 3: full fine-tuning on the selected subset.
    "ft_epochs": FFT_HPARAMS["epochs"].like(prefix=_FT),
    "ft_lr": FFT_HPARAMS["lr"].like(prefix=_FT),
    "ft_weight_decay": FFT_HPARAMS["weight_decay"].like(prefix=_FT),
    "ft_batch_size": FFT_HPARAMS["batch_size"].like(prefix=_FT),
    "ft_optimizer": FFT_HPARAMS["optimizer"].like(_FT + "SGD, momentum 0.9"),
    "ft_schedule": FFT_HPARAMS["schedule"].like(_FT + "cosine"),
    "augment": FFT_HPARAMS["augment"].like(prefix=_FT),
}


def step1_linear_probe(
    ctx: MethodContext, model: torch.nn.Module, train_feats: torch.Tensor, test_feats: torch.Tensor,
    record: dict | None = None,
) -> tuple[torch.nn.Linear, torch.Tensor]:
    """Train a copy of `model`'s head on cached features of the frozen backbone; `model` itself is not touched.

    Returns the trained head and its per-sample losses on the training set (the loss named by `selection_loss`);
    `record`, when given, receives the probe rule's choice and whether the probe learned (`probe_check`).
    """
    hp = ctx.hparams
    head = torch.nn.Linear(train_feats.shape[1], ctx.num_classes)
    head.load_state_dict(model.get_classifier().state_dict())
    lp, rule = choose_probe_settings(ctx, "linear_probe", head, train_feats,
                                     optim_from({**hp, "lp_epochs": lp_epochs_for(hp)}, "lp_"), hp["loss"],
                                     hp["gce_q"], hp["lp_lr"], hp["lp_weight_decay"])
    head, ce = probe_losses(ctx, "linear_probe", head, train_feats, test_feats, lp, hp["loss"], hp["gce_q"])
    check = probe_check(ctx, head, train_feats, hp["loss"], hp["gce_q"], "TURN's step-1 probe")
    if record is not None:
        record.update(check, lr=lp.lr, weight_decay=lp.weight_decay, rule=rule)
    if hp["selection_loss"] == "ce":
        return head, ce
    with torch.inference_mode():
        logits = head(train_feats.to(ctx.device).float())
        losses = generalized_cross_entropy(logits, ctx.noisy_labels.to(ctx.device), hp["gce_q"]).cpu()
    return head, losses


def step2_select(ctx: MethodContext, losses: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Per-class GMM clean posterior, threshold and class-balanced selection; returns the mask and diagnostics."""
    hp = ctx.hparams
    prob, fits = classwise_clean_posterior(
        losses, ctx.noisy_labels, ctx.num_classes, normalize=hp["normalize"],
        max_iter=hp["gmm_max_iter"], tol=hp["gmm_tol"], reg_covar=hp["gmm_reg_covar"], seed=ctx.seed,
    )
    chosen = class_balanced_selection(prob, ctx.noisy_labels, ctx.num_classes, hp["threshold"], hp["balance"])
    diag = {
        "selection_rule": chosen.as_record(),
        "gmm": {**summarize_fits(fits), "per_class": {str(c): f.as_record() for c, f in fits.items()}},
        "fallback": bool(chosen.fallback_classes),
    }
    return chosen.mask, diag


class Turn(Method):
    name = "turn"
    description = (
        "TURN: robust linear probing, per-class GMM noise reduction, then full fine-tuning on the balanced clean "
        "subset (Ahn et al., 2023)"
    )
    needs = frozenset({"features"})
    selects = True
    hparam_space = TURN_HPARAMS

    @classmethod
    def budget_hparams(cls, epochs: int) -> dict:
        """A budget is TURN's fine-tuning epochs (the images it trains on, as `fft`); step 1 follows by the rule."""
        return {"ft_epochs": epochs}

    @classmethod
    def schedule(cls, hparams: dict, dataset: str) -> list[ScheduleItem]:
        """Step-1 and step-3 epochs at this budget."""
        return [
            ScheduleItem("step-3 fine-tuning epochs", int(hparams["ft_epochs"]),
                         f"{REF_FT_EPOCHS} (lnlbench reference schedule, as `fft`)", f"lr schedule {hparams['ft_schedule']}"),
            ScheduleItem("step-1 probe epochs", lp_epochs_for(hparams),
                         f"{REF_LP_EPOCHS} per {REF_FT_EPOCHS} fine-tuning epochs (lnlbench reference schedule)",
                         f"lr schedule {hparams['lp_schedule']}"),
        ]

    def fit(self, ctx: MethodContext) -> MethodOutput:
        hp = ctx.hparams
        model = ctx.make_model(0)
        with ctx.phase("features"):
            train_feats, test_feats = ctx.features("train"), ctx.features("test")
        probe: dict = {}
        with ctx.phase("linear_probe"):
            head, losses = step1_linear_probe(ctx, model, train_feats, test_feats, record=probe)
        with ctx.phase("select"):
            mask, diag = step2_select(ctx, losses)
            ctx.record_selection(mask, None, "net1")  # the harness adds precision, recall and the subset's noise
        if diag["fallback"] and ctx.verbose:
            print(f"  [turn] classes {diag['selection_rule']['fallback_classes']} had no sample over the threshold; "
                  "kept their most confident samples (see metrics.diagnostics.selection_rule)", file=sys.stderr)
        indices = torch.nonzero(mask).flatten()
        if len(indices) == 0:  # only when the training set is empty; the fallback rule guarantees samples otherwise
            raise TrainingError("TURN selected no training sample; check that the training set is not empty")
        model.get_classifier().load_state_dict(head.state_dict())
        with ctx.phase("finetune"):
            finetune(
                ctx, "finetune", model, indices, ctx.noisy_labels, optim_from(hp, "ft_"), augment=hp["augment"],
            )
        diag["finetune_subset_size"] = len(indices)
        diag["probe"] = probe
        if not probe.get("learned", True):
            diag["warnings"] = [probe["warning"]]
        return MethodOutput(model, diagnostics=diag)


@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    return [Turn]
