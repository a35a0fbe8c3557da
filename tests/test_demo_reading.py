"""The demo's closing reading is computed from its records: winner, lead against the seed spread, budgets, TURN."""

from __future__ import annotations

from lnlbench.demo_reading import read_demo


def rec(method: str, seed: int, acc: float, noise: str = "sym", rate: float = 0.5, probe_learned: bool = True) -> dict:
    diagnostics = {"probe": {"learned": probe_learned}} if method in ("lp", "turn") else {}
    return {"status": "done", "method": method, "config": {"noise": noise, "rate": rate, "seed": seed},
            "metrics": {"test_acc": acc, "diagnostics": diagnostics}}


DEFAULTS = {"lp": {"epochs": 50}, "turn": {"ft_epochs": 10}, "fft": {"epochs": 10}}


def test_a_lead_beyond_the_seed_spread_holds():
    records = [rec("lp", 0, 0.80), rec("lp", 1, 0.81), rec("fft", 0, 0.70), rec("fft", 1, 0.72)]
    first = read_demo(records, {"lp": {}, "fft": {"epochs": 2}}, DEFAULTS)[0]
    assert "lp won with a mean test accuracy of 0.805 over 2 seeds, 9.5 points ahead of fft" in first
    assert "more than the seed-to-seed spread of the two (2.0 points), so the lead holds" in first


def test_a_lead_within_the_seed_spread_is_not_a_finding():
    records = [rec("lp", 0, 0.80), rec("lp", 1, 0.70), rec("fft", 0, 0.76), rec("fft", 1, 0.73)]
    first = read_demo(records, {"lp": {}, "fft": {}}, DEFAULTS)[0]
    assert "lp won" in first and "within the seed-to-seed spread" in first and "does not separate them" in first


def test_one_seed_says_the_ordering_is_not_a_finding():
    first = read_demo([rec("lp", 0, 0.8), rec("fft", 0, 0.7)], {"lp": {}, "fft": {}}, DEFAULTS)[0]
    assert "with one seed per method that ordering is not a finding" in first


def test_shortened_budgets_are_named_against_the_defaults():
    sentences = read_demo([rec("lp", 0, 0.8), rec("fft", 0, 0.7)], {"lp": {}, "fft": {"epochs": 2}}, DEFAULTS)
    assert any("fft epochs 2 of 10" in s for s in sentences)
    assert not any("lp epochs" in s for s in sentences)  # lp ran at its default
    unshortened = read_demo([rec("lp", 0, 0.8)], {"lp": {}}, DEFAULTS)
    assert "Every method ran at its default budget." in unshortened


def test_turn_is_read_against_its_own_step_one():
    turn = rec("turn", 0, 0.75, probe_learned=False)
    turn["metrics"]["history"] = [{"phase": "linear_probe", "test_acc": 0.8}] + [
        {"phase": "finetune", "test_acc": a} for a in (0.12, 0.40, 0.75)]
    turn["metrics"]["selection"] = {"net1": {"final": {"precision": 0.95}}}
    below = read_demo([rec("lp", 0, 0.80), turn], {"lp": {}, "turn": {"ft_epochs": 2}}, DEFAULTS)
    assert any("TURN ended 5.0 points below its own step 1 (lp)" in s for s in below)
    assert any("pulled its accuracy down to 0.12 and it was still rising at its last epoch" in s for s in below)
    assert any("its selected subset was 95.0% clean" in s for s in below)
    assert any("its step-1 probe did not learn in 1 of 1 runs" in s for s in below)
    above = read_demo([rec("lp", 0, 0.70), rec("turn", 0, 0.75)], {"lp": {}, "turn": {}}, DEFAULTS)
    assert any("added 5.0 points to its step 1" in s for s in above)
