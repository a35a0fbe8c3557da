"""Budget scaling (issue 11, item 4): one rule scales every schedule element, proportions hold at every budget, the
schedule `lnlbench methods --show NAME --epochs N` prints is the one a run uses, and DivideMix's warm-up extension."""

from __future__ import annotations

import math

import pytest
import torch

from lnlbench.cli import main
from lnlbench.methods import SCALING_RULE, scale_epochs
from lnlbench.plugin_manager import method_registry
from lnlbench.sample_selection import MixtureFit, separation
from lnlbench.training import OptimSettings
from lnlbench_plugins import coteaching as ct
from lnlbench_plugins import dividemix as dm
from lnlbench_plugins import turn
from test_methods import linear_models, make_ctx

BUDGETS = (2, 3, 5, 10, 17, 30, 64, 100, 150, 300)


def hparams(method: str, epochs: int, dataset: str = "cifar10", **extra) -> dict:
    """Resolved hyperparameters of `method` at a budget of `epochs` (the budget's own hyperparameters)."""
    cls = method_registry().get(method)
    return cls.resolve_hparams(dataset, "sym", 0.5, {**cls.budget_hparams(epochs), **extra})


# --- the rule ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("element", "total"), [(10, 300), (30, 300), (16, 300), (150, 300), (10, 200), (50, 10)])
def test_the_reference_budget_gives_the_reference_schedule(element, total):
    assert scale_epochs(element, total, total) == element


@pytest.mark.parametrize("epochs", BUDGETS)
@pytest.mark.parametrize(("element", "total"), [(10, 300), (30, 300), (150, 300), (10, 200), (50, 10)])
def test_whole_epochs_stay_within_half_an_epoch_of_the_proportion_unless_raised_to_one(element, total, epochs):
    exact = element * epochs / total
    scaled = scale_epochs(element, total, epochs)
    assert scaled == 1 if exact < 0.5 else abs(scaled - exact) <= 0.5
    assert scale_epochs(element, total, epochs, whole=False) == pytest.approx(exact)


def test_scaled_elements_never_shrink_with_a_larger_budget():
    for element, total in [(10, 300), (150, 300), (10, 200), (50, 10)]:
        values = [scale_epochs(element, total, n) for n in BUDGETS]
        assert values == sorted(values)


# --- each method's schedule keeps its proportions ----------------------------------------------------------------


@pytest.mark.parametrize("epochs", BUDGETS)
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_dividemix_warmup_ramp_and_lr_drop_in_proportion(epochs, dataset):
    hp = hparams("dividemix", epochs, dataset, warmup_until_separated=False)
    low, high = dm.warmup_bounds(hp, dataset)
    assert low == high == dm.scaled_warmup(dataset, epochs)
    assert 1 <= low <= epochs - 1
    official = dm.official_warmup(dataset)
    if epochs == dm.OFFICIAL_EPOCHS:
        assert low == official and dm.rampup_for(hp, dataset, low) == dm.OFFICIAL_RAMPUP
    # the ramp keeps its official ratio to the warm-up it follows
    assert dm.rampup_for(hp, dataset, low) / low == pytest.approx(dm.OFFICIAL_RAMPUP / official)
    items = {i.name: i.value for i in dm.DivideMix.schedule(hp, dataset)}
    drop = items["lr / 10 from epoch"] - 1  # 0-based
    assert abs(drop - epochs * dm.OFFICIAL_LR_DROP / dm.OFFICIAL_EPOCHS) <= 0.5


