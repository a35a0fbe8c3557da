"""Cost by phase of DivideMix: one warm-up epoch, then one epoch of co-divide and semi-supervised training.

Both networks, as the method runs them (`plugins/dividemix.py` through `execute_run`): `warmup` (cross-entropy on
all noisy labels, each network, test evaluation), `divide` (per-sample losses of the whole training set through
each network, one GMM each), `train` (MixMatch over the peer's division, each network, test evaluation). The
baseline is one `fft` epoch on the same images in the same process, so each phase reads as a multiple of it.
Each phase's figure is the fastest of REPEATS runs.

Run: pytest benchmarks/bench_dividemix.py --benchmark-only
"""

from __future__ import annotations

import benchkit

from lnlbench.harness import execute_run

N_TRAIN, N_TEST = 256, 128
PHASES = ("warmup", "divide", "train")
REPEATS = 2


def test_dividemix_epoch_by_phase(benchmark, tmp_path, figures):
    dm = benchkit.config_for("dividemix", {"epochs": 2, "warmup_epochs": 1}, N_TRAIN, N_TEST)
    fft = benchkit.config_for("fft", {"epochs": 1}, N_TRAIN, N_TEST)
    out: dict[str, dict] = {}

    def measure() -> None:
        # a first fft run pays the process's first-call costs (allocator, one-time initialisations); not counted
        execute_run(fft, tmp_path / "warm-up", cache_dir=tmp_path / "cache", device="cpu", verbose=False)
        for r in range(REPEATS):
            for name, config in (("fft", fft), ("dividemix", dm)):
                record = execute_run(config, tmp_path / f"{name}{r}", cache_dir=tmp_path / "cache", device="cpu",
                                     verbose=False)
                assert record["status"] == "done", record.get("error")
                cost = record["cost"]
                if name in out:  # the fastest of REPEATS, phase by phase: other processes only ever add time
                    cost["phases"] = {k: min(v, out[name]["phases"].get(k, v)) for k, v in cost["phases"].items()}
                out[name] = cost

    benchmark.pedantic(measure, rounds=1, iterations=1)
    phases = out["dividemix"]["phases"]
    fft_epoch = out["fft"]["phases"]["finetune"]
    epoch_s = sum(phases[p] for p in PHASES)
    benchmark.extra_info.update(dividemix_phases=phases, fft_epoch_s=fft_epoch)
    figures(f"data: {benchkit.source_name()}, {N_TRAIN} train / {N_TEST} test at {benchkit.IMAGE_SIZE} px, "
            f"{benchkit.BACKBONE}, batch 64 (warm-up 128); {benchkit.machine()}")
    for p in PHASES:
        figures(f"dividemix {p:<6}: {phases[p]:6.2f} s = {phases[p] / epoch_s:5.1%} of warm-up + one epoch, "
                f"{phases[p] / fft_epoch:4.1f}x one fft epoch ({fft_epoch:.2f} s)")
    train_epoch = phases["divide"] + phases["train"]
    figures(f"one DivideMix epoch after warm-up (divide + train): {train_epoch:.2f} s -> ratio "
            f"{train_epoch / fft_epoch:.1f} to one fft epoch; images seen: dividemix "
            f"{out['dividemix']['images_seen']:,} vs fft {out['fft']['images_seen']:,}")
