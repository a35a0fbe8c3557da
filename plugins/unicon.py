"""`unicon`: UNICON (Karim, Rizve, Rahnavard, Mian and Shah, "UNICON: Combating Label Noise Through Uniform
Selection and Contrastive Learning", CVPR 2022; official code github.com/nazmul-karim170/UNICON-Noisy-Label,
`Train_cifar.py`, `dataloader_cifar.py`, `Contrastive_loss.py`, `PreResNet_cifar.py`).

Two networks, each with a projection head (a 128-d linear map of the pooled features and a BatchNorm1d, as
PreResNet_cifar.py). Warm-up: cross-entropy on all noisy labels, as DivideMix's (the negative-entropy penalty under
asymmetric noise). Then every epoch, before each network trains:

1. **Uniform selection.** The Jensen-Shannon divergence (natural log, as `Calculate_JSD`) between the two networks'
   averaged softmax on the un-augmented training set and each sample's one-hot noisy label. The selection ratio is the
   fraction of samples below the mean divergence (`threshold = mean`; when the mean exceeds `d_u` it is lowered by
   (mean - min) / `tau`: with natural logs a divergence never exceeds ln 2 = 0.693 < d_u = 0.7, so at the official
   defaults this never fires). The labelled set takes int(ratio * N / C) samples of lowest divergence from EVERY
   noisy class (all of a class that has fewer), so the clean set is class-balanced; the rest is unlabelled.
2. **Semi-supervised training** of one network with the other fixed: label refinement of the labelled batch with
   weight w = 1 - JSD (w = 1 where JSD < 0.5), co-guessing of the unlabelled batch by both networks on two weak
   views, MixMatch over the STRONG views (AutoAugment) of both batches, the semi-supervised loss with the ramped
   lambda_u, the uniform-prior penalty, and `lambda_c` times the SimCLR contrastive loss of the unlabelled batch's
   two strong views through the projection head (temperature 0.05, Contrastive_loss.py's defaults). The unlabelled
   batch is int(batch_size / (2 * ratio)) (dataloader_cifar.py), so an epoch of the labelled set draws about half
   the training set unlabelled.

Test: the sum of both networks' logits. Each network trains on its own selection (recorded as net1 and net2).

Budget (lnlbench.methods.SCALING_RULE): the official run is 350 epochs with a warm-up of 10 (CIFAR-10) or 30
(CIFAR-100), a 16-epoch ramp-up of lambda_u after it, and `CosineAnnealingLR(T_max=280, eta_min=2e-4)` stepped per
epoch from the first (so the lr falls to 2e-4 at epoch 280 and, the cosine being periodic, rises a little again over
the last 70). Here the warm-up is 10 / 350 of the budget (at least 1 epoch), T_max 280 / 350 of it, and the ramp-up
keeps its 16 : 10 ratio to the warm-up. The warm-up is extended exactly as DivideMix's (`warmup_until_separated`,
plugins/dividemix.py): the recipe is the same (cross-entropy, SGD lr 0.02, batch 128), and there one scaled epoch was
measured to leave both networks at the uniform prediction, where any selection is noise.

Not reproduced: the official fixed-size index array repeats sample 0 when a class has fewer samples than its share
(a side effect of `np.zeros` pre-allocation), and its unlabelled loader drops the last short batch of each pass;
here a short class gives what it has and the unlabelled batches are drawn as DivideMix's (`_Cycle`). The
divergences are computed with both networks in eval mode; `Calculate_JSD` sets no mode, so there the network just
trained is still in train mode (batch-norm batch statistics) when the second selection of an epoch is made.
AutoAugment's CIFAR-10 policy is torchvision's implementation (`AutoAugment(AutoAugmentPolicy.CIFAR10)`), the official
one a copy of DeepVoltaire's; both implement the policy of Cubuk et al. (CVPR 2019), their magnitude bins differ
slightly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from lnlbench import engine, hookimpl, progress
from lnlbench.methods import HParam, Method, MethodOutput, ScheduleItem, scale_epochs
from lnlbench.mixmatch import co_guess, co_refine, linear_rampup, mix, semi_loss, uniform_prior_penalty
from lnlbench.models import split_backbone_head
from lnlbench.training import optim_from
from lnlbench_plugins.dividemix import (
    DIVIDEMIX_HPARAMS,
    DivideMix,
    Ensemble,
    _Cycle,
    official_warmup,
    rampup_for,
    run_warmup,
    warmup_bounds,
)

if TYPE_CHECKING:  # the harness's context (and timm behind it) is not needed to read hyperparameters
    from lnlbench.context import MethodContext

OFFICIAL_EPOCHS = 350  # Train_cifar.py: --num_epochs 350
OFFICIAL_T_MAX = 280  # Train_cifar.py: CosineAnnealingLR(optimizer, 280, 2e-4)
OFFICIAL_RAMPUP = 16  # Train_cifar.py: linear_rampup(..., rampup_length=16), as DivideMix's (dividemix.rampup_for)
PROJECTION_DIM = 128  # PreResNet_cifar.py: projection_head = nn.Linear(512 * expansion, 128); bnl = BatchNorm1d(128)
_TC = "official Train_cifar.py"

UNICON_HPARAMS: dict[str, HParam] = {
    "epochs": HParam(
        10, "lnlbench budget, as `fft` (official Train_cifar.py: --num_epochs 350, warm-up included)", low=2
    ),
    "warmup_epochs": HParam(
        None,
        f"{_TC}: warm_up = 10 (cifar10) or 30 (cifar100) of 350 epochs; null scales it by the budget rule (whole "
        "epochs, 1 to epochs - 1), extended by `warmup_until_separated`; a number is used as it is",
        low=1,
    ),
    "warmup_until_separated": DIVIDEMIX_HPARAMS["warmup_until_separated"].like(
        prefix="as DivideMix's, whose warm-up recipe UNICON's is (plugins/unicon.py): "
    ),
    "min_separation": DIVIDEMIX_HPARAMS["min_separation"],
    "lr": HParam(0.02, f"{_TC}: --lr 0.02 (SGD, momentum 0.9)", low=0.0, low_open=True),
    "weight_decay": HParam(5e-4, f"{_TC}: SGD weight_decay=5e-4", low=0.0),
    "batch_size": HParam(64, f"{_TC}: --batch_size 64 (warm-up twice that, dataloader_cifar.py)", low=2),
    "optimizer": HParam("sgd", f"{_TC}: SGD, momentum 0.9", choices=("sgd", "adam", "adamw")),
    "t_max_epochs": HParam(
        None, f"{_TC}: CosineAnnealingLR T_max = 280 of 350 epochs; null scales it by the budget rule (not rounded)",
        low=0.0, low_open=True,
    ),
    "eta_min": HParam(2e-4, f"{_TC}: CosineAnnealingLR eta_min = 2e-4", low=0.0),
    "augment": HParam(
        True, "official dataloader_cifar.py: weak views RandomCrop(32, padding=4) + RandomHorizontalFlip"
    ),
    "strong_augment": HParam(
        True, "official dataloader_cifar.py: strong views add CIFAR10Policy (AutoAugment) after crop and flip",
    ),
    "alpha": HParam(4.0, f"{_TC}: --alpha 4 (Beta parameter of MixMatch)", low=0.0, low_open=True),
    "T": HParam(0.5, f"{_TC}: --T 0.5 (sharpening temperature)", low=0.0, low_open=True),
    "lambda_u": HParam(30.0, f"{_TC}: --lambda_u 30", low=0.0),
    "lambda_c": HParam(0.025, f"{_TC}: --lambda_c 0.025 (weight of the contrastive loss)", low=0.0),
    "temperature": HParam(
        0.05, "official Contrastive_loss.py: SupConLoss(temperature=0.05, base_temperature=0.05)",
        low=0.0, low_open=True,
    ),
    "d_u": HParam(0.7, f"{_TC}: --d_u 0.7 (mean divergence above which the threshold is lowered)", low=0.0),
    "tau": HParam(5.0, f"{_TC}: --tau 5 (filtering coefficient)", low=0.0, low_open=True),
    "rampup_epochs": HParam(
        None,
        f"{_TC}: linear_rampup(rampup_length=16) from the end of the warm-up (warm_up = 10); null keeps that 16 : "
        "warm_up ratio to the realised warm-up",
        low=0.0,
    ),
    "conf_penalty": HParam(False, f"{_TC}: NegEntropy penalty in warm-up only when noise_mode == 'asym'"),
}


# --- uniform selection --------------------------------------------------------------------------------------------


def jsd_to_labels(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (natural log, eps 1e-10 as Train_cifar.py) between each row of `probs` and the one-hot
    of its label: 0 for a confident correct prediction, at most ln 2."""
    onehot = F.one_hot(labels, probs.shape[1]).to(probs.dtype)
    mid = (probs + onehot) / 2

    def kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return (p * ((p + 1e-10) / (q + 1e-10)).log()).sum(1)

    return 0.5 * kl(probs, mid) + 0.5 * kl(onehot, mid)


