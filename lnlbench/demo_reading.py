"""The demo's closing reading: two or three sentences computed from its records, never written in advance.

Which method won each noise setting, whether its lead over the runner-up exceeds the seed-to-seed spread, which
budgets the demo shortened against the methods' defaults, and what TURN's fine-tuning did relative to its own step 1.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping
from typing import Any


def _accuracies(records: list[dict]) -> dict[tuple[str, float], dict[str, list[float]]]:
    """(noise, rate) -> method -> test accuracies of its done runs (one per seed)."""
    out: dict[tuple[str, float], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        if rec.get("status") == "done":
            config = rec["config"]
            out[(config["noise"], float(config["rate"]))][rec["method"]].append(float(rec["metrics"]["test_acc"]))
    return out


def _spread(values: list[float]) -> float:
    return max(values) - min(values) if len(values) > 1 else float("nan")


def winner_sentence(noise: str, rate: float, accs: Mapping[str, list[float]]) -> str:
    """Who won the setting, by how much, and whether the seeds support it."""
    ranked = sorted(accs, key=lambda m: statistics.fmean(accs[m]), reverse=True)
    best = ranked[0]
    mean = statistics.fmean(accs[best])
    seeds = min(len(v) for v in accs.values())
    head = f"At {noise} {rate:.0%} noise, {best} won with a mean test accuracy of {mean:.3f}"
    if len(ranked) == 1:
        return head + " (the only method run)."
    second = ranked[1]
    lead = mean - statistics.fmean(accs[second])
    if seeds < 2:
        return (f"{head}, {100 * lead:.1f} points ahead of {second}; with one seed per method that ordering is not a "
                "finding (seed-to-seed spread unknown).")
    spread = max(_spread(accs[best]), _spread(accs[second]))
    verdict = ("more than the seed-to-seed spread of the two ({:.1f} points), so the lead holds on these seeds"
               if lead > spread else
               "within the seed-to-seed spread of the two ({:.1f} points), so this demo does not separate them")
    return f"{head} over {seeds} seeds, {100 * lead:.1f} points ahead of {second}: " + verdict.format(100 * spread) + "."


def budget_sentence(budgets: Mapping[str, Mapping[str, Any]], defaults: Mapping[str, Mapping[str, Any]]) -> str:
    """Which budgets the demo shortened, and what that does."""
    cut = []
    for method, hparams in budgets.items():
        for key, value in hparams.items():
            default = defaults.get(method, {}).get(key)
            if isinstance(value, (int, float)) and isinstance(default, (int, float)) and value < default:
                cut.append(f"{method} {key} {value} of {default}")
    if not cut:
        return "Every method ran at its default budget."
    return ("Budgets were shortened to fit the demo (" + ", ".join(cut) + "): short fine-tuning favours the methods "
            "that train a linear head on frozen features, so the fine-tuning methods' numbers here are lower bounds "
            "of what their defaults reach.")


def _finetune_trajectory(records: list[dict], noise: str, rate: float) -> str:
    """Why TURN trails its step 1 here, from its per-epoch test accuracy: how far fine-tuning fell, where it ended."""
    curves = [[h["test_acc"] for h in rec["metrics"].get("history", []) if h.get("phase") == "finetune"]
              for rec in records if rec.get("method") == "turn" and rec.get("status") == "done"
              and rec["config"]["noise"] == noise and float(rec["config"]["rate"]) == rate]
    curves = [c for c in curves if len(c) >= 2]
    if not curves:
        return ""
    low = min(min(c) for c in curves)
    rising = all(c[-1] > c[-2] for c in curves)
    precisions = [p for rec in records if rec.get("method") == "turn" and rec.get("status") == "done"
                  for p in [((rec["metrics"].get("selection") or {}).get("net1") or {}).get("final", {}).get("precision")]
                  if isinstance(p, float)]
    clean = f" (its selected subset was {statistics.fmean(precisions):.1%} clean)" if precisions else ""
    return (f": fine-tuning the whole network first pulled its accuracy down to {low:.2f} and it was "
            + (f"still rising at its last epoch, so it lacks fine-tuning epochs here{clean}" if rising
               else f"no longer rising at its last epoch{clean}"))


def turn_sentence(records: list[dict], accs: Mapping[tuple[str, float], Mapping[str, list[float]]]) -> str | None:
    """TURN against its own step 1 (`lp` on the same features), and whether its step-1 probe learned."""
    probes = [rec["metrics"].get("diagnostics", {}).get("probe", {}) for rec in records
              if rec.get("method") == "turn" and rec.get("status") == "done"]
    failed = [p for p in probes if p and not p.get("learned", True)]
    parts = []
    for (noise, rate), by_method in accs.items():
        if "turn" in by_method and "lp" in by_method:
            gap = statistics.fmean(by_method["turn"]) - statistics.fmean(by_method["lp"])
            if gap >= 0:
                parts.append(f"TURN's fine-tuning on its selected subset added {100 * gap:.1f} points to its step 1 "
                             f"(lp) at {noise} {rate:.0%}")
            else:
                parts.append(f"TURN ended {100 * -gap:.1f} points below its own step 1 (lp) at {noise} {rate:.0%}"
                             + _finetune_trajectory(records, noise, rate))
    if failed:
        parts.append(f"its step-1 probe did not learn in {len(failed)} of {len(probes)} runs (see the records)")
    return ("; ".join(parts) + ".") if parts else None


def read_demo(records: list[dict], budgets: Mapping[str, Mapping[str, Any]],
              defaults: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The reading: one sentence per noise setting, one on budgets, one on TURN where it ran beside lp."""
    accs = _accuracies(records)
    sentences = [winner_sentence(noise, rate, by_method) for (noise, rate), by_method in sorted(accs.items())]
    sentences.append(budget_sentence(budgets, defaults))
    turn = turn_sentence(records, accs)
    if turn:
        sentences.append(turn)
    return sentences
