"""`coteaching`: Co-teaching (Han et al., "Co-teaching: Robust Training of Deep Neural Networks with Extremely Noisy
Labels", NeurIPS 2018; official code github.com/bhanML/Co-teaching, `main.py` and `loss.py`).

Two networks from the same pre-trained backbone with independently initialised heads. Each mini-batch, each network
ranks samples by its own cross-entropy and keeps the small-loss fraction 1 - R(t); its PEER is updated on those
samples. R(t) = tau * min(t / T_k, 1), t the epoch index, so the first epoch keeps everything.

Data order. The paper (Algorithm 1) and `main.py` feed one shared mini-batch to both networks; lnlbench defaults to
independent data order, so the two networks differ in the batches they see as well as in their initialisation. `data_order="independent"` (default) gives each network its own shuffle (and augmentation):
at each step network 1 ranks network 2's batch and network 2 ranks network 1's, so every update still trains on
samples the peer chose from that very batch. `data_order="shared"` is the official single-batch scheme.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from lnlbench import engine, hookimpl
from lnlbench.errors import ConfigError
from lnlbench.methods import HParam, Method, MethodOutput, ScheduleItem, scale_epochs
from lnlbench.sample_selection import estimate_noise_rate, probe_losses, small_loss_count, small_loss_indices
from lnlbench.training import OptimSettings, choose_probe_settings, optim_from
from lnlbench_plugins.fft import FFT_HPARAMS
from lnlbench_plugins.lp import LP_HPARAMS

if TYPE_CHECKING:  # the harness's context (and timm behind it) is not needed to read hyperparameters
    from lnlbench.context import MethodContext

OFFICIAL_NUM_GRADUAL = 10  # main.py: --num_gradual 10 ...
OFFICIAL_EPOCHS = 200  # ... of --n_epoch 200

_FT = "as `fft`, so the comparison isolates the method: "
_OFFICIAL_OPT = " (official main.py: Adam, lr 1e-3, training from scratch)"

COTEACHING_HPARAMS: dict[str, HParam] = {
    "epochs": FFT_HPARAMS["epochs"].like(prefix=_FT),
    "lr": FFT_HPARAMS["lr"].like(prefix=_FT, suffix=_OFFICIAL_OPT),
    "weight_decay": FFT_HPARAMS["weight_decay"].like(prefix=_FT),
    "batch_size": HParam(128, "official main.py: --batch_size 128", low=2),
    "optimizer": FFT_HPARAMS["optimizer"].like(_FT + "SGD, momentum 0.9" + _OFFICIAL_OPT),
    "schedule": FFT_HPARAMS["schedule"].like(_FT + "cosine"),
    "augment": FFT_HPARAMS["augment"].like(
        _FT + "crop + flip (official main.py: no augmentation, transforms.ToTensor only)"
    ),
    "forget_rate": HParam(
        None,
        "official main.py: --forget_rate None, meaning the noise rate; the paper's tau",
        help="tau; null: from `tau_source`",
        low=0.0, high=1.0, high_open=True,
    ),
    "tau_source": HParam(
        "auto",
        "lnlbench: 'given' uses the declared noise rate as the official code does (converted to the expected fraction "
        "of wrong labels for sym-dividemix); 'estimated' reads it off TURN's per-class two-component GMMs on the "
        "losses of a GCE linear probe (lp's defaults, lr and weight decay by its probe rule); 'auto' is 'given' "
        "unless the noise model ignores the rate (e.g. `file`)",
        choices=("auto", "given", "estimated"),
    ),
    "num_gradual": HParam(
        None,
        "official main.py: T_k = --num_gradual 10 of --n_epoch 200; null scales it to max(1, round(10/200 * epochs))",
        help="T_k in epochs", low=1,
    ),
    "data_order": HParam(
        "independent",
        "lnlbench choice: each network its own shuffle and augmentation (more disagreement between the peers); "
        "'shared' is the paper's Algorithm 1 / official main.py",
        choices=("independent", "shared"),
    ),
}


def scaled_num_gradual(epochs: int) -> int:
    """T_k for a run of `epochs`: the official 10 of 200 epochs scaled by the budget rule, at least 1."""
    return int(scale_epochs(OFFICIAL_NUM_GRADUAL, OFFICIAL_EPOCHS, epochs))


def forget_rate_at(epoch: int, tau: float, num_gradual: int) -> float:
    """R(t) = tau * min(t / T_k, 1) for the 0-based epoch index t (the paper's schedule, per epoch as in main.py)."""
    return tau * min(epoch / num_gradual, 1.0)


def _noise_model(name: str) -> Any:
    """The registered noise model `name`, or None for one this process does not know (then trust the rate)."""
    from lnlbench.plugin_manager import noise_registry

    try:
        return noise_registry().get(name)
    except ConfigError:
        return None


def expected_noise_fraction(noise_model: str, rate: float, num_classes: int) -> float:
    """The expected fraction of wrong labels for a declared rate, as the noise model states it (the rate itself
    for an unknown model)."""
    model = _noise_model(noise_model)
    return rate if model is None else model.expected_wrong_fraction(rate, num_classes)


def _uses_rate(noise_model: str) -> bool:
    """Whether the noise model's labels follow the declared rate (else tau is estimated under `tau_source=auto`)."""
    model = _noise_model(noise_model)
    return True if model is None else model.uses_rate


def coteaching_step(
    nets: tuple[torch.nn.Module, torch.nn.Module],
    opts: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    batches: tuple[torch.Tensor, torch.Tensor],
    inputs: tuple[torch.Tensor, torch.Tensor],
    labels: torch.Tensor,
    forget_rate: float,
    autocast: Callable[[], Any],
    scalers: tuple[Any, Any] | None = None,
    shared: bool = False,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """One co-teaching update of both networks.

    `batches[i]` holds the sample indices of network i's mini-batch and `inputs[i]` their images; `labels` is the
    full noisy label vector. Network 1 ranks network 2's batch and network 2 trains on network 1's small-loss
    picks, and vice versa. With `shared` both networks get batch 0 (`batches[1]`, `inputs[1]` are ignored): the
    official single-batch scheme, one forward per network, each ranking on its own training logits. Returns the
    sample indices each network selected (for its peer, on the labels' device) and the two training losses
    (detached, left on the device: no host sync per step).
    """
    net1, net2 = nets
    b1, b2 = batches
    x1, x2 = inputs
    dev = labels.device
    b1, b2 = engine.to_device(b1, dev), engine.to_device(b2, dev)  # from pinned memory, without blocking
    y1, y2 = labels[b1], labels[b2]
    if shared:
        b2, x2, y2 = b1, x1, y1
        with autocast():
            logits1, logits2 = net1(x1), net2(x1)
        rank1 = F.cross_entropy(logits1.float(), y1, reduction="none")
        rank2 = F.cross_entropy(logits2.float(), y1, reduction="none")
        # network 1's picks train network 2 and network 2's picks train network 1
        pick_by_1 = small_loss_indices(rank1, small_loss_count(len(b1), forget_rate))
        pick_by_2 = small_loss_indices(rank2, small_loss_count(len(b1), forget_rate))
        loss1 = F.cross_entropy(logits1[pick_by_2].float(), y1[pick_by_2])
        loss2 = F.cross_entropy(logits2[pick_by_1].float(), y1[pick_by_1])
    else:
        with torch.no_grad(), autocast():
            rank1 = F.cross_entropy(net1(x2).float(), y2, reduction="none")  # network 1 ranks network 2's batch
            rank2 = F.cross_entropy(net2(x1).float(), y1, reduction="none")  # network 2 ranks network 1's batch
        pick_by_1 = small_loss_indices(rank1, small_loss_count(len(b2), forget_rate))
        pick_by_2 = small_loss_indices(rank2, small_loss_count(len(b1), forget_rate))
        with autocast():
            loss1 = F.cross_entropy(net1(x1[pick_by_2.to(x1.device)]).float(), y1[pick_by_2])
            loss2 = F.cross_entropy(net2(x2[pick_by_1.to(x2.device)]).float(), y2[pick_by_1])
    for i, (opt, loss) in enumerate(zip(opts, (loss1, loss2))):
        opt.zero_grad(set_to_none=True)
        if scalers is not None and scalers[i].is_enabled():
            scalers[i].scale(loss).backward()
            scalers[i].step(opt)
            scalers[i].update()
        else:
            loss.backward()
            opt.step()
    selected_by_1 = b2[pick_by_1]  # on the device: reading them back here would make the host wait every step
    selected_by_2 = b1[pick_by_2]
    return (selected_by_1, selected_by_2), (loss1.detach(), loss2.detach())


def resolve_tau(ctx: MethodContext) -> tuple[float, dict[str, Any]]:
    """tau and how it was obtained: the `forget_rate` hparam, the declared rate, or a linear-probe GMM estimate."""
    hp = ctx.hparams
    if hp["forget_rate"] is not None:
        return float(hp["forget_rate"]), {"tau_source": "forget_rate"}
    source = hp["tau_source"]
    if source == "auto":
        source = "given" if _uses_rate(ctx.noise_model) else "estimated"
    if source == "given":
        tau = expected_noise_fraction(ctx.noise_model, ctx.declared_noise_rate, ctx.num_classes)
        return tau, {"tau_source": "given", "declared_rate": ctx.declared_noise_rate}
    with ctx.phase("estimate"):
        train_feats, test_feats = ctx.features("train"), ctx.features("test")
        torch.manual_seed(engine.derive_seed(ctx.seed, "estimate", "head"))
        head = torch.nn.Linear(train_feats.shape[1], ctx.num_classes)
        settings = OptimSettings(
            epochs=int(LP_HPARAMS["epochs"].default), lr=float("nan"), weight_decay=float("nan"),
            batch_size=int(LP_HPARAMS["batch_size"].default), optimizer=str(LP_HPARAMS["optimizer"].default),
        )
        # lr and weight decay by the probe rule, as `lp` and TURN's step 1 (held-out noisy labels only)
        settings, _ = choose_probe_settings(ctx, "estimate", head, train_feats, settings, "gce", 0.7)
        _, losses = probe_losses(ctx, "estimate", head, train_feats, test_feats, settings, "gce", 0.7)
        tau, fits = estimate_noise_rate(losses, ctx.noisy_labels, ctx.num_classes, seed=ctx.seed)
    if tau >= 1.0:
        raise ConfigError(f"estimated noise rate {tau:.3f} leaves nothing to train on; pass --set forget_rate=0.4")
    return tau, {"tau_source": "estimated", "estimate_gmm": fits}


def forget_schedule_items(hparams: dict, rule_source: str) -> list[ScheduleItem]:
    """Epochs, T_k and the forget-rate ramp R(t) = tau * min(t / T_k, 1) at this budget (shared with `jocor`)."""
    epochs = int(hparams["epochs"])
    tk = int(hparams["num_gradual"]) if hparams["num_gradual"] is not None else scaled_num_gradual(epochs)
    tau = "tau" if hparams["forget_rate"] is None else f"{hparams['forget_rate']}"
    return [
        ScheduleItem("epochs", epochs, f"{OFFICIAL_EPOCHS} (official main.py: --n_epoch 200)"),
        ScheduleItem("T_k (epochs)", tk, f"{OFFICIAL_NUM_GRADUAL} of {OFFICIAL_EPOCHS} (official main.py: "
                     "--num_gradual)"),
        ScheduleItem("forget rate R(t), t the 0-based epoch", f"{tau} * min(t / {tk}, 1)", rule_source,
                     f"full forget rate from epoch {tk + 1}"),
    ]


class CoTeaching(Method):
    name = "coteaching"
    description = "Co-teaching: two networks exchange their small-loss samples (Han et al., NeurIPS 2018)"
    needs = frozenset({"two_networks"})
    selects = True
    hparam_space = COTEACHING_HPARAMS

    @classmethod
    def schedule(cls, hparams: dict, dataset: str) -> list[ScheduleItem]:
        """T_k and the forget-rate schedule at this budget."""
        return [
            *forget_schedule_items(hparams, "Co-teaching paper, Algorithm 1: R(T) = tau * min(T / T_k, 1)"),
            ScheduleItem("lr schedule", hparams["schedule"], "as `fft` (official main.py: Adam, linear decay from "
                         "epoch 80 of 200)"),
        ]

    @classmethod
    def validate(cls, hparams: dict, rate: float) -> None:
        fr = hparams["forget_rate"]
        if fr is not None and not isinstance(fr, (int, float)):
            raise ConfigError(f"hyperparameter forget_rate={fr!r} must be a number in [0, 1) or null")
        if fr is None and hparams["tau_source"] != "estimated" and rate >= 1.0:
            raise ConfigError(
                f"co-teaching would forget every sample at noise rate {rate}; pass --set forget_rate=<value below 1>"
            )

    def fit(self, ctx: MethodContext) -> MethodOutput:
        hp = ctx.hparams
        tau, tau_info = resolve_tau(ctx)
        if not 0.0 <= tau < 1.0:
            raise ConfigError(f"forget rate {tau} is outside [0, 1); pass --set forget_rate=<value below 1>")
        epochs = int(hp["epochs"])
        num_gradual = int(hp["num_gradual"]) if hp["num_gradual"] is not None else scaled_num_gradual(epochs)
        settings = optim_from(hp)
        nets = (ctx.make_model(0), ctx.make_model(1))
        n = len(ctx.noisy_labels)
        drop_last = n > settings.batch_size
        steps = (n // settings.batch_size) if drop_last else math.ceil(n / settings.batch_size)
        built = [settings.build(net.parameters(), steps) for net in nets]
        opts = (built[0][0], built[1][0])
        scheds = (built[0][1], built[1][1])
        fp16 = ctx.precision.amp_dtype == torch.float16
        scalers = (torch.amp.GradScaler(enabled=fp16), torch.amp.GradScaler(enabled=fp16))
        labels = ctx.noisy_labels.to(ctx.device)
        shared = hp["data_order"] == "shared"
        state = {"net1": nets[0], "net2": nets[1], "opt1": opts[0], "opt2": opts[1],
                 "sched1": scheds[0], "sched2": scheds[1]}
        all_idx = torch.arange(n)
        with ctx.phase("train"):
            for epoch in ctx.epochs("train", epochs, state):
                rate = forget_rate_at(epoch, tau, num_gradual)
                for net in nets:
                    net.train()
                orders = [engine.index_batches(all_idx, settings.batch_size, ctx.rng("train", "order", i, epoch),
                                               drop_last, desc=f"train epoch {epoch + 1}/{epochs}" if i == 0 else None)
                          for i in (0, 1)]
                augs = [ctx.rng("train", "augment", i, epoch) if hp["augment"] else None for i in (0, 1)]
                chosen = [torch.zeros(n, dtype=torch.bool, device=ctx.device) for _ in (0, 1)]
                totals = torch.zeros(2, device=ctx.device)
                seen = 0
                for b1, b2 in zip(*orders):
                    if shared:
                        b2 = b1
                    x1 = ctx.train.batch(b1, augs[0])
                    x2 = x1 if shared else ctx.train.batch(b2, augs[1])
                    (sel1, sel2), (l1, l2) = coteaching_step(
                        nets, opts, (b1, b2), (x1, x2), labels, rate, lambda: ctx.precision.autocast(ctx.device),
                        scalers, shared,
                    )
                    for s in scheds:
                        s.step()
                    chosen[0][sel1] = True
                    chosen[1][sel2] = True
                    totals += torch.stack([l1, l2]) * len(b1)
                    seen += len(b1)
                    ctx.images_seen += len(b1) + len(b2)
                loss1 = engine.check_finite(totals[0] / max(seen, 1), "train", epoch)
                loss2 = engine.check_finite(totals[1] / max(seen, 1), "train", epoch)
                ctx.record_selection(chosen[0], epoch, "net1")
                ctx.record_selection(chosen[1], epoch, "net2")
                acc1, acc2 = ctx.evaluate(nets[0]), ctx.evaluate(nets[1])
                ctx.log_epoch("train", epoch, train_loss=loss1, train_loss_net2=loss2, test_acc=acc1,
                              test_acc_net2=acc2, forget_rate=rate)
        acc_net2 = ctx.evaluate(nets[1])
        diagnostics = {
            "tau": tau, **tau_info, "num_gradual": num_gradual, "data_order": hp["data_order"],
            "test_acc_net2": acc_net2, "evaluated_network": "net1",
        }
        return MethodOutput(nets[0], diagnostics=diagnostics)


@hookimpl
def lnlbench_methods() -> list[type[Method]]:
    return [CoTeaching]
