"""How each method's cost grows with the work: one-epoch runs at 1,000, 2,000 and 5,000 training images, at two
resolutions, fitted to time = a + b * n^k.

The runs are those of `bench_method_efficiency.py` (one epoch; DivideMix one warm-up and one training epoch) on
subsets of the real cifar10-mini training images (seed 0; the test set fixed at N_TEST images, so its per-epoch
evaluation is part of the fixed cost), timed by the method's own phases (`cost.method_s`), the fastest of ROUNDS
runs per point (a method's sizes run back to back, in reversed order every other round). k is fitted with a >= 0
and b >= 0 (a grid over k, least squares for a and b); with three sizes the fit passes through the points, so the
local slope between the two largest sizes (log t ratio / log n ratio) is printed beside it. Peak memory is the run's
own (`cost.peak_mem_mb`: resident set on the CPU, allocated GPU memory on CUDA; lnlbench.memory).

Cost per round for the ten built-in methods on 2 cores, each run in a fresh process: about 10 minutes at 32 px and
20 at 64 px; LNLBENCH_SCALING_ROUNDS=1 halves the default. Pick with LNLBENCH_BENCH_METHODS=fft,turn (default: every
registered method) and LNLBENCH_SCALING_SIZES=32 (default 32,64).

Run: pytest benchmarks/bench_scaling.py --benchmark-only
"""

from __future__ import annotations

import math
import multiprocessing
import os

import benchkit
import numpy as np
from bench_method_efficiency import methods, one_epoch_config, run

from lnlbench import flops
from lnlbench.errors import ConfigError

SIZES = (1000, 2000, 5000)
N_TEST = 128
K_GRID = np.linspace(0.3, 2.5, 221)
ROUNDS = int(os.environ.get("LNLBENCH_SCALING_ROUNDS", "2"))  # runs per point, the fastest kept
ISOLATE = os.environ.get("LNLBENCH_SCALING_ISOLATE", "1") != "0"  # each run in a fresh process (see run_point)


def run_point(config, out):
    """One run; with ISOLATE, in a fresh process, so that its peak memory is its own: in one process, the heap a
    DivideMix run left behind (freed but fragmented, or still referenced) raised the peak of every later run by about
    500 MB (64 px: `gce` 1,945 MB after DivideMix against `fft`'s 1,430 before it, the same passes)."""
    if not ISOLATE:
        return run(config, out)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run, (config, out))


def image_sizes() -> list[int]:
    raw = os.environ.get("LNLBENCH_SCALING_SIZES", "32,64")
    try:
        return [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"LNLBENCH_SCALING_SIZES={raw!r} must be pixel sizes separated by commas, e.g. 32,64")


def fit_power(n: list[float], t: list[float]) -> tuple[float, float, float]:
    """(a, b, k) of t = a + b n^k with a, b >= 0, least squares over a grid of k."""
    n_arr, t_arr = np.asarray(n, float), np.asarray(t, float)
    best = (math.inf, 0.0, 0.0, 1.0)
    for k in K_GRID:
        x = n_arr**k
        design = np.stack([np.ones_like(x), x], 1)
        (a, b), *_ = np.linalg.lstsq(design, t_arr, rcond=None)
        if a < 0:  # the fixed cost cannot be negative: fit the power alone
            a, b = 0.0, float(x @ t_arr / (x @ x))
        b = max(b, 0.0)
        err = float(((a + b * x - t_arr) ** 2).sum())
        if err < best[0]:
            best = (err, float(a), float(b), float(k))
    return best[1], best[2], best[3]


def linear_in_work(gflops: list[float], t: list[float]) -> str:
    """t = a + b W by least squares (k fixed at 1): the fixed cost a, the marginal seconds per GFLOP b (to compare
    across methods: the same for every method when none wastes time per unit of work) and the largest residual.
    With three points the power fit above trades a against k; this one does not."""
    design = np.stack([np.ones(len(gflops)), np.asarray(gflops, float)], 1)
    (a, b), *_ = np.linalg.lstsq(design, np.asarray(t, float), rcond=None)
    residual = float(np.max(np.abs(design @ np.array([a, b]) - t) / np.asarray(t, float)))
    return f"a = {a:.2f} s + {1000 * b:.1f} ms per GFLOP, largest residual {residual:.0%}"