def selection_ratio(jsd: torch.Tensor, d_u: float, tau: float) -> tuple[float, float]:
    """(ratio, threshold): the fraction of samples whose divergence is below the threshold (the mean, lowered by
    (mean - min) / tau when the mean exceeds d_u)."""
    threshold = float(jsd.mean())
    if threshold > d_u:
        threshold -= (threshold - float(jsd.min())) / tau
    return float((jsd < threshold).float().mean()), threshold


def uniform_selection(jsd: torch.Tensor, labels: torch.Tensor, ratio: float, num_classes: int) -> torch.Tensor:
    """Sorted indices of the int(ratio * N / C) lowest-divergence samples of every noisy class (all of a smaller
    one)."""
    per_class = int(ratio * len(labels) / num_classes)
    picks = []
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        order = torch.argsort(jsd[members], stable=True)
        picks.append(members[order[:per_class]])
    return torch.sort(torch.cat(picks)).values if picks else labels.new_zeros(0)


def refinement_weights(jsd: torch.Tensor) -> torch.Tensor:
    """Label-refinement weight of each labelled sample: 1 - JSD, with JSD below 0.5 taken as 0 (dataloader_cifar.py)."""
    return 1.0 - torch.where(jsd < 0.5, torch.zeros_like(jsd), jsd)


