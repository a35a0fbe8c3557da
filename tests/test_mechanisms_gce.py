"""GCE's mechanism on constructed cases (Zhang & Sabuncu, NeurIPS 2018): the loss L_q = (1 - p_y^q) / q and the plugin
training on it.

d L_q / d theta = p_y^q * d CE / d theta (paper Eq. 7), so a sample the network finds unlikely under its label (small
p_y, often a mislabelled one) is down-weighted relative to CE. The plugin test takes one full-batch SGD step (zero
momentum buffer, no weight decay: the update is exactly -lr * gradient) and compares it with the gradient of mean L_q.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lnlbench.losses import generalized_cross_entropy
from lnlbench.plugin_manager import method_registry
from test_methods import linear_models, make_ctx


def logit_grads(loss_fn, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d(sum of per-sample losses)/d logits, one row per sample."""
    z = logits.clone().requires_grad_(True)
    loss_fn(z, labels).sum().backward()
    return z.grad


def test_gce_gradient_is_ce_gradient_weighted_by_p_y_to_the_q():
    g = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(32, 5, generator=g)
    labels = torch.randint(0, 5, (32,), generator=g)
    q = 0.7
    gce = logit_grads(lambda z, y: generalized_cross_entropy(z, y, q), logits, labels)
    ce = logit_grads(lambda z, y: F.cross_entropy(z, y, reduction="none"), logits, labels)
    p_y = F.softmax(logits, 1).gather(1, labels[:, None])
    assert torch.allclose(gce, p_y.pow(q) * ce, atol=1e-6)


def test_low_confidence_samples_are_down_weighted_relative_to_ce():
    labels = torch.tensor([0, 0])
    logits = torch.tensor([[4.0, 0.0, 0.0], [-3.0, 2.0, 0.0]])  # confident in its label / label looks wrong
    gce = logit_grads(lambda z, y: generalized_cross_entropy(z, y, 0.7), logits, labels).norm(dim=1)
    ce = logit_grads(lambda z, y: F.cross_entropy(z, y, reduction="none"), logits, labels).norm(dim=1)
    ratio = gce / ce
    assert ratio[1] < 0.1 < ratio[0]  # the doubtful sample weighs far less than under CE; the confident one less so
    assert ce[1] > ce[0] and gce[1] < ce[1]  # CE pushes hardest on the doubtful sample, GCE does not
    # q -> 0 recovers CE, q = 1 is MAE (1 - p_y)
    ce_loss = F.cross_entropy(logits, labels, reduction="none")
    assert torch.allclose(generalized_cross_entropy(logits, labels, 1e-3), ce_loss, rtol=2e-2)
    assert torch.allclose(generalized_cross_entropy(logits, labels, 1.0), 1 - F.softmax(logits, 1)[:, 0])


def full_batch_step(tmp_path, method: str, hparams: dict, n_per_class: int = 6):
    """One full-batch SGD step of `method` on a linear model; returns (ctx, initial model, trained model, output)."""
    hp = {"epochs": 1, "augment": False, "weight_decay": 0.0, "schedule": "constant", "lr": 0.5,
          "batch_size": 4 * n_per_class, **hparams}
    ctx, clean = make_ctx(tmp_path, method, hp, n_per_class=n_per_class)
    linear_models(ctx)
    before = ctx.make_model(0)
    trained: list[torch.nn.Module] = []
    make = ctx.make_model

    def keep(index: int = 0) -> torch.nn.Module:
        trained.append(make(index))
        return trained[-1]

    ctx.make_model = keep  # type: ignore[method-assign]
    out = method_registry().get(method)().fit(ctx)
    return ctx, before, trained[0], out


def expected_step(ctx, before: torch.nn.Module, lr: float, loss_fn) -> dict[str, torch.Tensor]:
    """Parameters after one plain gradient step of `loss_fn(logits, labels).mean()` over the whole training set."""
    x = ctx.train.batch(torch.arange(len(ctx.noisy_labels)), None)
    loss = loss_fn(before(x), ctx.noisy_labels).mean()
    grads = torch.autograd.grad(loss, list(before.parameters()))
    return {name: p.detach() - lr * g for (name, p), g in zip(before.named_parameters(), grads)}


def test_gce_plugin_steps_along_the_gradient_of_mean_l_q(tmp_path):
    q = 0.5  # not the default, so the test also checks the hyperparameter reaches the loss
    ctx, before, after, out = full_batch_step(tmp_path, "gce", {"q": q})
    want = expected_step(ctx, before, 0.5, lambda z, y: generalized_cross_entropy(z, y, q))
    ce_step = expected_step(ctx, before, 0.5, lambda z, y: F.cross_entropy(z, y, reduction="none"))
    for name, p in after.named_parameters():
        assert torch.allclose(p.detach(), want[name], atol=1e-5), name
    assert not torch.allclose(after[1].weight.detach(), ce_step["1.weight"], atol=1e-4)  # not CE's step
    assert out.diagnostics == {"loss": "gce", "q": q}


def test_gce_defaults_are_sourced():
    cls = method_registry().get("gce")
    assert cls.hparam_space["q"].default == 0.7 and "Sec. 4" in cls.hparam_space["q"].source
    with pytest.raises(Exception, match="q"):
        cls.resolve_hparams("cifar10", "sym", 0.5, {"q": 0.0})
