"""Suite-wide settings: one torch thread per test process (CI has 2 cores and several tests start subprocesses)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread in every test, restored after it: tiny tensors, a shared 2-core machine, and the same
    reduction order in runs a test compares (tests that set a thread count themselves cannot leak it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
