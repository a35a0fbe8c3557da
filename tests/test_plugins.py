"""The plugin contract: built-ins come through the entry-point group, and a third-party package joins them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest

from lnlbench import hookimpl, hookspecs
from lnlbench.methods import HParam, Method
from lnlbench.plugin_manager import method_registry, plugin_manager

FIXTURE = Path(__file__).parent / "fixtures" / "thirdparty_plugin"


def test_builtins_are_registered_through_entry_points():
    names = method_registry().names()
    assert {"lp", "fft"} <= set(names)
    for name in ("lp", "fft"):
        assert method_registry().get(name).source == "lnlbench"
    dists = {dist.project_name for _, dist in plugin_manager().list_plugin_distinfo()}
    assert "lnlbench" in dists


def test_every_method_declares_description_and_sourced_hparams():
    for name in method_registry().names():
        cls = method_registry().get(name)
        assert cls.description, name
        for key, hp in cls.hparam_space.items():
            assert hp.source, f"{name}.{key} has no source"


def test_unknown_hook_is_rejected():
    class Bad:
        @hookimpl
        def lnlbench_no_such_hook(self):
            return []

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(Bad())
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def test_hparam_resolution_checks_names_types_and_ranges():
    class M(Method):
        name = "m"
        hparam_space = {"lr": HParam(0.1, "test", low=0.0, low_open=True), "aug": HParam(True, "test")}

    assert M.resolve_hparams("d", "sym", 0.2, {"lr": "0.5", "aug": "false"}) == {"lr": 0.5, "aug": False}
    from lnlbench.errors import ConfigError

    with pytest.raises(ConfigError, match="no hyperparameter nope"):
        M.resolve_hparams("d", "sym", 0.2, {"nope": 1})
    with pytest.raises(ConfigError, match="outside"):
        M.resolve_hparams("d", "sym", 0.2, {"lr": 0.0})
    with pytest.raises(ConfigError, match="type float"):
        M.resolve_hparams("d", "sym", 0.2, {"lr": "fast"})


@pytest.fixture(scope="module")
def thirdparty_site(tmp_path_factory) -> Path:
    """The fixture package installed into a private directory (the test venv stays untouched)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(FIXTURE)],
        check=True,
    )
    return target


def _lnlbench(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run(
        [sys.executable, "-m", "lnlbench.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_thirdparty_plugin_is_listed_and_runs(thirdparty_site, tmp_path):
    listing = _lnlbench(["methods"], thirdparty_site, tmp_path)
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines() if line.strip()}
    assert {"lp", "fft", "majority"} <= set(lines)
    assert "lnlbench-majority" in lines["majority"]

    out = tmp_path / "out"
    run = _lnlbench(
        ["run", "--dataset", "digits", "--noise", "sym", "--rate", "0.2", "--method", "majority",
         "--image-size", "16", "--weights", "random", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)],
        thirdparty_site,
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    (record_path,) = out.glob("*/result.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "done" and record["method"] == "majority"
    assert "count" in record["cost"]["phases"]
    assert 0.05 <= record["metrics"]["test_acc"] <= 0.2  # one class of ten, stratified test set


def test_hparam_like_follows_its_origin():
    lr = HParam(0.01, "origin", help="step size", low=0.0, low_open=True, choices=None)
    copy = lr.like(prefix="as `fft`: ", suffix=" (paper)")
    assert copy.source == "as `fft`: origin (paper)"
    assert (copy.default, copy.help, copy.low, copy.low_open) == (0.01, "step size", 0.0, True)
    assert lr.like("own").source == "own" and lr.like(default=0.1).default == 0.1
    from lnlbench_plugins.fft import FFT_HPARAMS
    from lnlbench_plugins.turn import TURN_HPARAMS

    for key in ("lr", "weight_decay", "optimizer", "schedule"):
        ours, origin = TURN_HPARAMS[f"ft_{key}"], FFT_HPARAMS[key]
        fields = ("default", "low", "high", "low_open", "high_open", "choices")
        assert [getattr(ours, f) for f in fields] == [getattr(origin, f) for f in fields]


def test_thirdparty_dataset_noise_model_and_launcher_are_listed_and_work(thirdparty_site, tmp_path):
    datasets = _lnlbench(["datasets"], thirdparty_site, tmp_path)
    assert datasets.returncode == 0, datasets.stderr
    assert {"digits", "stripes"} <= {line.split()[0] for line in datasets.stdout.splitlines() if line.strip()}
    models = _lnlbench(["noise-models"], thirdparty_site, tmp_path)
    assert models.returncode == 0, models.stderr
    assert {"sym", "shift"} <= {line.split()[0] for line in models.stdout.splitlines() if line.strip()}
    launchers = subprocess.run(
        [sys.executable, "-c", "from lnlbench.plugin_manager import launcher_registry; print(*launcher_registry().names())"],
        env=dict(os.environ, PYTHONPATH=str(thirdparty_site)), capture_output=True, text=True, timeout=300,
    )
    assert launchers.returncode == 0, launchers.stderr
    assert {"local", "debug", "slurm", "inline-test"} <= set(launchers.stdout.split())

    sweep = tmp_path / "plugin.yaml"
    sweep.write_text(
        "datasets: [stripes]\nnoise:\n  - {model: shift, rate: 0.25}\nmethods:\n  - majority\n"
        "backbones:\n  - {name: test_efficientnet, weights: random, image_size: 16}\nseeds: [0]\n"
    )
    out = tmp_path / "out"
    run = _lnlbench(["sweep", str(sweep), "--out", str(out), "--launcher", "inline-test",
                     "--cache-dir", str(tmp_path / "cache")], thirdparty_site, tmp_path)
    assert run.returncode == 0, run.stderr
    (record_path,) = out.glob("*/result.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "done", record.get("error")
    assert (record["dataset"], record["method"]) == ("stripes", "majority")
    assert record["noise"]["model"] == "shift" and record["noise"]["realized_rate"] == 0.25  # 20 of 80 moved
