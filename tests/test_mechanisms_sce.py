"""SCE's mechanism on constructed cases (Wang et al., ICCV 2019): alpha * CE + beta * RCE, RCE bounded by -A.

RCE = -sum_k p_k log q_k with q the one-hot label and log 0 = A: -A (1 - p_y), in [0, -A] however wrong the
prediction (CE is unbounded). The plugin test takes one full-batch SGD step and compares it with the gradient of the
mean SCE; removing the RCE term (or ignoring beta) moves the step and fails it.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lnlbench.errors import ConfigError
from lnlbench.losses import reverse_cross_entropy, symmetric_cross_entropy
from lnlbench.plugin_manager import method_registry
from test_mechanisms_gce import expected_step, full_batch_step


def test_rce_is_bounded_by_minus_a_and_is_the_off_label_mass():
    g = torch.Generator().manual_seed(0)
    logits = 5 * torch.randn(200, 10, generator=g)
    labels = torch.randint(0, 10, (200,), generator=g)
    for a in (-4.0, math.log(1e-4)):
        rce = reverse_cross_entropy(logits, labels, a)
        assert (rce >= 0).all() and (rce <= -a + 1e-6).all()
        p_y = F.softmax(logits, 1).gather(1, labels[:, None]).squeeze(1)
        assert torch.allclose(rce, -a * (1 - p_y), atol=1e-5)
    wrong = torch.tensor([[-50.0, 50.0, 0.0]])  # as wrong as it gets: CE is 100, RCE saturates at -A = 4
    assert reverse_cross_entropy(wrong, torch.tensor([0])).item() == pytest.approx(4.0)
    assert F.cross_entropy(wrong, torch.tensor([0])).item() > 99
    with pytest.raises(ConfigError, match="A < 0"):
        reverse_cross_entropy(wrong, torch.tensor([0]), 0.0)


def test_sce_is_alpha_ce_plus_beta_rce():
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(50, 4, generator=g)
    labels = torch.randint(0, 4, (50,), generator=g)
    ce = F.cross_entropy(logits, labels, reduction="none")
    rce = reverse_cross_entropy(logits, labels, -4.0)
    sce = symmetric_cross_entropy(logits, labels, alpha=0.1, beta=1.0, log_zero=-4.0)
    assert torch.allclose(sce, 0.1 * ce + 1.0 * rce, atol=1e-5)
    assert (rce > 1e-3).any()  # the RCE term is present, not vanishing
    only_ce = symmetric_cross_entropy(logits, labels, alpha=1.0, beta=0.0)
    assert torch.allclose(only_ce, ce, atol=1e-5)


def test_sce_plugin_steps_along_the_gradient_of_mean_sce(tmp_path):
    hp = {"alpha": 0.3, "beta": 2.0, "log_zero": -6.0}  # not the defaults: each must reach the loss
    ctx, before, after, out = full_batch_step(tmp_path, "sce", hp)
    want = expected_step(ctx, before, 0.5, lambda z, y: 0.3 * F.cross_entropy(z, y, reduction="none")
                         + 2.0 * 6.0 * (1 - F.softmax(z, 1).gather(1, y[:, None]).squeeze(1)))
    ce_only = expected_step(ctx, before, 0.5, lambda z, y: 0.3 * F.cross_entropy(z, y, reduction="none"))
    for name, p in after.named_parameters():
        assert torch.allclose(p.detach(), want[name], atol=1e-5), name
    assert not torch.allclose(after[1].weight.detach(), ce_only["1.weight"], atol=1e-3)  # RCE moved the step
    assert out.diagnostics == {"loss": "sce", "alpha": 0.3, "beta": 2.0, "log_zero": -6.0}


def test_sce_defaults_follow_the_paper_per_dataset():
    cls = method_registry().get("sce")
    c10 = cls.resolve_hparams("cifar10", "sym", 0.4)
    c100 = cls.resolve_hparams("cifar100", "asym", 0.4)
    assert (c10["alpha"], c10["beta"], c10["log_zero"]) == (0.1, 1.0, -4.0)
    assert (c100["alpha"], c100["beta"]) == (6.0, 0.1)
    assert "train_models.py" in cls.hparam_overrides("cifar100", "sym", 0.4)["alpha"][1]
    with pytest.raises(ConfigError, match="no loss"):
        cls.resolve_hparams("cifar10", "sym", 0.4, {"alpha": 0, "beta": 0})
    with pytest.raises(ConfigError, match="log_zero"):
        cls.resolve_hparams("cifar10", "sym", 0.4, {"log_zero": 1.0})
