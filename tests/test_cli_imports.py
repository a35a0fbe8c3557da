"""A fast command line: help, listings of datasets and noise models, and configuration errors import neither torch
nor timm (each takes seconds to import, over a minute on a loaded machine)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import contextlib, io, json, sys
from lnlbench.cli import main
args = json.loads(sys.argv[1])
code = None
if args is not None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = main(args)
        except SystemExit as exit:
            code = exit.code
print(json.dumps({"code": code, "heavy": sorted(m for m in ("torch", "timm", "torchvision") if m in sys.modules)}))
"""


def imported_by(args: list[str] | None) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args, code",
    [
        (None, None),  # import lnlbench.cli
        (["--help"], 0),
        (["run", "--help"], 0),
        (["datasets"], 0),
        (["noise-models"], 0),
        (["run", "--dataset", "nosuch", "--noise", "sym", "--rate", "0.2", "--method", "lp", "--out", "x"], 2),
        (["run", "--dataset", "digits", "--noise", "nosuch", "--rate", "0.2", "--method", "lp", "--out", "x"], 2),
        (["run", "--dataset", "digits", "--noise", "sym", "--rate", "1.5", "--method", "lp", "--out", "x"], 2),
    ],
)
def test_light_commands_import_neither_torch_nor_timm(args, code):
    found = imported_by(args)
    assert found["code"] == code
    assert found["heavy"] == [], f"{args}: imported {found['heavy']}"
