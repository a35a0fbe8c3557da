"""Real-noise datasets: the harness uses the shipped labels and scores selections only where the truth is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lnlbench.data.base import Dataset, Split
from lnlbench.errors import ConfigError
from lnlbench.harness import selection_scorer, shipped_noisy_labels
from lnlbench.config import RunConfig


def _config() -> RunConfig:
    return RunConfig(dataset="toy", noise="real", rate=0.0, method="lp", hparams={}, image_size=32)


def _dataset(clean: list[int], noisy: list[int] | None) -> Dataset:
    images = torch.zeros(len(clean), 3, 4, 4, dtype=torch.uint8)
    split = Split(images, torch.tensor(clean))
    return Dataset(
        name="toy", classes=["a", "b", "c"], train=split, test=Split(images[:1], torch.tensor([0])),
        noisy_train_labels=None if noisy is None else torch.tensor(noisy),
    )


def test_real_labels_with_partly_known_truth():
    data = _dataset([0, 1, -1, -1, 2, 2], [0, 2, 1, 1, 2, 0])
    noisy = shipped_noisy_labels(_config(), data)
    assert noisy.labels.tolist() == [0, 2, 1, 1, 2, 0]  # every shipped label kept, unknown truth included
    assert noisy.realized_rate == pytest.approx(2 / 4)  # over the four samples whose clean label is known
    tm = np.asarray(noisy.transition_matrix)
    assert tm[1, 2] == 1.0 and tm[2, 0] == 0.5


def test_real_labels_without_truth_have_no_rate():
    noisy = shipped_noisy_labels(_config(), _dataset([-1, -1, -1], [0, 1, 2]))
    assert noisy.realized_rate is None and noisy.transition_matrix is None


def test_real_noise_needs_shipped_labels():
    with pytest.raises(ConfigError, match="ships no noisy labels"):
        shipped_noisy_labels(_config(), _dataset([0, 1], None))


def test_selection_scored_only_where_truth_is_known():
    clean_known = torch.tensor([True, True, False, False, True])
    clean_mask = torch.tensor([True, False, False, False, True])
    score = selection_scorer(clean_mask, clean_known)
    result = score(torch.tensor([True, True, True, True, False]))
    assert result["size"] == 4 and result["scored_on"] == 2
    assert result["precision"] == 0.5 and result["recall"] == 0.5


def test_clothing1m_run_end_to_end_on_real_layout(tmp_path):
    """A tiny Clothing1M copy in its distributed layout trains through the harness with its shipped labels."""
    from test_clothing1m import build_clothing1m

    from lnlbench.harness import execute_run, resolve_config

    root = tmp_path / "clothing1m"
    build_clothing1m(root, per_class=3)
    config = resolve_config(
        dataset="clothing1m", data_root=str(root), noise="real", rate=0.0, method="lp", image_size=16,
        backbone="test_efficientnet", weights="random", hparams={"epochs": 2},
        dataset_options={"image_size": 32, "use_cache": False},
    )
    record = execute_run(config, tmp_path / "out", cache_dir=tmp_path / "cache", verbose=False)
    assert record["status"] == "done", record.get("error")
    assert record["num_classes"] == 14
    assert record["noise"]["model"] == "real" and record["noise"]["clean_labels_known"] >= 0
    assert 0.0 <= record["metrics"]["test_acc"] <= 1.0
    assert "val" in record["metrics"].get("extra_test_acc", {})


def test_clothing1m_balanced_epochs_draw_a_fixed_number_of_samples(tmp_path):
    """`samples_per_epoch` (DivideMix's Clothing1M protocol) trains each epoch on a fresh class-balanced draw."""
    from test_clothing1m import build_clothing1m

    from lnlbench.harness import execute_run, resolve_config

    root = tmp_path / "clothing1m"
    build_clothing1m(root, per_class=3)
    config = resolve_config(
        dataset="clothing1m", data_root=str(root), noise="real", rate=0.0, method="fft", image_size=16,
        backbone="test_efficientnet", weights="random", hparams={"epochs": 2, "batch_size": 4},
        dataset_options={"image_size": 32, "use_cache": False, "samples_per_epoch": 14},
    )
    record = execute_run(config, tmp_path / "out", cache_dir=tmp_path / "cache", verbose=False)
    assert record["status"] == "done", record.get("error")
    assert record["cost"]["images_seen"] == 2 * 12  # 14 drawn per epoch, batches of 4 with the last partial dropped
