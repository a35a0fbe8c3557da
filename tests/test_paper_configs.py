"""The TURN paper's sweep files (configs/turn2023/): each lists exactly its grid, every value carries its source, and
the shrunken CIFAR-10 sweep runs end to end on ../shared/data/cifar10-mini."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from lnlbench.cli import main
from lnlbench.sweep import load_sweep, parse_time_min

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "turn2023"
MINI_DATA = REPO.parent / "shared" / "data" / "cifar10-mini"

METHODS = ["lp", "fft", "turn", "coteaching", "dividemix"]
BACKBONES = ["resnet50.tv_in1k", "convnext_tiny.fb_in1k"]
CIFAR_NOISE = [("sym", 0.2), ("sym", 0.5), ("sym", 0.8), ("asym", 0.4)]
REAL_NOISE = [("real", 0.0)]

# The grid of each file, written out by hand: (dataset, noise settings, methods, backbones, seeds).
GRIDS = {
    "cifar10.yaml": ("cifar10", CIFAR_NOISE, METHODS, BACKBONES, [0, 1, 2]),  # 4 x 5 x 2 x 3 = 120
    "cifar100.yaml": ("cifar100", CIFAR_NOISE, METHODS, BACKBONES, [0, 1, 2]),  # 120
    "clothing1m.yaml": ("clothing1m", REAL_NOISE, METHODS, BACKBONES, [0]),  # 1 x 5 x 2 x 1 = 10
    "webvision.yaml": ("webvision", REAL_NOISE, METHODS, BACKBONES, [0, 1, 2]),  # 1 x 5 x 2 x 3 = 30
    "cifar10-mini.yaml": ("cifar10", [("sym", 0.5), ("asym", 0.4)], ["lp", "turn"], ["tf_efficientnet_lite0"], [0]),
}
EXPECTED_RUNS = {"cifar10.yaml": 120, "cifar100.yaml": 120, "clothing1m.yaml": 10, "webvision.yaml": 30,
                 "cifar10-mini.yaml": 4}
PAPER_FILES = ["cifar10.yaml", "cifar100.yaml", "clothing1m.yaml", "webvision.yaml"]

# "  would launch <run_id> <method> <dataset> <noise> <rate> noise_seed <n> <backbone> seed <s>  <hparams>"
LAUNCH_LINE = re.compile(
    r"would launch (?P<id>[0-9a-f]{16}) (?P<method>\S+) (?P<dataset>\S+) (?P<noise>\S+) (?P<rate>\S+) "
    r"noise_seed (?P<noise_seed>\d+) (?P<backbone>\S+) seed (?P<seed>\d+)"
)


def test_the_directory_holds_exactly_the_files_under_test():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(GRIDS)
    assert (CONFIGS / "README.md").is_file()


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_dry_run_lists_exactly_the_grid_and_writes_nothing(name, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", str(CONFIGS / name), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    n = EXPECTED_RUNS[name]
    assert f"{n} runs: 0 done" in text and f"{n} to launch" in text
    rows = [m.groupdict() for m in LAUNCH_LINE.finditer(text)]
    assert len(rows) == n == len({r["id"] for r in rows})
    dataset, noise, methods, backbones, seeds = GRIDS[name]
    expected = {
        (dataset, model, rate, method, backbone, seed)
        for (model, rate), method, backbone, seed in itertools.product(noise, methods, backbones, seeds)
    }
    assert len(expected) == n
    listed = {(r["dataset"], r["noise"], float(r["rate"]), r["method"], r["backbone"], int(r["seed"])) for r in rows}
    assert listed == expected
    assert {r["noise_seed"] for r in rows} == {"0"}
    assert not out.exists()


@pytest.mark.parametrize("name", PAPER_FILES)
def test_paper_files_use_placeholder_roots_224px_timm_weights_and_one_gpu_per_run(name):
    path = CONFIGS / name
    sweep = load_sweep(path)
    (ds,) = sweep.datasets
    assert Path(ds.data_root) == path.parent / "data" / ds.name  # a placeholder relative to the file
    assert [(b.name, b.weights, b.image_size) for b in sweep.backbones] == [(n, "timm", 224) for n in BACKBONES]
    assert [m.name for m in sweep.methods] == METHODS
    assert all(len(m.grid) == 1 for m in sweep.methods)  # one configuration per method, as a paper reports
    launcher = sweep.launcher
    assert launcher["name"] == "local"  # so --dry-run works without sbatch; --launcher slurm on the cluster
    assert launcher["gpus"] == 1
    assert 60 <= parse_time_min(launcher["time"]) <= 24 * 60


def test_budgets_are_shared_by_the_full_fine_tuning_methods():
    """Within each paper file, fft, TURN's step 3, Co-teaching and DivideMix train for the same number of epochs."""
    for name in PAPER_FILES:
        runs = load_sweep(CONFIGS / name).runs(provisional_ok=True)  # placeholder data roots, timm weights
        epochs = {r.method: r.hparams["ft_epochs" if r.method == "turn" else "epochs"] for r in runs if r.method != "lp"}
        assert len(set(epochs.values())) == 1, (name, epochs)


