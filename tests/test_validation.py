"""One validation pass before anything is written (issue 14, item 3): every configuration problem of `run`, `sweep`
and `demo` is reported at once, with exit 2, one message, and no file or directory left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lnlbench.cli import main

RUN = ["run", "--dataset", "digits", "--noise", "sym", "--rate", "0.2", "--method", "lp", "--image-size", "16"]
NO_GPU = "cuda:99" if torch.cuda.is_available() else "cuda"


def unwritable(tmp_path: Path) -> str:
    """A cache directory that cannot be made: its parent is a file (works as root too, unlike chmod)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder would go")
    return str(blocker / "cache")


def refused(capsys, tmp_path: Path, argv: list[str]) -> str:
    """Run the CLI; it must exit 2 having written nothing under tmp_path/out; return its stderr."""
    before = sorted(p for p in tmp_path.rglob("*"))
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert not (tmp_path / "out").exists(), "the output directory was created"
    assert sorted(p for p in tmp_path.rglob("*")) == before, "files were written"
    assert err.count("error:") == 1, f"printed more than once:\n{err}"
    return err


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--backbone", "resnet18"], "packaged weights exist only for tf_efficientnet_lite0"),
        (["--device", NO_GPU], f"device '{NO_GPU}' asked for"),
        (["--option", "nosuch=1"], "has no option 'nosuch'"),
        (["--set", "epochs=2.5"], "epochs=2.5 must be a whole number"),
        (["--image-size", "4"], "pass --image-size 8 or more"),
    ],
)
def test_each_configuration_error_of_run_exits_2_before_writing(capsys, tmp_path, extra, expected):
    err = refused(capsys, tmp_path, [*RUN, *extra, "--out", str(tmp_path / "out")])
    assert expected in err


def test_an_unwritable_cache_directory_is_refused_before_writing(capsys, tmp_path):
    err = refused(capsys, tmp_path, [*RUN, "--cache-dir", unwritable(tmp_path), "--out", str(tmp_path / "out")])
    assert "cache directory" in err and "is a file, not a directory; pass another --cache-dir" in err
    if Path("/proc/self").exists():  # a file system nothing can be created in, even by root
        err = refused(capsys, tmp_path, [*RUN, "--cache-dir", "/proc/lnlbench-cache", "--out", str(tmp_path / "out")])
        assert "cannot be written" in err and "pass a writable --cache-dir" in err


def test_every_problem_of_a_run_is_reported_in_one_message(capsys, tmp_path):
    argv = [*RUN, "--backbone", "resnet18", "--set", "epochs=2.5", "--set", "lr=-1", "--device", NO_GPU,
            "--cache-dir", unwritable(tmp_path), "--out", str(tmp_path / "out")]
    err = refused(capsys, tmp_path, argv)
    assert "5 configuration problems" in err
    for part in ("packaged weights", "epochs=2.5", "lr=-1", NO_GPU, "cache directory"):
        assert part in err, part


def test_name_errors_are_reported_together(capsys, tmp_path):
    argv = ["run", "--dataset", "digits", "--noise", "gauss", "--rate", "3", "--method", "lp", "--option", "x=1",
            "--out", str(tmp_path / "out")]
    err = refused(capsys, tmp_path, argv)
    assert "3 configuration problems" in err
    assert "unknown noise model 'gauss'" in err and "outside [0, 1]" in err and "no option 'x'" in err


SIX_PROBLEMS = """\
name: bad
datasets:
  - name: nosuchdata
noise:
  - [sym, 1.5]
  - [gauss, 0.2]
methods: [lp, mixup]
backbones:
  - name: tf_efficientnet_lite0
    image_size: 4
hparams:
  lp: {lr: -1}
"""


def test_a_sweep_file_with_six_problems_reports_all_six_in_file_order(capsys, tmp_path):
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(SIX_PROBLEMS)
    err = refused(capsys, tmp_path, ["sweep", str(sweep), "--out", str(tmp_path / "out")])
    assert "6 configuration problems" in err
    lines = [int(part.split(":")[1]) for part in err.splitlines() if part.strip().startswith("- ")]
    assert lines == [3, 5, 6, 7, 10, 12]


def test_a_run_error_is_printed_once(capsys, tmp_path, monkeypatch):
    """An error while running (here: the method's fit raising) is said once, then where the traceback is."""
    from lnlbench.errors import TrainingError
    from lnlbench_plugins.lp import LinearProbe

    def broken(self, ctx):
        raise TrainingError("loss is NaN at epoch 1; lower lr")

    monkeypatch.setattr(LinearProbe, "fit", broken)
    code = main([*RUN, "--set", "epochs=1", "--weights", "random", "--backbone", "test_efficientnet",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("loss is NaN at epoch 1") == 1, err
    assert "traceback.txt" in err and os.path.exists(next((tmp_path / "out").glob("*/result.json")))
