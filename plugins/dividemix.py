"""`dividemix`: DivideMix (Li, Socher and Hoi, "DivideMix: Learning with Noisy Labels as Semi-supervised Learning",
ICLR 2020; official code github.com/LiJunnan1992/DivideMix, `Train_cifar.py`).

Two networks. Warm-up: cross-entropy on all noisy labels (plus the negative-entropy confidence penalty under
asymmetric noise). Then every epoch: per-sample cross-entropy of each network on the un-augmented training set,
min-max normalised, a two-component GMM (10 iterations, tol 1e-2, reg_covar 5e-4); samples whose low-loss posterior
exceeds `p_threshold` are labelled, the rest unlabelled. Each network trains on its PEER's division with label
co-refinement, label co-guessing, sharpening and MixMatch, plus the uniform-prior penalty. Test: both networks'
summed logits.

Budget scaling (lnlbench.methods.SCALING_RULE): the official run is 300 epochs with a warm-up of 10 (CIFAR-10) or
30 (CIFAR-100) epochs, a 16-epoch linear ramp-up of lambda_u that starts where the warm-up ends, and the lr divided
by 10 after epoch 150. A run here has `epochs` in all (warm-up included, as `--num_epochs` there): the warm-up is
10 / 300 * epochs (whole epochs, at least 1), the lr milestone 150 / 300 * epochs, and the ramp-up keeps its official
ratio to the warm-up it follows (16 / 10 of the realised warm-up, 16 / 30 for CIFAR-100: 16 / 300 * epochs unless
the warm-up is extended as below). The lr milestone does not move with an extension: an extended warm-up can reach
it, and then the whole semi-supervised phase runs at lr / 10.

Warm-up extension (lnlbench, issue 11). The co-divide is only as good as the warm-up networks: the official warm-up is
10 epochs of 50,000 images (about 3,900 SGD steps at batch 128), but the scaled one on a 5,000-image set is one epoch
of 39 steps, after which the training loss still sits at the uniform-prediction value (2.297 against ln 10 = 2.303,
cifar10-mini, 32 px, sym 50%). The GMM runs on min-max normalised losses, so it always finds two components, even
when they overlap; the labelled sets were near the base rate (precision 0.56 to 0.79 at 50% noise), and MixMatch
with lambda_u = 25, reached within half an epoch, pulled the ensemble from 0.26 to 0.16. Even after 3 warm-up
epochs the two components overlapped (Ashman's D 0.87 and 0.95, means 0.34 / 0.42 and 0.33 / 0.44, standard
deviations 0.08 to 0.12). With `warmup_until_separated` (default) the warm-up goes on past its scaled length, at
most to half the budget, until both networks' loss mixtures are separated: Ashman's D of the two components at
least `min_separation` (2, the bound Ashman, Bird and Zepf 1994 give for a clean separation of two normals). The
check uses only the noisy labels (the losses the next co-divide would fit); each check is in `warmup_checks`.

Measured with this rule (cifar10-mini, sym 50%, default budget, CPU, seed 0). At 64 px, the paper's regime here: the
warm-up ran to its cap of 5 epochs (D rose from 0.92 / 1.45 to 1.86 / 1.98, just short of 2), the ensemble reached
0.5820 after it, and the five training epochs (lr / 10, lambda_u ramping to 15.6) went 0.5995, 0.6070, 0.6030,
0.6115, 0.6180: final 0.6180, 3.6 points above its own warm-up, labelled sets of 2,394 with precision 0.835 / 0.852.
At 32 px (weak features): warm-up cap of 5 epochs (D 0.68 to 1.21), 0.3585 after it, final 0.3350: no collapse
(before: 0.2635 after warm-up, 0.1590 final), but 0.02 under its own warm-up accuracy.

Size (over 400 lines, on purpose): one method, its sourced hyperparameters, its scaled schedule and its warm-up
check; split apart they would hide the schedule from the code that follows it.
"""

from __future__ import annotations

from dataclasses import replace
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from lnlbench import engine, hookimpl, progress
from lnlbench.errors import ConfigError
from lnlbench.methods import HParam, Method, MethodOutput, ScheduleItem, scale_epochs
from lnlbench.mixmatch import (
    co_guess,
    co_refine,
    linear_rampup,
    mix,
    negative_entropy,
    semi_loss,
    uniform_prior_penalty,
)
from lnlbench.sample_selection import GMM_MAX_ITER, GMM_REG_COVAR, GMM_TOL, gmm_clean_posterior, minmax, separation
from lnlbench.training import optim_from