def test_cost_scales_with_images(benchmark, tmp_path, figures):
    names = methods()
    px_list = image_sizes()
    timings: dict[tuple[str, int], list[dict]] = {}  # the fastest record per size

    def measure() -> None:
        if not ISOLATE:  # first-call costs of the process; an isolated run pays its own (they go into the fixed a)
            run(one_epoch_config("fft", SIZES[0], N_TEST, px_list[0]), tmp_path / "warm-up")
        for px in px_list:
            for m in names:  # a method's sizes back to back (load drift between them stays small), ABC then CBA
                best: dict[int, dict] = {}
                for r in range(ROUNDS):
                    for n in SIZES if r % 2 == 0 else tuple(reversed(SIZES)):
                        before = benchkit.stolen_s()
                        record = run_point(one_epoch_config(m, n, N_TEST, px), tmp_path / f"{m}-{px}-{n}-{r}")
                        record["stolen_s"] = None if before is None else benchkit.stolen_s() - before
                        if n not in best or record["cost"]["method_s"] < best[n]["cost"]["method_s"]:
                            best[n] = record  # other processes only ever add time
                timings[(m, px)] = [best[n] for n in SIZES]

    benchmark.pedantic(measure, rounds=1, iterations=1)
    figures(f"data: {benchkit.source_name()}, {'/'.join(map(str, SIZES))} train / {N_TEST} test images, one epoch "
            f"per point, fastest of {ROUNDS}, {'each run in a fresh process' if ISOLATE else 'all in this process'}; "
            f"{benchkit.BACKBONE}; {benchkit.machine()}")
    per_image = {px: flops.backbone_flops(benchkit.BACKBONE, benchkit.WEIGHTS, 10, px) for px in px_list}
    for (m, px), records in timings.items():
        costs = [r["cost"] for r in records]
        t = [c["method_s"] for c in costs]
        # seconds per predicted GFLOP: constant when time follows the work, even where the work is not linear in n
        # (DivideMix trains on its labelled set, whose size the division decides)
        work = [flops.predicted_flops(r, per_image[px]) for r in records]
        a, b, k = fit_power(list(SIZES), t)
        local = math.log(t[-1] / t[-2]) / math.log(SIZES[-1] / SIZES[-2])
        # the same fit against the predicted work: k near 1 means time follows the passes the method must make, even
        # where its work is not proportional to n (a selection that keeps a different share of n at each size)
        gflops = None if None in work else [sum(w.values()) / 1e9 for w in work]
        in_work = "" if gflops is None else "; fit a + b W^k in predicted GFLOP W: k = {2:.2f}, fixed a = {0:.2f} s".format(
            *fit_power(gflops, t)) + f"; linear in W: {linear_in_work(gflops, t)}"
        per_work = "n/a (no pass model)" if gflops is None else "/".join(f"{s / g:.3f}" for s, g in zip(t, gflops))
        mem = "/".join(f"{c.get('peak_mem_mb', float('nan')):.0f}" for c in costs)
        steal = "/".join("?" if r["stolen_s"] is None else f"{r['stolen_s']:.1f}" for r in records)
        figures(f"{m:<11} {px:>3} px: " + ", ".join(f"{n} -> {s:6.2f} s" for n, s in zip(SIZES, t))
                + f"; fit a + b n^k: k = {k:.2f}, fixed a = {a:.2f} s; slope {SIZES[-2]}->{SIZES[-1]}: {local:.2f}"
                + in_work + f"; s per predicted GFLOP {per_work}; peak memory MB {mem}; stolen CPU s {steal}")
        benchmark.extra_info[f"{m}@{px}"] = {"seconds": t, "a": a, "b": b, "k": k, "local_slope": local,
                                             "peak_mem_mb": [c.get("peak_mem_mb") for c in costs],
                                             "stolen_s": [r["stolen_s"] for r in records]}
