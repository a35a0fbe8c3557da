"""Sweep files: grid expansion, stable run ids, and bad input named by file, line and key before anything runs."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest

from lnlbench.cli import main
from lnlbench.errors import ConfigError
from lnlbench.launch import LauncherSettings, launch_sweep
from lnlbench.harness import resolve_config
from lnlbench.config import SCHEMA, write_json_atomic
from lnlbench.sweep import load_sweep, parse_mem_gb, parse_mem_mb, parse_time_min

REPO = Path(__file__).resolve().parents[1]

TINY = """\
name: tiny
datasets:
  - digits
noise:
  - [sym, 0.2]
  - {model: sym, rates: [0.4, 0.6]}
noise_seeds: [0, 1]
methods:
  - name: lp
    hparams:
      epochs: 2
      lr: [0.001, 0.01]
  - fft
hparams:
  fft: {epochs: 1}
backbones:
  - {name: test_resnet, weights: random}
image_size: 32
seeds: [0]
launcher:
  name: local
  jobs: 2
"""


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_grid_expands_every_axis_and_hparam_list(tmp_path):
    sweep = load_sweep(write(tmp_path, TINY))
    runs = sweep.runs()
    # 3 noise settings x 2 noise seeds x (2 lp learning rates + 1 fft)
    assert len(runs) == 3 * 2 * 3
    assert len({r.run_id for r in runs}) == len(runs)
    lp_lrs = sorted({r.hparams["lr"] for r in runs if r.method == "lp"})
    assert lp_lrs == [0.001, 0.01]
    assert {r.hparams["epochs"] for r in runs if r.method == "fft"} == {1}
    assert {r.rate for r in runs} == {0.2, 0.4, 0.6}
    assert {r.image_size for r in runs} == {32}
    assert sweep.launcher == {"name": "local", "jobs": 2}


def test_run_id_is_the_hash_of_the_resolved_config_in_any_sweep(tmp_path):
    a = load_sweep(write(tmp_path, TINY, "a.yaml")).runs()
    other = TINY.replace("seeds: [0]", "seeds: [0, 5]").replace("name: tiny", "name: other")
    b = load_sweep(write(tmp_path, other, "b.yaml")).runs()
    assert {r.run_id for r in a} < {r.run_id for r in b}
    direct = resolve_config(
        dataset="digits", noise="sym", rate=0.2, method="lp", noise_seed=1, seed=0, backbone="test_resnet",
        weights="random", image_size=32, hparams={"epochs": 2, "lr": 0.01},
    )
    assert direct.run_id in {r.run_id for r in a}


def test_duplicate_grid_points_collapse_to_one_run(tmp_path):
    text = TINY.replace("lr: [0.001, 0.01]", "lr: [0.001, 0.001]")
    assert len(load_sweep(write(tmp_path, text)).runs()) == 3 * 2 * 2


def test_toml_sweep_file(tmp_path):
    path = write(
        tmp_path,
        """\
        datasets = ["digits"]
        noise = [["sym", 0.2]]
        seeds = [0, 1]
        [[methods]]
        name = "lp"
        hparams = { epochs = 2 }
        [[backbones]]
        name = "test_resnet"
        weights = "random"
        image_size = 32
        """,
        "sweep.toml",
    )
    runs = load_sweep(path).runs()
    assert [r.seed for r in runs] == [0, 1]
    bad = write(tmp_path, 'datasets = ["digits"]\nnoise = [["sym", 0.2]]\nmethods = ["lp"]\nbogus = 1\n', "bad.toml")
    with pytest.raises(ConfigError, match=r"bogus"):
        load_sweep(bad)


def test_example_sweep_file_is_valid():
    sweep = load_sweep(REPO / "configs" / "examples" / "mini.yaml")
    runs = sweep.runs()
    assert runs and all(r.dataset == "digits" for r in runs)


def line_of(text: str, marker: str) -> int:
    """1-based number of the only line of `text` containing `marker`."""
    hits = [i for i, ln in enumerate(text.splitlines(), 1) if marker in ln]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


@pytest.mark.parametrize(
    ("old", "new", "marker", "words"),
    [
        ("seeds: [0]", "seeds: [0]\nsedes: [1]", "sedes", ["unknown key 'sedes'", "seeds"]),
        ("  - fft\n", "  - fft\n  - name: nosuchmethod\n", "nosuchmethod", ["unknown method 'nosuchmethod'", "lp"]),
        ("  - digits\n", "  - digits\n  - nosuchdata\n", "nosuchdata", ["unknown dataset 'nosuchdata'", "digits"]),
        ("  - [sym, 0.2]\n", "  - [sym, 0.2]\n  - [nosuchnoise, 0.2]\n", "nosuchnoise",
         ["unknown noise model 'nosuchnoise'"]),
        ("      epochs: 2\n", "      epochs: 2\n      lrr: 0.1\n", "lrr", ["no hyperparameter 'lrr'", "lr"]),
        ("  - [sym, 0.2]\n", "  - [sym, 40]\n", "[sym, 40]", ["outside [0, 1]"]),
        ("  jobs: 2\n", "  jobs: 2\n  partitoin: gpu\n", "partitoin", ["unknown key 'partitoin'", "partition"]),
        ("  fft: {epochs: 1}\n", "  fft: {epochs: 1}\n  coteaching: {epochs: 1}\n", "coteaching",
         ["not listed under `methods`"]),
        ("      lr: [0.001, 0.01]", "      lr: [0.001, -1.0]", "-1.0", ["lr=-1.0", "outside"]),
        ("  - {name: test_resnet, weights: random}", "  - {name: no_such_net, weights: random}", "no_such_net",
         ["unknown backbone 'no_such_net'"]),
        ("  jobs: 2\n", "  jobs: 2\n  time: soon\n", "soon", ["not a duration"]),
        ("  - fft\n", "  - {name: fft, hparams: {epochs: 1}, extra: 1}\n", "extra", ["unknown key 'extra'"]),
    ],
)
def test_bad_input_names_file_line_and_key(tmp_path, old, new, marker, words):
    assert old in TINY
    text = TINY.replace(old, new)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_sweep(path).runs()
    msg = str(err.value)
    assert f"{path}:{line_of(text, marker)}:" in msg, msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("seeds: [0]", "seeds: []", ["seeds", "empty"]),
        ("  - digits\n", "", ["datasets", "empty"]),
        ("      lr: [0.001, 0.01]", "      lr: []", ["lr", "empty"]),
        ("methods:", "method_list:", ["unknown key 'method_list'"]),
    ],
)
def test_empty_grid_is_an_error(tmp_path, old, new, words):
    text = TINY.replace(old, new)
    if old == "  - digits\n":
        text = text.replace("datasets:\n", "datasets: []\n")
    with pytest.raises(ConfigError) as err:
        load_sweep(write(tmp_path, text)).runs()
    for w in words:
        assert w in str(err.value)


def test_yaml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_sweep(write(tmp_path, "datasets: [digits\nnoise: x\n"))
    with pytest.raises(ConfigError, match="cannot read sweep file"):
        load_sweep(tmp_path / "absent.yaml")


def test_time_and_memory_parsing():
    assert parse_time_min(90) == 90
    assert parse_time_min("90") == 90
    assert parse_time_min("10:30") == 11  # SLURM: minutes:seconds, rounded up
    assert parse_time_min("2:00:00") == 120
    assert parse_time_min("1-0") == 24 * 60
    assert parse_time_min("1-2:30") == 26 * 60 + 30
    for bad in ("soon", "0", -5, "1:2:3:4", True):
        with pytest.raises(ConfigError):
            parse_time_min(bad)
    assert parse_mem_gb("16G") == 16
    assert parse_mem_gb("16gb") == 16
    assert parse_mem_gb("512M") == 0.5
    assert parse_mem_gb(8) == 8
    assert parse_mem_gb("16") == 16  # a number of GB, as docs/sweeps.md says (`--mem 16` arrives as a string)
    assert parse_mem_mb("3G") == 3072 and parse_mem_mb("4000M") == 4000 and parse_mem_mb("1.5G") == 1536
    for bad in ("lots", "0G", "-1", True, 0):
        with pytest.raises(ConfigError):
            parse_mem_gb(bad)


# ----------------------------------------------------------------------------- checks before anything is launched ---
def _runs(tmp_path):
    return load_sweep(write(tmp_path, TINY)).runs()[:2]


def test_slurm_without_sbatch_fails_before_writing(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="sbatch"):
        launch_sweep(_runs(tmp_path), out, "slurm", LauncherSettings(), echo=lambda s: None)
    assert not out.exists()


def test_unknown_launcher_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown launcher 'nope'.*debug, local, slurm"):
        launch_sweep(_runs(tmp_path), tmp_path / "out", "nope", echo=lambda s: None)


def test_output_dir_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    for dry in (False, True):
        with pytest.raises(ConfigError, match="writable --out|is a file"):
            launch_sweep(_runs(tmp_path), blocker / "out", "debug", dry_run=dry, echo=lambda s: None)
    with pytest.raises(ConfigError, match="is a file"):
        launch_sweep(_runs(tmp_path), blocker, "debug", echo=lambda s: None)
    if os.geteuid() != 0:  # root writes through permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        with pytest.raises(ConfigError, match="not writable"):
            launch_sweep(_runs(tmp_path), ro, "debug", echo=lambda s: None)


def test_run_directory_of_an_older_schema_stops_the_sweep(tmp_path):
    out = tmp_path / "out"
    old = out / "0123456789abcdef"
    write_json_atomic(old / "config.json", {"schema": SCHEMA - 1, "run_id": old.name, "method": "lp"})
    runs = _runs(tmp_path)
    with pytest.raises(ConfigError, match=rf"another lnlbench schema .*schema {SCHEMA}.*{old.name}"):
        launch_sweep(runs, out, "debug", echo=lambda s: None)
    assert sorted(p.name for p in out.iterdir()) == [old.name]  # nothing written, nothing run


def test_cli_dry_run_prints_plan_and_writes_nothing(tmp_path, capsys):
    path = write(tmp_path, TINY)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "18 runs: 0 done" in text and "18 to launch" in text
    assert text.count("would launch") == 18
    assert not out.exists()


def test_cli_bad_sweep_file_exits_2_with_line(tmp_path, capsys):
    text = TINY.replace("seeds: [0]", "seeds: [0]\nsedes: [1]")
    path = write(tmp_path, text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    assert f"{path}:{line_of(text, 'sedes')}:" in capsys.readouterr().err


def test_the_documented_full_example_is_a_valid_sweep_file(tmp_path):
    doc = (REPO / "docs" / "sweeps.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    sweep = load_sweep(write(tmp_path, example, "paper.yaml"))
    assert [d.name for d in sweep.datasets] == ["digits", "cifar10"]
    assert len(sweep.noise) == 6 and sweep.noise_seeds == [0, 1] and sweep.seeds == [0, 1, 2]
    assert [len(m.grid) for m in sweep.methods] == [1, 2, 1]
    assert sweep.launcher["name"] == "slurm" and sweep.launcher["sbatch"] == {"exclude": "node17", "mail-type": "END"}
    assert sweep.datasets[1].data_root == str(tmp_path / "../shared/data/cifar10")  # relative to the file


def test_local_path_options_do_not_change_the_run_id():
    """A companion dataset's path (e.g. WebVision's ilsvrc12_root) says where files are, not what the run computes."""
    from lnlbench.config import RunConfig

    base = dict(dataset="webvision", noise="real", rate=0.0, method="lp", hparams={}, image_size=224)
    here = RunConfig(**base, dataset_options={"classes": 50, "ilsvrc12_root": "/data/imagenet", "cache_dir": "/a"})
    there = RunConfig(**base, dataset_options={"classes": 50, "ilsvrc12_root": "../imagenet"})
    other = RunConfig(**base, dataset_options={"classes": 100, "ilsvrc12_root": "../imagenet"})
    assert here.run_id == there.run_id
    assert here.run_id != other.run_id
