"""Co-teaching's forget-rate schedule on a constructed case (Han et al., NeurIPS 2018).

R(t) = tau * min(t / T_k, 1) for the 0-based epoch t: it rises linearly from 0, reaches tau exactly at t = T_k and
stays there; every mini-batch keeps int((1 - R(t)) * B) of its samples (co-teaching's loss.py). The exchange itself
is covered by tests/test_methods.py (`test_coteaching_peers_train_on_each_others_selection`).
"""

from __future__ import annotations

import pytest

from lnlbench.plugin_manager import method_registry
from lnlbench.sample_selection import small_loss_count
from lnlbench_plugins import coteaching as ct
from test_methods import linear_models, make_ctx

TAU = 0.4
T_K = 3
EPOCHS = 5
BATCH = 20



@pytest.mark.parametrize("tau, t_k", [(0.4, 3), (0.5, 1), (0.8, 10)])
def test_forget_rate_reaches_tau_exactly_at_t_k(tau, t_k):
    rates = [ct.forget_rate_at(t, tau, t_k) for t in range(t_k + 3)]
    assert rates[0] == 0.0  # the first epoch keeps everything
    assert all(r < tau for r in rates[:t_k])  # still rising before T_k
    assert all(r == pytest.approx(tau, abs=1e-12) for r in rates[t_k:])  # at T_k and after: tau, never more
    steps = [b - a for a, b in zip(rates[: t_k + 1], rates[1 : t_k + 1])]
    assert steps == pytest.approx([tau / t_k] * t_k)  # linear in between


@pytest.mark.parametrize("data_order", ["independent", "shared"])
def test_training_follows_the_schedule_batch_by_batch(tmp_path, monkeypatch, data_order):
    hp = {"epochs": EPOCHS, "num_gradual": T_K, "forget_rate": TAU, "batch_size": BATCH, "augment": False,
          "lr": 0.1, "data_order": data_order}
    ctx, _ = make_ctx(tmp_path, "coteaching", hp, n_per_class=15)
    linear_models(ctx)
    calls: list[tuple[float, int, int, int]] = []
    real_step = ct.coteaching_step

    def step_spy(nets, opts, batches, inputs, labels, forget_rate, *args, **kwargs):
        (sel1, sel2), losses = real_step(nets, opts, batches, inputs, labels, forget_rate, *args, **kwargs)
        calls.append((forget_rate, len(batches[0]), len(sel1), len(sel2)))
        return (sel1, sel2), losses

    monkeypatch.setattr(ct, "coteaching_step", step_spy)
    out = method_registry().get("coteaching")().fit(ctx)

    per_epoch = len(calls) // EPOCHS
    assert per_epoch * EPOCHS == len(calls) and per_epoch > 0
    rates = [calls[e * per_epoch][0] for e in range(EPOCHS)]
    assert rates == [pytest.approx(ct.forget_rate_at(e, TAU, T_K)) for e in range(EPOCHS)]
    assert rates[0] == 0.0 and max(rates[:T_K]) < TAU and rates[T_K:] == [pytest.approx(TAU)] * (EPOCHS - T_K)
    for e in range(EPOCHS):
        for rate, size, kept1, kept2 in calls[e * per_epoch : (e + 1) * per_epoch]:
            assert rate == rates[e]  # one rate per epoch
            assert kept1 == kept2 == small_loss_count(size, rate) == max(2, int((1 - rate) * size))
    assert [h["forget_rate"] for h in ctx.history] == rates
    assert out.diagnostics["num_gradual"] == T_K and out.diagnostics["tau"] == TAU
