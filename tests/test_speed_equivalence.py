"""The speed options change nothing but speed: memory format, feature caching, and augmentation on the GPU."""

from __future__ import annotations

import json

import pytest
import torch

from lnlbench.data.transforms import augment
from lnlbench.models import create_backbone
from lnlbench.harness import execute_run, resolve_config


def test_channels_last_gives_the_same_predictions_on_cpu():
    torch.manual_seed(0)
    model, _ = create_backbone("tf_efficientnet_lite0", "packaged", num_classes=10)
    model.eval()
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        plain = model(x)
        model = model.to(memory_format=torch.channels_last)
        fast = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(plain, fast, atol=1e-4, rtol=1e-4)
    assert plain.abs().max() > 0  # not trivially equal


def _lp_record(tmp_path, cache_dir, name):
    config = resolve_config(
        dataset="digits", noise="sym", rate=0.3, method="lp", image_size=16, hparams={"epochs": 5}
    )
    out = tmp_path / name
    return execute_run(config, out, cache_dir=cache_dir, verbose=False)


def test_cached_feature_lp_equals_uncached(tmp_path):
    cache = tmp_path / "cache"
    fresh = _lp_record(tmp_path, cache, "fresh")  # computes the features and stores them
    files = sorted((cache / "features").glob("*.pt"))
    assert len(files) == 2  # train and test
    stamps = [f.stat().st_mtime_ns for f in files]
    cached = _lp_record(tmp_path, cache, "cached")  # reads them back
    assert [f.stat().st_mtime_ns for f in files] == stamps  # read, not recomputed and rewritten
    assert fresh["status"] == cached["status"] == "done"
    assert cached["metrics"]["test_acc"] == fresh["metrics"]["test_acc"]
    assert json.dumps(cached["metrics"]["history"]) == json.dumps(fresh["metrics"]["history"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: GPU augmentation is checked on GPUs")
def test_gpu_augmentation_matches_cpu_in_distribution():
    images = torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8)
    cpu = augment(images, torch.Generator().manual_seed(0))
    gpu = augment(images.cuda(), torch.Generator().manual_seed(0)).cpu()
    assert cpu.shape == gpu.shape == images.shape and gpu.dtype == torch.uint8
    assert torch.equal(cpu, gpu)  # same generator on the CPU: the same crops and flips, wherever applied
    flipped = sum(torch.equal(gpu[i], images[i].flip(-1)) for i in range(64))
    assert 0 < flipped < 64