@pytest.mark.parametrize("name", PAPER_FILES)
def test_every_value_in_a_paper_file_says_where_it_comes_from(name):
    """A line that sets a value carries a comment, or follows a comment line that explains it."""
    previous = ""
    bare = []
    for number, line in enumerate((CONFIGS / name).read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            previous = stripped
            continue
        sets_value = not stripped.endswith(":")  # `methods:`, `hparams:` ... only open a block
        if sets_value and "#" not in stripped and not previous.startswith("#"):
            bare.append(f"{name}:{number}: {stripped}")
        previous = stripped
    assert not bare, "values without a source comment:\n" + "\n".join(bare)


def test_unverified_paper_values_are_marked_and_the_readme_says_how_to_find_them():
    marked = {name: (CONFIGS / name).read_text().count("[VERIFY]") for name in PAPER_FILES}
    assert all(count >= 2 for count in marked.values()), marked
    assert "grep -n VERIFY configs/turn2023/*.yaml" in (CONFIGS / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not MINI_DATA.is_dir(), reason="../shared/data/cifar10-mini is not beside this checkout")
def test_shrunken_cifar10_sweep_runs_end_to_end(tmp_path, capsys):
    out, cache = tmp_path / "runs", tmp_path / "cache"
    path = CONFIGS / "cifar10-mini.yaml"
    assert main(["sweep", str(path), "--out", str(out), "--cache-dir", str(cache)]) == 0
    assert "launched 4: 4 done, 0 failed" in capsys.readouterr().out

    records = [json.loads(p.read_text()) for p in sorted(out.glob("*/result.json"))]
    assert len(records) == 4
    by_point = {(r["method"], r["noise"]["model"], r["noise"]["rate"]): r for r in records}
    assert set(by_point) == {(m, n, rate) for m in ("lp", "turn") for n, rate in (("sym", 0.5), ("asym", 0.4))}
    for r in records:
        assert r["status"] == "done" and r["dataset"] == "cifar10"
        assert (r["n_train"], r["n_test"]) == (5000, 2000)
        assert r["backbone"]["name"] == "tf_efficientnet_lite0" and r["image_size"] == 32
        assert 0.0 <= r["metrics"]["test_acc"] <= 1.0
        assert r["cost"]["wall_clock_s"] > 0 and r["cost"]["phases"]
        assert len(r["noise"]["labels_sha256"]) == 64
    for model, rate in (("sym", 0.5), ("asym", 0.4)):
        lp, turn = by_point[("lp", model, rate)], by_point[("turn", model, rate)]
        assert lp["noise"]["labels_sha256"] == turn["noise"]["labels_sha256"]  # identical noisy labels
        assert lp["hparams"]["epochs"] == 3
        assert (turn["hparams"]["lp_epochs"], turn["hparams"]["ft_epochs"]) == (3, 1)
        selection = turn["metrics"]["selection"]
        assert selection and all(0 < v["final"]["size"] < 5000 for v in selection.values())
    assert abs(by_point[("lp", "sym", 0.5)]["noise"]["realized_rate"] - 0.5) < 0.01

    # Launched again, the sweep finds every run done and launches nothing.
    assert main(["sweep", str(path), "--out", str(out), "--cache-dir", str(cache)]) == 0
    assert "nothing to launch" in capsys.readouterr().out
    assert main(["status", str(out)]) == 0
    assert "4 runs: 4 done" in capsys.readouterr().out
