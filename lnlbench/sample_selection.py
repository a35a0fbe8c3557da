"""Clean-sample selection shared by the selecting methods (TURN, co-teaching, DivideMix).

Per-sample loss normalisation, the two-component Gaussian mixture on losses whose low-mean component is read as the
clean one (Arazo et al., ICML 2019; DivideMix, Li et al., ICLR 2020), class-balanced selection (TURN), small-loss
selection (co-teaching) and a noise-rate estimate for methods that need a rate nobody gave them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lnlbench.errors import ConfigError, TrainingError

if TYPE_CHECKING:
    from lnlbench.context import MethodContext
    from lnlbench.training import OptimSettings

# DivideMix official code (Train_cifar.py, eval_train): GaussianMixture(n_components=2, max_iter=10, tol=1e-2,
# reg_covar=5e-4) on min-max normalised per-sample cross-entropy losses.
GMM_MAX_ITER = 10
GMM_TOL = 1e-2
GMM_REG_COVAR = 5e-4

NORMALIZATIONS = ("class-minmax", "global-minmax", "none")
BALANCE_RULES = ("min", "none")


# --- normalisation ------------------------------------------------------------------------------------------------


def minmax(losses: torch.Tensor) -> torch.Tensor:
    """(x - min) / (max - min), as DivideMix's eval_train does; a constant vector maps to zeros (no division by 0)."""
    losses = losses.detach().double()
    if losses.numel() == 0:
        return losses
    lo, hi = losses.min(), losses.max()
    span = hi - lo
    if span <= 0:
        return torch.zeros_like(losses)
    return (losses - lo) / span


def normalize_losses(losses: torch.Tensor, labels: torch.Tensor, how: str) -> torch.Tensor:
    """Normalise per-sample losses before a mixture fit: min-max within each label's class, over all, or not at all."""
    if how not in NORMALIZATIONS:
        raise ConfigError(f"unknown loss normalisation {how!r}; use one of {', '.join(NORMALIZATIONS)}")
    losses = losses.detach().double().cpu()
    if how == "none":
        return losses
    if how == "global-minmax":
        return minmax(losses)
    out = torch.empty_like(losses)
    labels = labels.cpu()
    for c in labels.unique():
        members = labels == c
        out[members] = minmax(losses[members])
    return out


# --- the mixture ----------------------------------------------------------------------------------------------------


@dataclass
class MixtureFit:
    """A two-component 1-D GMM on losses: the posterior of its low-mean (clean) component, and how the fit went."""

    clean_prob: torch.Tensor  # float64, one per sample
    converged: bool
    n_iter: int
    means: list[float] = field(default_factory=list)  # [clean, noisy]
    weights: list[float] = field(default_factory=list)  # [clean, noisy] mixing proportions
    stds: list[float] = field(default_factory=list)  # [clean, noisy] standard deviations
    warnings: list[str] = field(default_factory=list)
    note: str = ""

    def as_record(self) -> dict[str, Any]:
        return {
            "converged": self.converged,
            "n_iter": self.n_iter,
            "means": self.means,
            "weights": self.weights,
            "stds": self.stds,
            "warnings": self.warnings,
            **({"note": self.note} if self.note else {}),
        }


