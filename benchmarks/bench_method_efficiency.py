"""Per-method efficiency: seconds per FLOP of a short run of every registered method, against `fft`'s.

A method's FLOPs are counted over a real run of it, phase by phase, with `torch.utils.flop_counter` (through
`lnlbench.flops.counted_phases`, which fixes torch's count of grouped-convolution backwards), and, for the methods
that have one, predicted by the method's pass model (`lnlbench.flops.PASS_MODELS`: the network passes its structure
requires); `counted / predicted` far above 1 would mean needless passes. Its seconds are the method's own phases
(`cost.method_s`: everything but loading the data and the final test) of runs timed without the counter,
interleaved with `fft`'s (the order reversed every round, the fastest of ROUNDS kept: other processes only ever add
time), each with a fresh feature cache (so TURN and `lp` pay their feature pass).

Efficiency ratio = (method seconds / method FLOPs) / (fft seconds / fft FLOPs); the target is <= 1.2 on CPU. The
budget is one epoch (`Method.budget_hparams(1)`); DivideMix gets one warm-up and one training epoch.
Every method in the registry is measured, plugins included; `LNLBENCH_BENCH_METHODS=fft,turn` picks some, and
`LNLBENCH_EFFICIENCY_N=2000` trains on more images (per-run fixed costs, such as TURN's probe-rule fits and the
per-epoch checkpoint, weigh less).

Run: pytest benchmarks/bench_method_efficiency.py --benchmark-only
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import benchkit

from lnlbench import flops
from lnlbench.errors import ConfigError
from lnlbench.harness import execute_run
from lnlbench.plugin_manager import method_registry

N_TRAIN = int(os.environ.get("LNLBENCH_EFFICIENCY_N", "256"))  # training images; fixed costs weigh less with more
N_TEST = 128
ROUNDS = 2
TARGET = 1.2
# DivideMix cannot train without a warm-up epoch first (its validate() refuses warmup >= epochs)
BUDGET_OVERRIDES: dict[str, dict[str, Any]] = {"dividemix": {"epochs": 2, "warmup_epochs": 1}}


def methods() -> list[str]:
    """Registered methods (fft first), or those named in LNLBENCH_BENCH_METHODS."""
    names = sorted(method_registry().names())
    chosen = os.environ.get("LNLBENCH_BENCH_METHODS")
    if chosen:
        wanted = [m.strip() for m in chosen.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in names]
        if unknown:
            raise ConfigError(f"LNLBENCH_BENCH_METHODS names unknown methods {unknown}; registered: {names}")
        names = wanted
    return ["fft"] + [m for m in names if m != "fft"]


def one_epoch_config(method: str, n_train: int = N_TRAIN, n_test: int = N_TEST, image_size: int = benchkit.IMAGE_SIZE):
    """The method at a one-epoch budget on the benchmark subset (two epochs where one does not validate)."""
    if method in BUDGET_OVERRIDES:
        return benchkit.config_for(method, BUDGET_OVERRIDES[method], n_train, n_test, image_size=image_size)
    cls = method_registry().get(method)
    try:
        return benchkit.config_for(method, cls.budget_hparams(1), n_train, n_test, image_size=image_size)
    except ConfigError:
        return benchkit.config_for(method, cls.budget_hparams(2), n_train, n_test, image_size=image_size)


def run(config, out: Path) -> dict:
    record = execute_run(config, out, cache_dir=out / "cache", device="cpu", verbose=False)
    assert record["status"] == "done", record.get("error")
    return record


def test_flops_normalised_efficiency(benchmark, tmp_path, figures):
    names = methods()
    configs = {m: one_epoch_config(m) for m in names}
    per_image = flops.backbone_flops(benchkit.BACKBONE, benchkit.WEIGHTS, 10, benchkit.IMAGE_SIZE)
    counted: dict[str, dict[str, float]] = {}
    predicted: dict[str, dict[str, float] | None] = {}
    best: dict[str, dict] = {}

    def measure() -> None:
        run(configs["fft"], tmp_path / "warm-up")  # first-call costs of the process, not counted
        for m in names:  # the FLOP count: one run under the counter (slower; not timed)
            with flops.counted_phases() as counts:
                record = run(configs[m], tmp_path / f"count-{m}")
            counted[m] = counts
            predicted[m] = flops.predicted_flops(record, per_image)
        for r in range(ROUNDS):
            for m in names if r % 2 == 0 else list(reversed(names)):
                cost = run(configs[m], tmp_path / f"{m}-{r}")["cost"]
                if m not in best or cost["method_s"] < best[m]["method_s"]:
                    best[m] = cost

    benchmark.pedantic(measure, rounds=1, iterations=1)
    figures(f"data: {benchkit.source_name()}, {N_TRAIN} train / {N_TEST} test at {benchkit.IMAGE_SIZE} px, "
            f"{benchkit.BACKBONE} ({flops.describe(per_image)} forward per image); fastest of {ROUNDS} interleaved "
            f"runs; {benchkit.machine()}")
    fft_rate = best["fft"]["method_s"] / flops.method_flops(counted["fft"])
    ratios = {}
    for m in names:
        total = flops.method_flops(counted[m])
        seconds = best[m]["method_s"]
        ratios[m] = seconds / total / fft_rate
        pred = predicted[m]
        check = "no pass model" if pred is None else (
            f"counted/predicted {total / sum(pred.values()):.3f} (backbone phases: "
            + ", ".join(f"{p} {counted[m].get(p, 0.0) / v:.3f}" for p, v in sorted(pred.items())) + ")")
        phases = ", ".join(
            f"{p} {best[m]['phases'][p]:.2f} s / {flops.describe(counted[m].get(p, 0.0))}"
            for p in best[m]["phases"] if p not in ("data", "test"))
        figures(f"{m:<11} {flops.describe(total):>13}, {seconds:6.2f} s -> s/FLOP vs fft {ratios[m]:5.2f} "
                f"(target <= {TARGET}); {check}; phases: {phases}")
        benchmark.extra_info[m] = {"flops": total, "method_s": seconds, "ratio": ratios[m], "phases": best[m]["phases"],
                                   "counted": counted[m], "predicted": pred}
    over = {m: round(r, 2) for m, r in ratios.items() if r > TARGET}
    figures(f"methods over {TARGET}x fft's s/FLOP: {over or 'none'}")