def unlabeled_batch_size(batch_size: int, ratio: float) -> int:
    """dataloader_cifar.py: int(batch_size / (2 * ratio))."""
    return int(batch_size / (2 * ratio))


# --- contrastive part ------------------------------------------------------------------------------------------------


def simclr_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent over 2b L2-normalised embeddings: every view's positive is the other view of its sample, its
    negatives the other 2b - 2 (SupConLoss without labels, contrast_mode 'all', temperature = base_temperature)."""
    z = torch.cat([z1, z2]).float()
    b = len(z1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    positive = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, positive)


class ProjectedNet(torch.nn.Module):
    """A classifier with UNICON's projection head on its pooled features: `forward` gives logits, `embed` the
    L2-normalised projection used by the contrastive loss."""

    def __init__(self, model: torch.nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.model = model
        self.projection = torch.nn.Sequential(
            torch.nn.Linear(feature_dim, PROJECTION_DIM), torch.nn.BatchNorm1d(PROJECTION_DIM)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        features, _ = split_backbone_head(self.model)
        return F.normalize(self.projection(features(x)).float(), dim=1)


def strong_views(ctx: MethodContext, idx: torch.Tensor, aug: torch.Generator | None, policy) -> torch.Tensor:
    """Preprocessed strong views: the weak crop and flip, then the AutoAugment policy per image (its own draws from
    the global RNG, reseeded per epoch)."""
    return ctx.train.batch(idx, aug, per_image=policy)


def scaled_t_max(hp: dict) -> float:
    """The cosine's half period in epochs: given, or 280 / 350 of the budget."""
    if hp["t_max_epochs"] is not None:
        return float(hp["t_max_epochs"])
    return scale_epochs(OFFICIAL_T_MAX, OFFICIAL_EPOCHS, int(hp["epochs"]), whole=False)


