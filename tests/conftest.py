"""Suite-wide settings: one torch thread per test process (CI has 2 cores and several tests start subprocesses)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
