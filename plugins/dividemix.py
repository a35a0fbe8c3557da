"""`dividemix`: DivideMix (Li, Socher and Hoi, "DivideMix: Learning with Noisy Labels as Semi-supervised Learning",
ICLR 2020; official code github.com/LiJunnan1992/DivideMix, `Train_cifar.py`).

Two networks. Warm-up: cross-entropy on all noisy labels (plus the negative-entropy confidence penalty under
asymmetric noise). Then every epoch: per-sample cross-entropy of each network on the un-augmented training set,
min-max normalised, a two-component GMM (10 iterations, tol 1e-2, reg_covar 5e-4); samples whose low-loss posterior
exceeds `p_threshold` are labelled, the rest unlabelled. Each network trains on its PEER's division with label
co-refinement, label co-guessing, sharpening and MixMatch, plus the uniform-prior penalty. Test: both networks'
summed logits.

Budget scaling: the official run is 300 epochs with a warm-up of 10 (CIFAR-10) or 30 (CIFAR-100) epochs and a
16-epoch ramp-up of lambda_u. A run here has `epochs` in all (warm-up included, as `--num_epochs` there), so the
warm-up and the ramp-up are scaled by epochs / 300 (warm-up at least one epoch, at most epochs - 1).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lnlbench import engine, hookimpl
from lnlbench.context import MethodContext
from lnlbench.errors import ConfigError
from lnlbench.methods import HParam, Method, MethodOutput
from lnlbench.mixmatch import (
    co_guess,
    co_refine,
    linear_rampup,
    mix,
    negative_entropy,
    semi_loss,
    uniform_prior_penalty,
)
from lnlbench.selection import GMM_MAX_ITER, GMM_REG_COVAR, GMM_TOL, gmm_clean_posterior, minmax
from lnlbench.training import optim_from

OFFICIAL_EPOCHS = 300  # Train_cifar.py: --num_epochs 300
OFFICIAL_RAMPUP = 16  # Train_cifar.py: linear_rampup(..., rampup_length=16)
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
        "official Train_cifar.py: warm_up = 10 (cifar10) or 30 (cifar100) of 300 epochs; null scales it to "
        "max(1, round(warm_up / 300 * epochs)), at most epochs - 1",
        low=1,
    ),
    "lr": HParam(0.02, "official Train_cifar.py: --lr 0.02 (SGD, momentum 0.9)", low=0.0, low_open=True),
    "weight_decay": HParam(5e-4, "official Train_cifar.py: SGD weight_decay=5e-4", low=0.0),
    "batch_size": HParam(
        64, "official Train_cifar.py: --batch_size 64 (warm-up uses twice that, as dataloader_cifar.py)", low=2
    ),
    "optimizer": HParam("sgd", "official Train_cifar.py: SGD, momentum 0.9", choices=("sgd", "adam", "adamw")),
    "schedule": HParam(
        "cosine", "lnlbench choice, as `fft` (official: lr / 10 after epoch 150 of 300), stepped per epoch",
        choices=("cosine", "constant"),
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
        "official Train_cifar.py: linear_rampup(rampup_length=16) of 300 epochs; null scales it to 16 / 300 * epochs",
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


def scaled_warmup(dataset: str, epochs: int) -> int:
    """The official warm-up (10 of 300 epochs, 30 for CIFAR-100) scaled to `epochs`: at least 1, at most epochs - 1."""
    official = 30 if dataset.startswith("cifar100") else 10
    return min(max(1, round(official / OFFICIAL_EPOCHS * epochs)), epochs - 1)


def divide(losses: torch.Tensor, history: list[torch.Tensor], hp: dict, seed: int) -> tuple[torch.Tensor, Any]:
    """DivideMix's co-divide for one network: min-max normalise, average the last `loss_window` epochs, fit the
    GMM; returns the clean probability of every sample and the fit."""
    history.append(minmax(losses).float())
    del history[: -int(hp["loss_window"])]
    x = torch.stack(history).mean(0)
    fit = gmm_clean_posterior(x, max_iter=hp["gmm_max_iter"], tol=hp["gmm_tol"], reg_covar=hp["gmm_reg_covar"],
                              seed=seed)
    return fit.clean_prob.float(), fit


def _cycle(indices: torch.Tensor, generator: torch.Generator):
    """Endless shuffled passes over `indices` (the unlabelled loader's re-created iterator)."""
    while True:
        yield from indices[torch.randperm(len(indices), generator=generator)]


def _batches(indices: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled mini-batches; a last batch of one sample is dropped (batch norm cannot train on it)."""
    out = list(engine.index_batches(indices, batch_size, generator))
    if out and len(out[-1]) < 2:
        out.pop()
    return out


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

    def fit(self, ctx: MethodContext) -> MethodOutput:
        hp = ctx.hparams
        epochs = int(hp["epochs"])
        warmup = scaled_warmup(ctx.config.dataset, epochs) if hp["warmup_epochs"] is None else int(hp["warmup_epochs"])
        rampup = OFFICIAL_RAMPUP / OFFICIAL_EPOCHS * epochs
        if hp["rampup_epochs"] is not None:
            rampup = float(hp["rampup_epochs"])
        nets = (ctx.make_model(0), ctx.make_model(1))
        # One optimiser per network for warm-up and training alike (as Train_cifar.py); the lr follows the schedule
        # per epoch, stepped at each epoch's end.
        settings = optim_from(hp)
        built = [settings.build(net.parameters(), 1) for net in nets]
        opts = [b[0] for b in built]
        scheds = [b[1] for b in built]
        scaler = torch.amp.GradScaler(enabled=ctx.precision.amp_dtype == torch.float16)
        labels = ctx.noisy_labels.to(ctx.device)
        n = len(labels)
        state: dict[str, Any] = {"net1": nets[0], "net2": nets[1], "opt1": opts[0], "opt2": opts[1],
                                 "sched1": scheds[0], "sched2": scheds[1]}
        memory: dict[str, Any] = {"history1": [], "history2": [], "gmm": [], "labeled": []}
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
        with ctx.phase("warmup"):
            for epoch in ctx.epochs("warmup", warmup, state):
                losses = []
                for i, (net, opt) in enumerate(zip(nets, opts)):
                    net.train()
                    total, seen = torch.zeros((), device=ctx.device), 0
                    aug = ctx.rng("warmup", "augment", i, epoch) if hp["augment"] else None
                    for idx in _batches(torch.arange(n), 2 * settings.batch_size, ctx.rng("warmup", "order", i, epoch)):
                        with ctx.precision.autocast(ctx.device):
                            logits = net(ctx.train.batch(idx, aug))
                        loss = F.cross_entropy(logits.float(), labels[idx.to(ctx.device)])
                        full = loss + negative_entropy(logits) if hp["conf_penalty"] else loss
                        step(opt, full)
                        total += loss.detach() * len(idx)
                        seen += len(idx)
                        ctx.images_seen += len(idx)
                    losses.append(engine.check_finite(total / max(seen, 1), "warmup", epoch))
                for s in scheds:
                    s.step()
                ctx.log_epoch(
                    "warmup", epoch, train_loss=losses[0], train_loss_net2=losses[1], test_acc=evaluate_both()
                )

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
        diagnostics = {
            "warmup_epochs": warmup,
            "rampup_epochs": rampup,
            "lambda_u": hp["lambda_u"],
            "labeled_sizes": memory["labeled"],
            "gmm_not_converged": [g for g in gmm_log if not g["converged"]],
            "gmm_fits": len(gmm_log),
            "test": "sum of both networks' logits",
        }
        return MethodOutput(ensemble, diagnostics=diagnostics)

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
        u_stream = _cycle(unlabeled, ctx.rng("train", "unlabeled", index, epoch)) if len(unlabeled) else None
        num_classes = ctx.num_classes
        total, seen = torch.zeros((), device=dev), 0
        num_iter = len(batches)
        for batch_idx, bx in enumerate(batches):
            b = len(bx)
            bu = torch.stack([next(u_stream) for _ in range(b)]) if u_stream is not None else bx[:0]
            x, x2 = ctx.train.batch(bx, aug), ctx.train.batch(bx, aug)
            u, u2 = (ctx.train.batch(bu, aug), ctx.train.batch(bu, aug)) if len(bu) else (x[:0], x[:0])
            y = F.one_hot(labels[bx.to(dev)], num_classes).float()
            w = peer_prob[bx].to(dev)
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
            lamb = linear_rampup(epoch + batch_idx / num_iter, warmup, rampup, hp["lambda_u"])
            loss = lx + lamb * lu + uniform_prior_penalty(logits)
            step(opt, loss)
            total += loss.detach() * b
            seen += b
            ctx.images_seen += 2 * b + 2 * len(bu)
        return engine.check_finite(total / max(seen, 1), "train", epoch)


@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    return [DivideMix]