if TYPE_CHECKING:  # the harness's context (and timm behind it) is not needed to read hyperparameters
    from lnlbench.context import MethodContext

OFFICIAL_EPOCHS = 300  # Train_cifar.py: --num_epochs 300
OFFICIAL_RAMPUP = 16  # Train_cifar.py: linear_rampup(..., rampup_length=16)
OFFICIAL_LR_DROP = 150  # Train_cifar.py: lr /= 10 once epoch >= 150


def official_warmup(dataset: str) -> int:
    """Train_cifar.py: warm_up = 10 for cifar10, 30 for cifar100."""
    return 30 if dataset.startswith("cifar100") else 10
_TABLE7 = "DivideMix paper, Appendix B, Table 7 (lambda_u per dataset and noise)"

# lambda_u per (dataset, noise kind, rate), Appendix B / Table 7 of the paper (the argparse default is 25).
LAMBDA_U: dict[tuple[str, str], dict[float, float]] = {
    ("cifar10", "sym"): {0.2: 0.0, 0.5: 25.0, 0.8: 25.0, 0.9: 50.0},
    ("cifar10", "asym"): {0.4: 0.0},
    ("cifar100", "sym"): {0.2: 25.0, 0.5: 150.0, 0.8: 150.0, 0.9: 150.0},
}

DIVIDEMIX_HPARAMS: dict[str, HParam] = {
    "epochs": HParam(
        10, "lnlbench budget, as `fft` (official Train_cifar.py: --num_epochs 300, warm-up included)", low=2
    ),
    "warmup_epochs": HParam(
        None,
        "official Train_cifar.py: warm_up = 10 (cifar10) or 30 (cifar100) of 300 epochs; null scales it by the "
        "budget rule (warm_up / 300 * epochs, whole epochs, 1 to epochs - 1), extended by `warmup_until_separated`; "
        "a number is used as it is",
        low=1,
    ),
    "warmup_until_separated": HParam(
        True,
        "lnlbench choice, measured in plugins/dividemix.py's docstring: with a null warmup_epochs, warm up past the "
        "scaled length (at most half the budget) until both networks' loss GMMs are separated (Ashman's D)",
    ),
    "min_separation": HParam(
        2.0,
        "Ashman, Bird & Zepf (Astron. J. 108, 1994): D > 2 for a clean separation of two normal components",
        help="Ashman's D of the loss GMM, sqrt(2)|mu1 - mu2| / sqrt(s1^2 + s2^2)", low=0.0,
    ),
    "lr": HParam(0.02, "official Train_cifar.py: --lr 0.02 (SGD, momentum 0.9)", low=0.0, low_open=True),
    "weight_decay": HParam(5e-4, "official Train_cifar.py: SGD weight_decay=5e-4", low=0.0),
    "batch_size": HParam(
        64, "official Train_cifar.py: --batch_size 64 (warm-up uses twice that, as dataloader_cifar.py)", low=2
    ),
    "optimizer": HParam("sgd", "official Train_cifar.py: SGD, momentum 0.9", choices=("sgd", "adam", "adamw")),
    "schedule": HParam(
        "step", "official Train_cifar.py: lr / 10 from epoch 150 of 300, scaled to 150 / 300 * epochs; stepped per "
        "epoch", choices=("step", "cosine", "constant"),
    ),
    "augment": HParam(True, "official dataloader_cifar.py: RandomCrop(32, padding=4) + RandomHorizontalFlip"),
    "alpha": HParam(4.0, "official Train_cifar.py: --alpha 4 (Beta parameter of MixMatch)", low=0.0, low_open=True),
    "T": HParam(0.5, "official Train_cifar.py: --T 0.5 (sharpening temperature)", low=0.0, low_open=True),
    "p_threshold": HParam(
        0.5, "official Train_cifar.py: --p_threshold 0.5", low=0.0, high=1.0, low_open=True, high_open=True,
    ),
    "lambda_u": HParam(25.0, "official Train_cifar.py: --lambda_u 25 (per-setting values: " + _TABLE7 + ")", low=0.0),
    "rampup_epochs": HParam(
        None,
        "official Train_cifar.py: linear_rampup(rampup_length=16) from the end of the warm-up (warm_up = 10); null "
        "keeps that 16 : warm_up ratio to the realised warm-up (16 / 300 * epochs when the warm-up is not extended)",
        low=0.0,
    ),
    "conf_penalty": HParam(
        False, "official Train_cifar.py: NegEntropy penalty in warm-up only when noise_mode == 'asym'",
    ),
    "loss_window": HParam(
        1, "official Train_cifar.py (eval_train): losses averaged over the last 5 epochs only when r == 0.9", low=1,
    ),
    "gmm_max_iter": HParam(GMM_MAX_ITER, "official Train_cifar.py: GaussianMixture(max_iter=10)", low=1),
    "gmm_tol": HParam(GMM_TOL, "official Train_cifar.py: GaussianMixture(tol=1e-2)", low=0.0, low_open=True),
    "gmm_reg_covar": HParam(GMM_REG_COVAR, "official Train_cifar.py: GaussianMixture(reg_covar=5e-4)", low=0.0),
}