@pytest.mark.parametrize("epochs", BUDGETS)
def test_dividemix_extension_is_bounded_by_half_the_budget(epochs):
    hp = hparams("dividemix", epochs)
    low, high = dm.warmup_bounds(hp, "cifar10")
    assert low == dm.scaled_warmup("cifar10", epochs) and high == max(low, epochs // 2)
    assert dm.warmup_bounds({**hp, "warmup_epochs": 1}, "cifar10") == (1, 1)  # a given warm-up is used as it is


@pytest.mark.parametrize("epochs", BUDGETS)
def test_coteaching_tk_in_proportion(epochs):
    tk = ct.scaled_num_gradual(epochs)
    exact = ct.OFFICIAL_NUM_GRADUAL * epochs / ct.OFFICIAL_EPOCHS
    assert tk == 1 if exact < 0.5 else abs(tk - exact) <= 0.5
    items = {i.name: i.value for i in ct.CoTeaching.schedule(hparams("coteaching", epochs), "cifar10")}
    assert items["T_k (epochs)"] == tk
    assert ct.forget_rate_at(tk, 0.5, tk) == 0.5 and ct.forget_rate_at(tk - 1, 0.5, tk) < 0.5


@pytest.mark.parametrize("epochs", BUDGETS)
def test_turn_probe_epochs_follow_the_finetuning_budget(epochs):
    hp = hparams("turn", epochs)
    assert hp["ft_epochs"] == epochs
    ratio = turn.REF_LP_EPOCHS / turn.REF_FT_EPOCHS
    assert abs(turn.lp_epochs_for(hp) - ratio * epochs) <= 0.5
    assert turn.lp_epochs_for({**hp, "lp_epochs": 7}) == 7  # a given value is used as it is


def test_step_schedule_divides_the_lr_at_the_milestone():
    settings = OptimSettings(epochs=10, lr=0.02, weight_decay=0.0, batch_size=1, schedule="step", milestones=(0.5,))
    opt, sched = settings.build([torch.nn.Parameter(torch.zeros(1))], 1)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == [pytest.approx(0.02)] * 5 and lrs[5:] == [pytest.approx(0.002)] * 5


# --- what `methods --show --epochs` prints ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["dividemix", "coteaching", "turn", "fft", "lp"])
def test_methods_show_epochs_prints_the_scaled_schedule_and_the_rule(capsys, method):
    assert main(["methods", "--show", method, "--epochs", "30", "--dataset", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert SCALING_RULE in out
    cls = method_registry().get(method)
    for item in cls.schedule(hparams(method, 30), "cifar10"):
        assert f"  {item.name} = {item.value}\n      reference: {item.reference}" in out
    for key, value in cls.budget_hparams(30).items():
        assert f"  {key} = {value!r}\n      source: --epochs 30" in out


def test_methods_show_epochs_changes_the_printed_schedule(capsys):
    main(["methods", "--show", "coteaching", "--epochs", "200"])
    assert "T_k (epochs) = 10" in capsys.readouterr().out
    main(["methods", "--show", "coteaching", "--epochs", "20"])
    assert "T_k (epochs) = 1" in capsys.readouterr().out


# --- DivideMix's warm-up extension ----------------------------------------------------------------------------------


def test_separation_tells_overlapping_from_split_components():
    # Ashman's D: sqrt(2) * 0.6 / sqrt(0.02) = 6 for means 0.6 apart with standard deviations 0.1
    assert separation(MixtureFit(torch.zeros(1), True, 1, means=[0.2, 0.8], stds=[0.1, 0.1])) == pytest.approx(6.0)
    assert separation(MixtureFit(torch.zeros(1), True, 1, means=[0.35, 0.43], stds=[0.1, 0.08])) < 2
    assert separation(MixtureFit(torch.zeros(1), False, 0)) == 0.0  # no fit: nothing separated


def run_dividemix(tmp_path, monkeypatch, separations: list[float], **hp) -> tuple[dict, list[int]]:
    """DivideMix on constructed data with linear models; the warm-up's separation check returns `separations`."""
    checked: list[int] = []

    def fake(ctx, nets, hparams, epoch):
        checked.append(epoch)
        return list(separations)

    monkeypatch.setattr(dm.DivideMix, "_separations", staticmethod(fake))
    ctx, _ = make_ctx(tmp_path, "dividemix", {"epochs": 8, "batch_size": 32, "augment": False, **hp}, n_per_class=20)
    linear_models(ctx)
    out = dm.DivideMix().fit(ctx)
    return out.diagnostics, checked


def test_warmup_stops_at_its_scaled_length_once_both_networks_separate(tmp_path, monkeypatch):
    diag, checked = run_dividemix(tmp_path, monkeypatch, [3.0, 3.0])
    assert diag["warmup_epochs"] == diag["warmup_bounds"][0] == 1 and checked == [0]
    assert diag["warmup_separated"] and diag["rampup_epochs"] == pytest.approx(1.6)


@pytest.mark.parametrize("seps", [[0.5, 0.5], [3.0, 0.5], [0.5, 3.0]])
def test_warmup_goes_on_to_half_the_budget_while_a_network_is_not_separated(tmp_path, monkeypatch, seps):
    diag, checked = run_dividemix(tmp_path, monkeypatch, seps)
    assert diag["warmup_epochs"] == 4 and checked == [0, 1, 2]  # checks after epochs 1-3; epoch 4 is the cap
    assert not diag["warmup_separated"] and diag["rampup_epochs"] == pytest.approx(1.6 * 4)
    assert len(diag["labeled_sizes"]) == 8 - 4  # the training phase gets the rest of the budget


def test_a_given_warmup_is_not_extended(tmp_path, monkeypatch):
    diag, checked = run_dividemix(tmp_path, monkeypatch, [0.5, 0.5], warmup_epochs=2)
    assert diag["warmup_epochs"] == 2 and checked == []
    diag, checked = run_dividemix(tmp_path / "off", monkeypatch, [0.5, 0.5], warmup_until_separated=False)
    assert diag["warmup_epochs"] == 1 and checked == []


def test_uniform_losses_of_an_untrained_network_do_not_count_as_separated(tmp_path):
    """The real check on networks that predict uniformly: every loss is ln C, nothing to split."""
    ctx, _ = make_ctx(tmp_path, "dividemix", {"epochs": 4, "batch_size": 32}, n_per_class=10)

    def zero_model(index: int = 0) -> torch.nn.Module:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        torch.nn.init.zeros_(model[1].weight)
        torch.nn.init.zeros_(model[1].bias)
        return model

    nets = (zero_model(), zero_model())
    seps = dm.DivideMix._separations(ctx, nets, ctx.hparams, 0)
    assert all(s < ctx.hparams["min_separation"] for s in seps), seps
    assert math.isfinite(sum(seps))
