"""Host-to-device copies that do not make the host wait for the GPU."""

from __future__ import annotations

import torch


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t` on `device`. A CPU tensor bound for a GPU is copied from pinned memory without blocking: a blocking copy
    waits until all the work already queued on the device is done, which stalls the host once per step."""
    if t.device.type == "cpu" and device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
