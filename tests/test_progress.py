"""Progress bars: drawn on a terminal, never in a pipe, a file or a SLURM log (no carriage-return spam)."""

from __future__ import annotations

import io
import logging

import pytest
import torch

from lnlbench import engine, progress
from lnlbench.log import get_logger


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def info_level():
    logger = get_logger()
    before = logger.level
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(before)


def drawn(monkeypatch, stream: io.StringIO) -> str:
    monkeypatch.setattr("sys.stderr", stream)
    batches = list(engine.index_batches(torch.arange(10), 3, None, desc="train epoch 1/2"))
    assert [len(b) for b in batches] == [3, 3, 3, 1]  # the bar never changes what is iterated
    return stream.getvalue()


def test_a_terminal_gets_a_bar(monkeypatch, info_level):
    out = drawn(monkeypatch, FakeTerminal())
    assert "train epoch 1/2" in out and "\r" in out


def test_a_file_or_pipe_gets_no_bar(monkeypatch, info_level):
    assert drawn(monkeypatch, io.StringIO()) == ""


def test_quiet_or_switched_off_gets_no_bar(monkeypatch, info_level):
    info_level.setLevel(logging.WARNING)  # -q
    assert drawn(monkeypatch, FakeTerminal()) == ""
    info_level.setLevel(logging.INFO)
    monkeypatch.setenv("LNLBENCH_PROGRESS", "0")
    assert drawn(monkeypatch, FakeTerminal()) == ""


def test_without_a_bar_the_iterable_is_returned_as_is(monkeypatch, info_level):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    items = [1, 2, 3]
    assert progress.bar(items, desc="x") is items