def gmm_clean_posterior(
    losses: torch.Tensor,
    *,
    max_iter: int = GMM_MAX_ITER,
    tol: float = GMM_TOL,
    reg_covar: float = GMM_REG_COVAR,
    seed: int = 0,
) -> MixtureFit:
    """Fit GaussianMixture(2) to `losses` and return the posterior of the component with the smaller mean.

    Warnings (sklearn's ConvergenceWarning after `max_iter` EM steps, which DivideMix's 10 iterations often trigger,
    or a degenerate k-means initialisation) are caught and recorded, never raised: the fit is used as it stands.
    With fewer than two samples there is nothing to split and every sample counts as clean (noted in the fit).
    """
    from sklearn.mixture import GaussianMixture

    x = losses.detach().double().cpu().numpy().reshape(-1, 1)
    if len(x) < 2:
        return MixtureFit(torch.ones(len(x), dtype=torch.float64), False, 0, note="fewer than 2 samples: all clean")
    if not np.isfinite(x).all():
        raise TrainingError("per-sample losses contain NaN or inf; lower the learning rate or check the input data")
    gmm = GaussianMixture(n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar, random_state=seed % 2**32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gmm.fit(x)
        prob = gmm.predict_proba(x)
    means = gmm.means_.ravel()
    clean, noisy = int(means.argmin()), int(means.argmax())
    if clean == noisy:  # equal means: argmin and argmax both return 0
        noisy = 1 - clean
    return MixtureFit(
        clean_prob=torch.from_numpy(prob[:, clean].copy()),
        converged=bool(gmm.converged_),
        n_iter=int(gmm.n_iter_),
        means=[float(means[clean]), float(means[noisy])],
        weights=[float(gmm.weights_[clean]), float(gmm.weights_[noisy])],
        stds=[float(np.sqrt(gmm.covariances_.ravel()[clean])), float(np.sqrt(gmm.covariances_.ravel()[noisy]))],
        warnings=sorted({f"{type(w.message).__name__}: {str(w.message).splitlines()[0][:160]}" for w in caught}),
    )


def separation(fit: MixtureFit) -> float:
    """Ashman's D of the two components, sqrt(2) |mu1 - mu2| / sqrt(s1^2 + s2^2); 0 for a failed fit.

    Ashman, Bird and Zepf (Astronomical Journal 108, 1994): D > 2 is needed for a clean separation of two normals;
    below it the "clean" and "noisy" components describe one blob of losses and the split carries little information.
    """
    if len(fit.means) < 2 or len(fit.stds) < 2:
        return 0.0
    spread = (fit.stds[0] ** 2 + fit.stds[1] ** 2) ** 0.5
    return float(2 ** 0.5 * abs(fit.means[1] - fit.means[0]) / spread) if spread > 0 else float("inf")


def classwise_clean_posterior(
    losses: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    normalize: str = "class-minmax",
    max_iter: int = GMM_MAX_ITER,
    tol: float = GMM_TOL,
    reg_covar: float = GMM_REG_COVAR,
    seed: int = 0,
) -> tuple[torch.Tensor, dict[int, MixtureFit]]:
    """Clean posterior of every sample from a separate two-component GMM per (noisy) class, as TURN's step 2 fits."""
    labels = labels.cpu()
    normed = normalize_losses(losses, labels, normalize)
    prob = torch.zeros(len(labels), dtype=torch.float64)
    fits: dict[int, MixtureFit] = {}
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()
        if len(members) == 0:
            continue
        fit = gmm_clean_posterior(normed[members], max_iter=max_iter, tol=tol, reg_covar=reg_covar, seed=seed + c)
        prob[members] = fit.clean_prob
        fits[c] = fit
    return prob, fits


def summarize_fits(fits: dict[int, MixtureFit]) -> dict[str, Any]:
    """How many mixture fits converged, and the classes (or keys) that did not."""
    bad = [k for k, f in fits.items() if not f.converged]
    return {"fits": len(fits), "not_converged": len(bad), "not_converged_keys": bad}


# --- class-balanced selection (TURN) ------------------------------------------------------------------------------


@dataclass
class BalancedSelection:
    """The selected mask and what the rule did per class."""

    mask: torch.Tensor  # bool, one per sample
    per_class_clean: dict[int, int]  # samples over the threshold, per class
    per_class_kept: dict[int, int]
    keep_per_class: int | None  # k of the balancing rule (None for balance="none")
    fallback_classes: list[int]  # classes with no sample over the threshold that got their top-k anyway
    rule: str

    def as_record(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "keep_per_class": self.keep_per_class,
            "per_class_clean": {str(k): v for k, v in self.per_class_clean.items()},
            "per_class_kept": {str(k): v for k, v in self.per_class_kept.items()},
            "fallback_classes": self.fallback_classes,
            "size": int(self.mask.sum()),
        }


def class_balanced_selection(
    clean_prob: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    threshold: float = 0.5,
    balance: str = "min",
) -> BalancedSelection:
    """Select clean samples: posterior > `threshold`, then (balance "min") every class keeps k samples, most confident
    first, where k is the smallest clean count over the classes.

    Fallback (lnlbench's rule; the paper does not cover it): a class that has samples but none over the threshold
    would make k = 0 and leave nothing to train on, so k is the smallest NONZERO clean count and such a class keeps
    its k most confident samples anyway (listed in `fallback_classes`). When no class has a sample over the
    threshold, every class keeps its top half (k = max(1, smallest class size // 2)). Classes nobody is labelled
    with are skipped. With balance "none" every sample over the threshold is kept, plus the same fallback.
    """
    if balance not in BALANCE_RULES:
        raise ConfigError(f"unknown balance rule {balance!r}; use one of {', '.join(BALANCE_RULES)}")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"selection threshold {threshold} is outside (0, 1); pass e.g. threshold=0.5")
    prob = clean_prob.detach().double().cpu()
    labels = labels.cpu()
    members: dict[int, torch.Tensor] = {}
    clean_counts: dict[int, int] = {}
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        if len(idx):
            # most confident first; ties broken by sample index (stable sort) so the selection is deterministic
            order = torch.sort(-prob[idx], stable=True).indices
            members[c] = idx[order]
            clean_counts[c] = int((prob[idx] > threshold).sum())
    nonzero = [n for n in clean_counts.values() if n > 0]
    if nonzero:
        k_fallback = min(nonzero)
        rule = f"posterior > {threshold}" + (", balanced to the smallest clean count" if balance == "min" else "")
    else:
        k_fallback = max(1, min(len(m) for m in members.values()) // 2) if members else 0
        rule = f"no sample over {threshold}: every class keeps its top half (k = {k_fallback})"
    mask = torch.zeros(len(labels), dtype=torch.bool)
    kept: dict[int, int] = {}
    fallback: list[int] = []
    for c, idx in members.items():
        if clean_counts[c] == 0:
            take = min(k_fallback, len(idx))
            fallback.append(c)
        elif balance == "min":
            take = k_fallback
        else:
            take = clean_counts[c]
        mask[idx[:take]] = True
        kept[c] = take
    return BalancedSelection(
        mask=mask,
        per_class_clean=clean_counts,
        per_class_kept=kept,
        keep_per_class=k_fallback if balance == "min" or not nonzero else None,
        fallback_classes=fallback,
        rule=rule,
    )


# --- small-loss selection (co-teaching) ---------------------------------------------------------------------------


def small_loss_count(batch_size: int, forget_rate: float, minimum: int = 2) -> int:
    """How many of a mini-batch to keep: int((1 - forget_rate) * B) as in co-teaching's loss.py, at least `minimum`
    (two, so that batch-norm layers with a 1x1 final feature map still see more than one value) and at most B."""
    keep = int((1.0 - forget_rate) * batch_size)
    return max(min(minimum, batch_size), min(keep, batch_size))


def small_loss_indices(losses: torch.Tensor, keep: int) -> torch.Tensor:
    """Positions of the `keep` smallest losses (stable order for ties)."""
    return torch.sort(losses.detach(), stable=True).indices[:keep]


# --- noise-rate estimate ------------------------------------------------------------------------------------------


def estimate_noise_rate(
    losses: torch.Tensor, labels: torch.Tensor, num_classes: int, *, seed: int = 0, **gmm: Any
) -> tuple[float, dict[str, Any]]:
    """The expected fraction of noisy labels: the mean posterior of the high-loss component over all samples, from
    one GMM per (noisy) class on class-wise min-max normalised losses (TURN's mixture). One GMM over all classes is
    far less stable (on cifar10-mini at 32 px, 50% noise, it read 0.87 where the per-class mixtures read 0.59)."""
    prob, fits = classwise_clean_posterior(losses, labels, num_classes, seed=seed, **gmm)
    return float(1.0 - prob.mean()), summarize_fits(fits)


def probe_losses(
    ctx: MethodContext,
    phase: str,
    head: torch.nn.Linear,
    train_feats: torch.Tensor,
    test_feats: torch.Tensor,
    settings: OptimSettings,
    loss: str = "gce",
    gce_q: float = 0.7,
) -> tuple[torch.nn.Linear, torch.Tensor]:
    """Train the linear `head` on cached pre-trained features (noisy labels) and return it with its per-sample
    cross-entropy on the training set: the material for a loss mixture, without touching any backbone."""
    from lnlbench.engine import per_sample_ce
    from lnlbench.training import train_linear_head

    head = train_linear_head(ctx, phase, head, train_feats, ctx.noisy_labels, test_feats, settings, loss, gce_q)
    head.eval()
    with torch.inference_mode():
        logits = head(train_feats.to(ctx.device).float())
        losses = per_sample_ce(logits, ctx.noisy_labels.to(ctx.device)).cpu()
    return head, losses
