"""Step-1 probes that learn (issue 11, item 5): lr and weight decay chosen on a held-out split of the noisy training
labels, the record says whether the probe's loss fell below the uniform-prediction loss, and a probe that did not
learn says so in its record and in the printed summary."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lnlbench.cli import main
from lnlbench.losses import per_sample_loss
from lnlbench.harness import execute_run, resolve_config
from lnlbench.training import (
    PROBE_HOLDOUT,
    PROBE_LR_GRID,
    PROBE_WEIGHT_DECAY_GRID,
    OptimSettings,
    choose_probe_settings,
    probe_check,
    uniform_loss,
)
from test_methods import C, make_ctx

BASE = OptimSettings(epochs=20, lr=float("nan"), weight_decay=float("nan"), batch_size=32, optimizer="adam")



def small_features(ctx, scale: float) -> torch.Tensor:
    """Features that separate the CLEAN classes (one prototype per class plus noise), scaled down to `scale`: as at
    32 px, where pooled features are small and a strong weight decay keeps a probe at the uniform prediction."""
    g = torch.Generator().manual_seed(0)
    protos = torch.randn(C, 16, generator=g)
    clean = torch.arange(C).repeat_interleave(len(ctx.noisy_labels) // C)
    return scale * (protos[clean] + 0.3 * torch.randn(len(clean), 16, generator=g))


def fresh_head() -> torch.nn.Linear:
    torch.manual_seed(0)
    head = torch.nn.Linear(16, C)
    torch.nn.init.normal_(head.weight, std=0.01)
    torch.nn.init.zeros_(head.bias)
    return head


@pytest.mark.parametrize("loss", ["ce", "gce"])
def test_uniform_loss_is_the_loss_of_a_uniform_prediction(loss):
    labels = torch.arange(C).repeat(3)
    assert per_sample_loss(loss, torch.zeros(len(labels), C), labels, 0.7).mean().item() == pytest.approx(
        uniform_loss(loss, C, 0.7)
    )


@pytest.mark.parametrize("loss", ["ce", "gce"])
def test_rule_picks_the_lowest_heldout_loss_and_the_probe_learns(tmp_path, loss):
    ctx, _ = make_ctx(tmp_path, "lp")
    feats = small_features(ctx, 0.05)
    settings, record = choose_probe_settings(ctx, "linear_probe", fresh_head(), feats, BASE, loss, 0.7)
    grid = record["grid"]
    assert len(grid) == len(PROBE_LR_GRID) * len(PROBE_WEIGHT_DECAY_GRID)
    assert record["holdout"] == int(len(feats) * PROBE_HOLDOUT)
    best = min(grid, key=lambda g: g["holdout_loss"])
    assert (settings.lr, settings.weight_decay) == (best["lr"], best["weight_decay"])
    # at this feature scale the strongest decay does not learn: the rule must not pick it
    strongest = [g for g in grid if g["weight_decay"] == max(PROBE_WEIGHT_DECAY_GRID)]
    assert all(g["holdout_loss"] > best["holdout_loss"] for g in strongest)

    from lnlbench.training import fit_head

    head = fit_head(fresh_head(), feats, ctx.noisy_labels, settings, loss, 0.7, torch.Generator().manual_seed(1))
    good = probe_check(ctx, head, feats, loss, 0.7, "probe")
    assert good["learned"] and good["final_train_loss"] < good["uniform_loss"] and "warning" not in good
    stuck = fit_head(fresh_head(), feats, ctx.noisy_labels,
                     OptimSettings(20, 1e-3, max(PROBE_WEIGHT_DECAY_GRID), 32, "adam"), loss, 0.7,
                     torch.Generator().manual_seed(1))
    bad = probe_check(ctx, stuck, feats, loss, 0.7, "probe")
    assert not bad["learned"] and "did not learn" in bad["warning"]


def test_rule_reads_only_the_noisy_training_labels(tmp_path):
    ctx, _ = make_ctx(tmp_path / "a", "lp")
    feats = small_features(ctx, 0.05)
    first, _ = choose_probe_settings(ctx, "p", fresh_head(), feats, BASE, "ce")
    other, _ = make_ctx(tmp_path / "b", "lp")
    other.test_labels = other.test_labels.flip(0)  # the test set cannot change the choice
    other.test = None  # nor can its images: the rule never touches them
    again, _ = choose_probe_settings(other, "p", fresh_head(), feats, BASE, "ce")
    assert (first.lr, first.weight_decay) == (again.lr, again.weight_decay)


def test_choice_is_kept_for_a_resumed_run_and_given_values_skip_the_rule(tmp_path):
    ctx, _ = make_ctx(tmp_path, "lp")
    feats = small_features(ctx, 0.05)
    first, record = choose_probe_settings(ctx, "p", fresh_head(), feats, BASE, "ce")
    saved = json.loads((ctx.checkpoint_dir / "p-probe-rule.json").read_text())
    assert saved["chosen"] == {"lr": first.lr, "weight_decay": first.weight_decay}
    given, rec = choose_probe_settings(ctx, "q", fresh_head(), feats, BASE, "ce", lr=0.5, weight_decay=0.25)
    assert (given.lr, given.weight_decay) == (0.5, 0.25) and rec == {"rule": "given"}
    partly, rec = choose_probe_settings(ctx, "r", fresh_head(), feats, BASE, "ce", lr=0.005)
    assert {g["lr"] for g in rec["grid"]} == {0.005} and partly.lr == 0.005


@pytest.mark.parametrize("method", ["lp", "turn"])
def test_a_probe_that_did_not_learn_says_so_in_its_record_and_summary(tmp_path, capsys, method):
    stuck = {"lp": {"epochs": 2, "lr": 1e-4, "weight_decay": 100.0},
             "turn": {"lp_epochs": 2, "lp_lr": 1e-4, "lp_weight_decay": 100.0, "ft_epochs": 1,
                      "ft_batch_size": 256}}[method]
    args = ["run", "--dataset", "digits", "--noise", "sym", "--rate", "0.4", "--method", method,
            "--backbone", "test_efficientnet", "--weights", "random", "--image-size", "8",
            "--device", "cpu", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    for key, value in stuck.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 0
    captured = capsys.readouterr()
    record = json.loads(next((tmp_path / "out").glob("*/result.json")).read_text())
    probe = record["metrics"]["diagnostics"]["probe"]
    assert probe["learned"] is False and probe["final_train_loss"] >= probe["uniform_loss"] * (1 - probe["margin"])
    assert record["metrics"]["diagnostics"]["warnings"] == [probe["warning"]]
    assert f"warning: {probe['warning']}" in captured.out


def test_default_probe_record_is_consistent(tmp_path):
    """With the rule's defaults the record carries the choice, the loss against the uniform loss, and a warning exactly
    when the probe did not learn (random 8 px features may or may not carry the digits)."""
    config = resolve_config(dataset="digits", noise="sym", rate=0.4, method="lp", backbone="test_efficientnet",
                            weights="random", image_size=8, hparams={"epochs": 5})
    record = execute_run(config, tmp_path / "out", cache_dir=tmp_path / "cache", device="cpu", verbose=False)
    diag = record["metrics"]["diagnostics"]
    probe = diag["probe"]
    assert probe["uniform_loss"] == pytest.approx(math.log(10))
    assert probe["learned"] == (probe["final_train_loss"] < probe["uniform_loss"] * (1 - probe["margin"]))
    assert ("warnings" in diag) == (not probe["learned"])
    assert probe["rule"]["chosen"] == {"lr": probe["lr"], "weight_decay": probe["weight_decay"]}
    # chosen, not given (the record may leave null hyperparameters out)
    assert record["hparams"].get("lr") is None and record["hparams"].get("weight_decay") is None