def _table_key(dataset: str, noise: str) -> tuple[str, str] | None:
    family = "cifar100" if dataset.startswith("cifar100") else "cifar10" if dataset.startswith("cifar10") else None
    kind = "sym" if noise in ("sym", "sym-dividemix") else "asym" if noise in ("asym", "pairflip") else None
    return (family, kind) if family and kind and (family, kind) in LAMBDA_U else None


def _nearest(table: dict[float, float], rate: float) -> float:
    """The tabulated rate nearest to `rate` (ties go to the higher rate)."""
    return min(table, key=lambda r: (abs(r - rate), -r))


def scaled_warmup(dataset: str, epochs: int, official_epochs: int = OFFICIAL_EPOCHS) -> int:
    """The official warm-up (10 of 300 epochs, 30 for CIFAR-100) scaled to `epochs`: at least 1, at most epochs - 1."""
    return int(scale_epochs(official_warmup(dataset), official_epochs, epochs, low=1, high=epochs - 1))


def warmup_bounds(hp: dict, dataset: str, official_epochs: int = OFFICIAL_EPOCHS) -> tuple[int, int]:
    """(fewest, most) warm-up epochs: the scaled (or given) length, and half the budget when it may be extended."""
    epochs = int(hp["epochs"])
    if hp["warmup_epochs"] is not None:
        return int(hp["warmup_epochs"]), int(hp["warmup_epochs"])
    low = scaled_warmup(dataset, epochs, official_epochs)
    return (low, max(low, epochs // 2)) if hp["warmup_until_separated"] else (low, low)


def rampup_for(hp: dict, dataset: str, warmup: int) -> float:
    """The lambda_u ramp-up length: given, or the official 16 epochs per official warm-up, times the realised one."""
    if hp["rampup_epochs"] is not None:
        return float(hp["rampup_epochs"])
    return OFFICIAL_RAMPUP / official_warmup(dataset) * warmup


def divide(losses: torch.Tensor, history: list[torch.Tensor], hp: dict, seed: int) -> tuple[torch.Tensor, Any]:
    """DivideMix's co-divide for one network: min-max normalise, average the last `loss_window` epochs, fit the
    GMM; returns the clean probability of every sample and the fit."""
    history.append(minmax(losses).float())
    del history[: -int(hp["loss_window"])]
    x = torch.stack(history).mean(0)
    fit = gmm_clean_posterior(x, max_iter=hp["gmm_max_iter"], tol=hp["gmm_tol"], reg_covar=hp["gmm_reg_covar"],
                              seed=seed)
    return fit.clean_prob.float(), fit


class _Cycle:
    """Endless shuffled passes over `indices` (the unlabelled loader's re-created iterator), taken a batch at a time:
    `take(b)` returns the next b of the stream, crossing into a fresh shuffle when a pass runs out (the same
    sequence as drawing them one by one, without a Python step per sample)."""

    def __init__(self, indices: torch.Tensor, generator: torch.Generator) -> None:
        self.indices, self.generator = indices, generator
        self.pass_ = indices[:0]
        self.pos = 0

    def take(self, b: int) -> torch.Tensor:
        parts = []
        while b > 0:
            if self.pos == len(self.pass_):
                self.pass_ = self.indices[torch.randperm(len(self.indices), generator=self.generator)]
                self.pos = 0
            part = self.pass_[self.pos : self.pos + b]
            self.pos += len(part)
            b -= len(part)
            parts.append(part)
        return torch.cat(parts) if len(parts) > 1 else parts[0]


def _batches(indices: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled mini-batches; a last batch of one sample is dropped (batch norm cannot train on it)."""
    out = list(engine.index_batches(indices, batch_size, generator))
    if out and len(out[-1]) < 2:
        out.pop()
    return out


def run_warmup(
    ctx: MethodContext,
    nets: tuple[torch.nn.Module, ...] | list[torch.nn.Module],
    opts: list[torch.optim.Optimizer],
    scheds: list[Any],
    step,
    state: dict[str, Any],
    hp: dict,
    bounds: tuple[int, int],
    evaluate: Callable[[], float],
) -> int:
    """DivideMix's warm-up, shared with UNICON (the same recipe in both official codes): each network trains on all
    noisy labels with cross-entropy (plus the negative-entropy penalty when `conf_penalty`), its own shuffle and batch
    2 x batch_size, for at least bounds[0] and at most bounds[1] epochs, ending early once both networks' loss GMMs
    are separated (`min_separation`). Resumable through `state` (its "memory" dict keeps the checks and the decision);
    returns the number of warm-up epochs run."""
    memory = state["memory"]
    min_warmup, max_warmup = bounds
    labels = ctx.noisy_labels.to(ctx.device)
    n = len(labels)
    gmm_hp = {**{k: DIVIDEMIX_HPARAMS[k].default for k in ("gmm_max_iter", "gmm_tol", "gmm_reg_covar")}, **hp}
    with ctx.phase("warmup"):
        for epoch in ctx.epochs("warmup", max_warmup, state):
            if memory["warmup_done"] is not None:
                break  # decided at the end of the previous epoch (and checkpointed with it)
            losses = []
            for i, (net, opt) in enumerate(zip(nets, opts)):
                net.train()
                total, seen = torch.zeros((), device=ctx.device), 0
                aug = ctx.rng("warmup", "augment", i, epoch) if hp["augment"] else None
                order = ctx.rng("warmup", "order", i, epoch)
                for idx in progress.bar(_batches(torch.arange(n), 2 * int(hp["batch_size"]), order),
                                        desc=f"warmup net{i + 1} epoch {epoch + 1}", unit="batch"):
                    with ctx.precision.autocast(ctx.device):
                        logits = net(ctx.train.batch(idx, aug))
                    loss = F.cross_entropy(logits.float(), labels[engine.to_device(idx, ctx.device)])
                    full = loss + negative_entropy(logits) if hp["conf_penalty"] else loss
                    step(opt, full)
                    total += loss.detach() * len(idx)
                    seen += len(idx)
                    ctx.images_seen += len(idx)
                losses.append(engine.check_finite(total / max(seen, 1), "warmup", epoch))
            for s in scheds:
                s.step()
            extra = {}
            if epoch + 1 >= max_warmup:
                memory["warmup_done"] = epoch + 1
            elif epoch + 1 >= min_warmup:
                seps = DivideMix._separations(ctx, nets, gmm_hp, epoch)
                memory["warmup_checks"].append({"epoch": epoch, "separation": seps})
                extra = {"separation": seps[0], "separation_net2": seps[1]}
                if min(seps) >= hp["min_separation"]:
                    memory["warmup_done"] = epoch + 1
            ctx.log_epoch(
                "warmup", epoch, train_loss=losses[0], train_loss_net2=losses[1], test_acc=evaluate(), **extra
            )
    return int(memory["warmup_done"] or max_warmup)


class Ensemble(torch.nn.Module):
    """The two networks tested together: the sum of their logits (Train_cifar.py's `test`)."""

    def __init__(self, net1: torch.nn.Module, net2: torch.nn.Module) -> None:
        super().__init__()
        self.net1, self.net2 = net1, net2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net1(x).float() + self.net2(x).float()


class DivideMix(Method):
    name = "dividemix"
    description = "DivideMix: co-divided GMM clean/noisy split and MixMatch between two networks (Li et al., ICLR 2020)"
    needs = frozenset({"two_networks"})
    selects = True
    hparam_space = DIVIDEMIX_HPARAMS

    @classmethod
    def hparam_overrides(cls, dataset: str, noise: str, rate: float) -> dict[str, tuple[Any, str]]:
        out: dict[str, tuple[Any, str]] = {}
        if noise in ("asym", "pairflip"):
            out["conf_penalty"] = (True, "official Train_cifar.py: NegEntropy warm-up penalty for asymmetric noise")
        key = _table_key(dataset, noise)
        if key is not None:
            table = LAMBDA_U[key]
            near = _nearest(table, rate)
            out["lambda_u"] = (table[near], f"{_TABLE7}: {key[0]} {key[1]} {near} (nearest tabulated rate)")
        if noise in ("sym", "sym-dividemix") and rate >= 0.85:
            out["p_threshold"] = (
                0.6, "DivideMix paper, Appendix B: tau = 0.6 for 90% noise (the author, DivideMix issue #10)"
            )
            out["loss_window"] = (5, "official Train_cifar.py (eval_train): average of the last 5 epochs when r == 0.9")
        return out

    @classmethod
    def validate(cls, hparams: dict, rate: float) -> None:
        w = hparams["warmup_epochs"]
        if w is not None and w >= hparams["epochs"]:
            raise ConfigError(
                f"dividemix warmup_epochs={w} leaves no training epoch of epochs={hparams['epochs']}; "
                f"pass --set warmup_epochs=<below {hparams['epochs']}> or more epochs"
            )

    @classmethod
    def schedule(cls, hparams: dict, dataset: str) -> list[ScheduleItem]:
        """Warm-up, its possible extension, the lambda_u ramp-up and the lr milestone at this budget."""
        epochs = int(hparams["epochs"])
        low, high = warmup_bounds(hparams, dataset)
        warm = official_warmup(dataset or "cifar10")
        ramp_low, ramp_high = rampup_for(hparams, dataset, low), rampup_for(hparams, dataset, high)
        items = [
            ScheduleItem("epochs", epochs, f"{OFFICIAL_EPOCHS} (official Train_cifar.py: --num_epochs 300)"),
            ScheduleItem(
                "warm-up epochs", low if low == high else f"{low} to {high}",
                f"{warm} of {OFFICIAL_EPOCHS} (official Train_cifar.py: warm_up)",
                "" if low == high else f"extended past {low} until both loss GMMs are separated "
                f"(min_separation {hparams['min_separation']}), at most half the budget",
            ),
            ScheduleItem(
                "lambda_u ramp-up (epochs after the warm-up)",
                round(ramp_low, 3) if low == high else f"{ramp_low:.3g} to {ramp_high:.3g}",
                f"{OFFICIAL_RAMPUP} after a warm-up of {warm} (official Train_cifar.py: linear_rampup)",
                f"lambda_u = {hparams['lambda_u']} reached at the ramp's end (if the run lasts that long)",
            ),
        ]
        if hparams["schedule"] == "step":
            drop = scale_epochs(OFFICIAL_LR_DROP, OFFICIAL_EPOCHS, epochs, low=0)
            items.append(ScheduleItem(
                "lr / 10 from epoch", drop + 1, f"{OFFICIAL_LR_DROP + 1} of {OFFICIAL_EPOCHS} (official Train_cifar.py)"
            ))
        else:
            items.append(ScheduleItem("lr schedule", hparams["schedule"], "lnlbench (official: step at 150 of 300)"))
        return items

    def fit(self, ctx: MethodContext) -> MethodOutput:
        hp = ctx.hparams
        epochs = int(hp["epochs"])
        min_warmup, max_warmup = warmup_bounds(hp, ctx.config.dataset)
        nets = (ctx.make_model(0), ctx.make_model(1))
        # One optimiser per network for warm-up and training alike (as Train_cifar.py); the lr follows the schedule
        # per epoch, stepped at each epoch's end.
        settings = optim_from(hp)
        if settings.schedule == "step":
            settings = replace(settings, milestones=(OFFICIAL_LR_DROP / OFFICIAL_EPOCHS,))
        built = [settings.build(net.parameters(), 1) for net in nets]
        opts = [b[0] for b in built]
        scheds = [b[1] for b in built]
        scaler = torch.amp.GradScaler(enabled=ctx.precision.amp_dtype == torch.float16)
        labels = ctx.noisy_labels.to(ctx.device)
        state: dict[str, Any] = {"net1": nets[0], "net2": nets[1], "opt1": opts[0], "opt2": opts[1],
                                 "sched1": scheds[0], "sched2": scheds[1]}
        memory: dict[str, Any] = {"history1": [], "history2": [], "gmm": [], "labeled": [], "warmup_checks": [],
                                  "warmup_done": None}
        state["memory"] = memory

        def step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

        ensemble = Ensemble(*nets)

        def evaluate_both() -> float:
            return ctx.evaluate(ensemble)  # a Module, so the harness switches both networks to eval mode

        # --- warm-up: CE on all noisy labels, each network with its own shuffle, batch 2 x batch_size ------------
        warmup = run_warmup(ctx, nets, opts, scheds, step, state, hp, (min_warmup, max_warmup), evaluate_both)
        rampup = rampup_for(hp, ctx.config.dataset, warmup)

        # --- co-divide and semi-supervised training -------------------------------------------------------------
        for t in ctx.epochs("train", epochs - warmup, state):
            epoch = warmup + t  # the official absolute epoch, used by the lambda_u ramp-up
            with ctx.phase("divide"):
                probs = []
                for i, net in enumerate(nets):
                    logits = engine.predict_logits(net, ctx.train, ctx.precision)
                    ce = engine.per_sample_ce(logits, ctx.noisy_labels)
                    engine.check_finite(ce.mean(), "divide", epoch)
                    gmm_seed = engine.derive_seed(ctx.seed, "gmm", i, epoch) % 2**31
                    prob, fit = divide(ce, memory[f"history{i + 1}"], hp, gmm_seed)
                    probs.append(prob)
                    memory["gmm"].append({"epoch": epoch, "network": f"net{i + 1}", **fit.as_record()})
                    ctx.record_selection(prob > hp["p_threshold"], epoch, f"net{i + 1}")
            with ctx.phase("train"):
                train_losses = []
                sizes = {}
                # network 1 trains on network 2's division and network 2 on network 1's (co-divide)
                for i, (net, peer, opt) in enumerate(((nets[0], nets[1], opts[0]), (nets[1], nets[0], opts[1]))):
                    peer_prob = probs[1 - i]
                    labeled_mask = peer_prob > hp["p_threshold"]
                    labeled = torch.nonzero(labeled_mask).flatten()
                    unlabeled = torch.nonzero(~labeled_mask).flatten()
                    sizes[f"net{i + 1}"] = {"labeled": len(labeled), "unlabeled": len(unlabeled)}
                    train_losses.append(
                        self._train_one(ctx, net, peer, opt, step, labeled, unlabeled, peer_prob, labels, epoch,
                                        warmup, rampup, hp, i)
                    )
                memory["labeled"].append({"epoch": epoch, **sizes})
                for s in scheds:
                    s.step()
                ctx.log_epoch("train", epoch, train_loss=train_losses[0], train_loss_net2=train_losses[1],
                              test_acc=evaluate_both(),
                              lambda_u=linear_rampup(epoch + 1, warmup, rampup, hp["lambda_u"]))

        gmm_log = memory["gmm"]
        checks = memory["warmup_checks"]
        diagnostics = {
            "warmup_epochs": warmup,
            "warmup_bounds": [min_warmup, max_warmup],
            "warmup_checks": checks,
            "warmup_separated": bool(checks) and min(checks[-1]["separation"]) >= hp["min_separation"],
            "rampup_epochs": rampup,
            "lambda_u": hp["lambda_u"],
            "labeled_sizes": memory["labeled"],
            "gmm_not_converged": [g for g in gmm_log if not g["converged"]],
            "gmm_fits": len(gmm_log),
            "test": "sum of both networks' logits",
        }
        return MethodOutput(ensemble, diagnostics=diagnostics)

    @staticmethod
    def _separations(ctx: MethodContext, nets: tuple[torch.nn.Module, ...], hp: dict, epoch: int) -> list[float]:
        """Each network's loss-GMM separation on the un-augmented training set (the co-divide's own fit)."""
        out = []
        for i, net in enumerate(nets):
            ce = engine.per_sample_ce(engine.predict_logits(net, ctx.train, ctx.precision), ctx.noisy_labels)
            fit = gmm_clean_posterior(minmax(ce).float(), max_iter=hp["gmm_max_iter"], tol=hp["gmm_tol"],
                                      reg_covar=hp["gmm_reg_covar"],
                                      seed=engine.derive_seed(ctx.seed, "warmup-gmm", i, epoch) % 2**31)
            out.append(separation(fit))
        return out

    @staticmethod
    def train_step(
        ctx: MethodContext,
        net: torch.nn.Module,
        peer: torch.nn.Module,
        bx: torch.Tensor,
        bu: torch.Tensor,
        aug: torch.Generator | None,
        labels: torch.Tensor,
        prob: torch.Tensor,
        lamb: float,
        hp: dict,
    ) -> torch.Tensor:
        """The loss of one DivideMix step for `net` (before its optimiser step): co-guessing with the peer on the
        unlabelled batch `bu`, co-refinement of the labelled batch `bx` with the peer's clean probabilities `prob`,
        MixMatch and the semi-supervised loss with unlabelled weight `lamb`. `labels` and `prob` are on the device;
        nothing here makes the host wait for it (see benchmarks/gpu_check.py's DivideMix sync check)."""
        dev = ctx.device
        b = len(bx)
        x, x2 = ctx.train.batch(bx, aug), ctx.train.batch(bx, aug)
        u, u2 = (ctx.train.batch(bu, aug), ctx.train.batch(bu, aug)) if len(bu) else (x[:0], x[:0])
        bx_dev = engine.to_device(bx, dev)
        y = F.one_hot(labels[bx_dev], ctx.num_classes).float()
        w = prob[bx_dev]
        with torch.no_grad(), ctx.precision.autocast(dev):
            if len(bu):
                # label co-guessing: both networks, both augmentations
                p_u = [torch.softmax(m(v).float(), 1) for m in (net, peer) for v in (u, u2)]
                targets_u = co_guess(p_u, hp["T"])
            else:
                targets_u = y[:0]
            # label co-refinement with the peer's clean probability
            p_x = (torch.softmax(net(x).float(), 1) + torch.softmax(net(x2).float(), 1)) / 2
            targets_x = co_refine(y, w, p_x, hp["T"])
        all_inputs = torch.cat([x, x2, u, u2])
        all_targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
        mixed_input, mixed_target, _ = mix(all_inputs, all_targets, hp["alpha"])
        with ctx.precision.autocast(dev):
            logits = net(mixed_input).float()
        lx, lu = semi_loss(logits[: 2 * b], mixed_target[: 2 * b], logits[2 * b :], mixed_target[2 * b :])
        return lx + lamb * lu + uniform_prior_penalty(logits)

    @staticmethod
    def _train_one(
        ctx: MethodContext,
        net: torch.nn.Module,
        peer: torch.nn.Module,
        opt: torch.optim.Optimizer,
        step,
        labeled: torch.Tensor,
        unlabeled: torch.Tensor,
        peer_prob: torch.Tensor,
        labels: torch.Tensor,
        epoch: int,
        warmup: int,
        rampup: float,
        hp: dict,
        index: int,
    ) -> float:
        """One epoch of DivideMix's `train` for one network: a pass over its labelled set (the peer's division),
        with unlabelled batches of the same size drawn cyclically; returns the mean total loss."""
        dev = ctx.device
        net.train()
        peer.eval()  # the peer is fixed; it only co-guesses
        batches = _batches(labeled, hp["batch_size"], ctx.rng("train", "labeled", index, epoch))
        if not batches:
            return 0.0  # nothing labelled (or a single sample): this network skips the epoch; see labeled_sizes
        aug = ctx.rng("train", "augment", index, epoch) if hp["augment"] else None
        u_stream = _Cycle(unlabeled, ctx.rng("train", "unlabeled", index, epoch)) if len(unlabeled) else None
        # on the device once per epoch: a step indexes them there, without a blocking copy
        prob_dev = peer_prob.to(dev)
        total, seen = torch.zeros((), device=dev), 0
        num_iter = len(batches)
        for batch_idx, bx in enumerate(progress.bar(batches, desc=f"train net{index + 1} epoch {epoch + 1}",
                                                    unit="batch")):
            b = len(bx)
            bu = u_stream.take(b) if u_stream is not None else bx[:0]
            lamb = linear_rampup(epoch + batch_idx / num_iter, warmup, rampup, hp["lambda_u"])
            loss = DivideMix.train_step(ctx, net, peer, bx, bu, aug, labels, prob_dev, lamb, hp)
            step(opt, loss)
            total += loss.detach() * b
            seen += b
            ctx.images_seen += 2 * b + 2 * len(bu)
        return engine.check_finite(total / max(seen, 1), "train", epoch)


@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    return [DivideMix]
