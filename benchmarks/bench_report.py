"""Speed of `lnlbench report` over 10,000 synthetic result records (pytest-benchmark).

Run: pytest benchmarks/bench_report.py   (the per-stage timings are printed in the summary at the end)
The grid: 4 datasets x 2 backbones x 8 methods x 6 noise settings x 2 learning rates x 13 seeds = 9,984 finished runs,
plus 16 failed ones; 768 table cells in 8 tables, each record with a 30-epoch history like a real run's.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from lnlbench.report import build_report

DATASETS = ["cifar10", "cifar100", "clothing1m", "webvision"]
BACKBONES = ["tf_efficientnet_lite0", "vit_base_patch16_224"]
METHODS = ["lp", "fft", "turn", "coteaching", "dividemix", "elr", "gce", "sce"]
SETTINGS = [("sym", 0.2), ("sym", 0.5), ("sym", 0.8), ("asym", 0.2), ("asym", 0.4), ("idn", 0.4)]
LRS = [0.1, 0.01]
SEEDS = range(13)
N_FAILED = 16


def _record(dataset: str, backbone: str, method: str, noise: str, rate: float, lr: float, seed: int,
            rng: random.Random, failed: bool = False) -> dict:
    hparams = {"epochs": 30, "lr": lr, "batch_size": 128, "weight_decay": 5e-4}
    config = {
        "dataset": dataset, "noise": noise, "rate": rate, "method": method, "hparams": hparams, "image_size": 224,
        "noise_seed": 0, "seed": seed, "backbone": backbone, "weights": "packaged", "dataset_options": {},
        "noise_options": {}, "amp": "auto", "compile": False, "schema": 1,
    }
    run_id = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    wall = 600 + 300 * METHODS.index(method) + rng.random() * 50
    rec = {
        "schema": 1, "run_id": run_id, "status": "failed" if failed else "done", "method": method,
        "hparams": hparams, "dataset": dataset, "dataset_options": {}, "image_size": 224, "seed": seed,
        "backbone": {"name": backbone, "weights": "packaged", "weights_sha256": "0" * 64}, "config": config,
        "cost": {"wall_clock_s": wall, "phases": {"data": 10.0, "train": wall - 20, "test": 10.0},
                 "device": "cuda:NVIDIA H100 80GB HBM3", "device_count": 1, "gpu_hours": wall / 3600,
                 "peak_mem_mb": 12000.0, "images_seen": 1_500_000},
        "env": {"lnlbench": "0.1.0", "torch": "2.4.0", "timm": "1.0.9", "python": "3.11.9", "host": "n", "git": ""},
    }
    if failed:
        rec["error"] = "TrainingError: loss became NaN"
        return rec
    acc = 0.95 - 0.4 * rate * (1 - 0.05 * METHODS.index(method)) + rng.gauss(0, 0.01)
    rec["noise"] = {"model": noise, "rate": rate, "seed": 0, "realized_rate": rate,
                    "labels_sha256": hashlib.sha256(f"{dataset}{noise}{rate}".encode()).hexdigest(),
                    "transition_matrix": [[round(rng.random(), 4) for _ in range(10)] for _ in range(10)]}
    history = [{"phase": "train", "epoch": e, "test_acc": acc - 0.002 * (29 - e), "train_loss": 2.0 / (e + 1)}
               for e in range(30)]
    rec["metrics"] = {"test_acc": acc, "test_acc_best": acc + 0.003, "history": history}
    if method in ("turn", "dividemix", "coteaching"):
        final = {"size": 40000, "fraction": 0.8, "precision": 0.95 - 0.1 * rate, "recall": 0.9,
                 "subset_noise_rate": 0.05}
        rec["metrics"]["selection"] = {"net1": {"final": final, "by_epoch": [{"epoch": 0, **final}]}}
    return rec


def _say(request: pytest.FixtureRequest, line: str) -> None:
    """Report a line in the session summary (benchmarks/conftest.py's `figures`), or print it."""
    try:
        request.getfixturevalue("figures")(line)
    except pytest.FixtureLookupError:
        print(line)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "runs"
    rng = random.Random(0)
    n = 0
    for dataset in DATASETS:
        for backbone in BACKBONES:
            for method in METHODS:
                for noise, rate in SETTINGS:
                    for lr in LRS:
                        for seed in SEEDS:
                            rec = _record(dataset, backbone, method, noise, rate, lr, seed, rng)
                            run_dir = root / rec["run_id"]
                            run_dir.mkdir(parents=True)
                            (run_dir / "result.json").write_text(json.dumps(rec, indent=2, sort_keys=True))
                            n += 1
    assert n == 9984
    for i in range(N_FAILED):
        rec = _record("cifar10", "tf_efficientnet_lite0", "lp", "sym", 0.2, 0.1, 100 + i, rng, failed=True)
        run_dir = root / rec["run_id"]
        run_dir.mkdir(parents=True)
        (run_dir / "result.json").write_text(json.dumps(rec, indent=2, sort_keys=True))
    return root


def test_report_over_10000_records(benchmark, records, tmp_path, request):
    """The whole report: tables, leaderboards, 24 figures (PNG and SVG) and index.html."""
    summary = benchmark.pedantic(build_report, args=([records], tmp_path / "report"), kwargs={"requested_seeds": 13},
                                 rounds=1, iterations=1)
    assert (summary.n_done, summary.n_failed, summary.n_groups) == (9984, N_FAILED, 768)
    assert len(list((tmp_path / "report" / "plots").glob("*.png"))) == 8 * 3
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in summary.timings.items())
    _say(request, f"full report over 10,000 records: {stages}")


def test_report_without_plots_over_10000_records(benchmark, records, tmp_path, request):
    """Reading, grouping, tables and leaderboards: the part that grows with the number of records."""
    summary = benchmark.pedantic(build_report, args=([records], tmp_path / "report"),
                                 kwargs={"requested_seeds": 13, "make_plots": False}, rounds=3, iterations=1)
    assert summary.n_done == 9984 and summary.n_failed == N_FAILED
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in summary.timings.items())
    _say(request, f"report without plots over 10,000 records (last round): {stages}")