def cosine_factor(epoch: int, t_max: float, lr: float, eta_min: float) -> float:
    """CosineAnnealingLR's closed form at `epoch` as a factor of lr:
    (eta_min + (lr - eta_min)(1 + cos(pi epoch / t_max)) / 2) / lr."""
    return (eta_min + (lr - eta_min) * (1 + math.cos(math.pi * epoch / t_max)) / 2) / lr


class Unicon(Method):
    name = "unicon"
    description = (
        "UNICON: class-balanced uniform selection by Jensen-Shannon divergence, MixMatch and contrastive learning "
        "between two networks (Karim et al., CVPR 2022)"
    )
    needs = frozenset({"two_networks"})
    selects = True
    hparam_space = UNICON_HPARAMS

    @classmethod
    def hparam_overrides(cls, dataset: str, noise: str, rate: float) -> dict[str, tuple[Any, str]]:
        if noise in ("asym", "pairflip"):
            return {"conf_penalty": (True, f"{_TC}: NegEntropy warm-up penalty for asymmetric noise")}
        return {}

    @classmethod
    def validate(cls, hparams: dict, rate: float) -> None:
        DivideMix.validate(hparams, rate)  # the same warm-up check: it must leave a training epoch

    @classmethod
    def schedule(cls, hparams: dict, dataset: str) -> list[ScheduleItem]:
        """Warm-up, its possible extension, the lambda_u ramp-up and the cosine's half period at this budget."""
        low, high = warmup_bounds(hparams, dataset, OFFICIAL_EPOCHS)
        warm = official_warmup(dataset or "cifar10")
        return [
            ScheduleItem("epochs", int(hparams["epochs"]), f"{OFFICIAL_EPOCHS} ({_TC}: --num_epochs 350)"),
            ScheduleItem(
                "warm-up epochs", low if low == high else f"{low} to {high}", f"{warm} of {OFFICIAL_EPOCHS} ({_TC})",
                "" if low == high
                else f"extended past {low} until both loss GMMs are separated, at most half the budget",
            ),
            ScheduleItem(
                "lambda_u ramp-up (epochs after the warm-up)",
                round(rampup_for(hparams, dataset, low), 3), f"{OFFICIAL_RAMPUP} after a warm-up of {warm} ({_TC})",
                "for the shortest warm-up; it keeps the ratio to a longer one",
            ),
            ScheduleItem(
                "cosine T_max (epochs)", round(scaled_t_max(hparams), 3),
                f"{OFFICIAL_T_MAX} of {OFFICIAL_EPOCHS} ({_TC})",
                f"lr {hparams['lr']} to eta_min {hparams['eta_min']}, stepped per epoch",
            ),
        ]

    def fit(self, ctx: MethodContext) -> MethodOutput:
        import torchvision.transforms as T  # noqa: N812  (torchvision only when a run trains)

        hp = ctx.hparams
        epochs = int(hp["epochs"])
        min_warmup, max_warmup = warmup_bounds(hp, ctx.config.dataset, OFFICIAL_EPOCHS)
        nets = []
        for i in range(2):
            model = ctx.make_model(i)
            torch.manual_seed(engine.derive_seed(ctx.seed, "projection", i))
            nets.append(ProjectedNet(model, int(model.num_features)).to(ctx.device))
        settings = optim_from({**hp, "schedule": "constant"})  # the per-epoch cosine below replaces its schedule
        opts = [settings.build(net.parameters(), 1)[0] for net in nets]
        t_max = scaled_t_max(hp)
        lr, eta_min = float(hp["lr"]), float(hp["eta_min"])
        scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda e: cosine_factor(e, t_max, lr, eta_min)) for o in opts]
        policy = T.AutoAugment(T.AutoAugmentPolicy.CIFAR10) if hp["strong_augment"] else None
        scaler = torch.amp.GradScaler(enabled=ctx.precision.amp_dtype == torch.float16)
        labels = ctx.noisy_labels.to(ctx.device)
        n = len(labels)
        memory: dict[str, Any] = {"selection": [], "warmup_checks": [], "warmup_done": None}
        state: dict[str, Any] = {"net1": nets[0], "net2": nets[1], "opt1": opts[0], "opt2": opts[1],
                                 "sched1": scheds[0], "sched2": scheds[1], "memory": memory}

        def step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

        ensemble = Ensemble(*nets)

        # --- warm-up: DivideMix's (the same recipe in both official codes) ----------------------------------
        warmup = run_warmup(ctx, nets, opts, scheds, step, state, hp, (min_warmup, max_warmup),
                            lambda: ctx.evaluate(ensemble))
        rampup = rampup_for(hp, ctx.config.dataset, warmup)

        # --- uniform selection and semi-supervised training with contrastive learning ---------------------------
        for t in ctx.epochs("train", epochs - warmup, state):
            epoch = warmup + t
            train_losses = []
            for i in range(2):
                net, peer, opt = nets[i], nets[1 - i], opts[i]
                with ctx.phase("select"):
                    jsd = self._divergences(ctx, nets)
                    engine.check_finite(jsd.mean(), "select", epoch)
                    ratio, threshold = selection_ratio(jsd, float(hp["d_u"]), float(hp["tau"]))
                    labeled = uniform_selection(jsd, ctx.noisy_labels, ratio, ctx.num_classes)
                    mask = torch.zeros(n, dtype=torch.bool)
                    mask[labeled] = True
                    unlabeled = torch.nonzero(~mask).flatten()
                    ctx.record_selection(mask, epoch, f"net{i + 1}")
                    bu = unlabeled_batch_size(int(hp["batch_size"]), ratio) if ratio > 0 else 0
                    memory["selection"].append({
                        "epoch": epoch, "network": f"net{i + 1}", "ratio": ratio, "threshold": threshold,
                        "mean_jsd": float(jsd.mean()), "labeled": len(labeled), "unlabeled": len(unlabeled),
                        "unlabeled_batch": bu,
                    })
                with ctx.phase("train"):
                    train_losses.append(self._train_one(
                        ctx, net, peer, opt, step, labeled, unlabeled, refinement_weights(jsd), bu, labels, epoch,
                        warmup, rampup, policy, hp, i,
                    ))
            for s in scheds:
                s.step()
            ctx.log_epoch("train", epoch, train_loss=train_losses[0], train_loss_net2=train_losses[1],
                          test_acc=ctx.evaluate(ensemble), lambda_u=linear_rampup(epoch + 1, warmup, rampup,
                                                                                  hp["lambda_u"]))

        checks = memory["warmup_checks"]
        diagnostics = {
            "warmup_epochs": warmup,
            "warmup_bounds": [min_warmup, max_warmup],
            "warmup_checks": checks,
            "warmup_separated": bool(checks) and min(checks[-1]["separation"]) >= hp["min_separation"],
            "rampup_epochs": rampup,
            "cosine_t_max_epochs": t_max,
            "selections": memory["selection"],
            "strong_augment": "torchvision AutoAugment(CIFAR10 policy)" if policy is not None else "off",
            "test": "sum of both networks' logits",
        }
        return MethodOutput(ensemble, diagnostics=diagnostics)

    @staticmethod
    def _divergences(ctx: MethodContext, nets: list[ProjectedNet]) -> torch.Tensor:
        """JSD between the two networks' averaged softmax on the un-augmented training set and the noisy labels."""
        probs = [torch.softmax(engine.predict_logits(net, ctx.train, ctx.precision), 1) for net in nets]
        return jsd_to_labels((probs[0] + probs[1]) / 2, ctx.noisy_labels)

    @staticmethod
    def train_step(
        ctx: MethodContext,
        net: ProjectedNet,
        peer: ProjectedNet,
        bx: torch.Tensor,
        bu: torch.Tensor,
        aug: torch.Generator | None,
        policy,
        labels: torch.Tensor,
        weights: torch.Tensor,
        lamb: float,
        hp: dict,
    ) -> torch.Tensor:
        """The loss of one UNICON step for `net`: refinement and co-guessing on weak views, the contrastive loss of
        the unlabelled strong views, MixMatch over the strong views of both batches."""
        dev = ctx.device
        b = len(bx)
        x, x2 = ctx.train.batch(bx, aug), ctx.train.batch(bx, aug)
        x3, x4 = strong_views(ctx, bx, aug, policy), strong_views(ctx, bx, aug, policy)
        if len(bu):
            u, u2 = ctx.train.batch(bu, aug), ctx.train.batch(bu, aug)
            u3, u4 = strong_views(ctx, bu, aug, policy), strong_views(ctx, bu, aug, policy)
        else:
            u = u2 = u3 = u4 = x[:0]
        bx_dev = engine.to_device(bx, dev)
        y = F.one_hot(labels[bx_dev], ctx.num_classes).float()
        with torch.no_grad(), ctx.precision.autocast(dev):
            if len(bu):
                targets_u = co_guess([torch.softmax(m(v).float(), 1) for m in (net, peer) for v in (u, u2)], hp["T"])
            else:
                targets_u = y[:0]
            p_x = (torch.softmax(net(x).float(), 1) + torch.softmax(net(x2).float(), 1)) / 2
            targets_x = co_refine(y, weights[bx_dev], p_x, hp["T"])
        if len(bu) >= 2:
            with ctx.precision.autocast(dev):
                contrastive = simclr_loss(net.embed(u3), net.embed(u4), float(hp["temperature"]))
        else:
            contrastive = torch.zeros((), device=dev)  # no pair to contrast (nothing unlabelled)
        mixed_input, mixed_target, _ = mix(torch.cat([x3, x4, u3, u4]),
                                           torch.cat([targets_x, targets_x, targets_u, targets_u]), hp["alpha"])
        with ctx.precision.autocast(dev):
            logits = net(mixed_input).float()
        lx, lu = semi_loss(logits[: 2 * b], mixed_target[: 2 * b], logits[2 * b :], mixed_target[2 * b :])
        return lx + lamb * lu + float(hp["lambda_c"]) * contrastive + uniform_prior_penalty(logits)

    @staticmethod
    def _train_one(
        ctx: MethodContext,
        net: ProjectedNet,
        peer: ProjectedNet,
        opt: torch.optim.Optimizer,
        step,
        labeled: torch.Tensor,
        unlabeled: torch.Tensor,
        weights: torch.Tensor,
        bu_size: int,
        labels: torch.Tensor,
        epoch: int,
        warmup: int,
        rampup: float,
        policy,
        hp: dict,
        index: int,
    ) -> float:
        """One epoch of UNICON's `train` for one network: full labelled batches (drop_last, as the official loader),
        each with `bu_size` unlabelled samples drawn cyclically; returns the mean total loss."""
        dev = ctx.device
        net.train()
        peer.eval()  # the peer is fixed; it only co-guesses
        batch_size = int(hp["batch_size"])
        batches = list(engine.index_batches(labeled, batch_size, ctx.rng("train", "labeled", index, epoch),
                                            drop_last=True))
        if not batches:
            return 0.0  # fewer labelled samples than one batch: this network skips the epoch; see `selections`
        aug = ctx.rng("train", "augment", index, epoch) if hp["augment"] else None
        u_stream = _Cycle(unlabeled, ctx.rng("train", "unlabeled", index, epoch)) if len(unlabeled) else None
        weights_dev = weights.to(dev)
        total, seen = torch.zeros((), device=dev), 0
        num_iter = len(labeled) // batch_size + 1  # Train_cifar.py's ramp-up denominator
        for batch_idx, bx in enumerate(progress.bar(batches, desc=f"train net{index + 1} epoch {epoch + 1}",
                                                    unit="batch")):
            bu = u_stream.take(bu_size) if u_stream is not None and bu_size > 0 else bx[:0]
            lamb = linear_rampup(epoch + batch_idx / num_iter, warmup, rampup, hp["lambda_u"])
            loss = Unicon.train_step(ctx, net, peer, bx, bu, aug, policy, labels, weights_dev, lamb, hp)
            step(opt, loss)
            total += loss.detach() * len(bx)
            seen += len(bx)
            ctx.images_seen += 2 * len(bx) + 4 * len(bu)  # mixed strong views of both, and the contrastive pair
        return engine.check_finite(total / max(seen, 1), "train", epoch)



@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    return [Unicon]
