"""lnlbench.flops: the pass models predict what FlopCounterMode counts in real runs, and grouped convolutions'
backwards are counted once, not `groups` times."""

from __future__ import annotations

import pytest
import torch

from lnlbench import flops
from lnlbench.data.base import DATASETS, Dataset, Split, load_dataset, register_dataset
from lnlbench.harness import execute_run, resolve_config

TINY = "flops-tiny"
N_TRAIN, N_TEST, SIZE = 48, 16, 16


def _tiny(data_root=None, download: bool = False) -> Dataset:
    """The first 48 / 16 digits: enough for three batches of 16 and a test set."""
    full = load_dataset("digits")
    return Dataset(name=TINY, classes=full.classes,
                   train=Split(images=full.train.images[:N_TRAIN], labels=full.train.labels[:N_TRAIN]),
                   test=Split(images=full.test.images[:N_TEST], labels=full.test.labels[:N_TEST]), source="digits")


if TINY not in DATASETS:
    register_dataset(TINY, "the first digits, for FLOP counts", needs_data_root=False)(_tiny)

RUNS = {
    "fft": {"epochs": 1, "batch_size": 16},
    # two epochs with T_k = 1: the second epoch forgets 40% of each batch, so the trained part is smaller
    "coteaching": {"epochs": 2, "batch_size": 16, "num_gradual": 1},
    "coteaching-shared": {"epochs": 1, "batch_size": 16, "data_order": "shared"},
    "dividemix": {"epochs": 2, "warmup_epochs": 1, "batch_size": 8},
    "turn": {"ft_epochs": 1, "ft_batch_size": 16, "lp_lr": 0.01, "lp_weight_decay": 0.0},
    "lp": {"epochs": 1, "lr": 0.01, "weight_decay": 0.0},
    "gce": {"epochs": 1, "batch_size": 16},
    "sce": {"epochs": 1, "batch_size": 16},
    "elr": {"epochs": 1, "batch_size": 16},
    "jocor": {"epochs": 2, "batch_size": 16, "num_gradual": 1},
    # batch 8 of 48 images: some full labelled batches, with an unlabelled batch of at least 2 (the contrastive pair)
    "unicon": {"epochs": 2, "warmup_epochs": 1, "batch_size": 8},
}


_RUNS_DONE: dict[str, tuple[dict, dict]] = {}


def _counted_run(tmp_path, name: str) -> tuple[dict, dict]:
    """The record of a run of `RUNS[name]` and its FLOPs per phase (each run once per session)."""
    if name in _RUNS_DONE:
        return _RUNS_DONE[name]
    method = name.split("-")[0]
    config = resolve_config(dataset=TINY, noise="sym", rate=0.4, method=method, image_size=SIZE, hparams=RUNS[name],
                            backbone="tf_efficientnet_lite0", weights="packaged")
    with flops.counted_phases() as counts:
        record = execute_run(config, tmp_path / name, cache_dir=tmp_path / f"cache-{name}", device="cpu",
                             verbose=False)
    assert record["status"] == "done", record.get("error")
    _RUNS_DONE[name] = record, counts
    return record, counts


@pytest.fixture(scope="module")
def per_image() -> float:
    return flops.backbone_flops("tf_efficientnet_lite0", "packaged", 10, SIZE)


@pytest.mark.parametrize("name", list(RUNS))
def test_pass_model_predicts_the_counted_flops(tmp_path, per_image, name):
    record, counts = _counted_run(tmp_path, name)
    predicted = flops.predicted_flops(record, per_image)
    assert predicted, "a built-in method without a pass model"
    for phase, value in predicted.items():
        # the backward skips the first layer's input gradient, so a count is a little under the 3-forward rule
        assert counts[phase] == pytest.approx(value, rel=0.02), (phase, counts[phase] / per_image, value / per_image)
    backbone_free = set(counts) - set(predicted) - {"total", "data"}
    assert backbone_free <= flops.HEAD_ONLY_PHASES | {"test"}, backbone_free
    for phase in backbone_free - {"test"}:  # a head on cached features: far below one backbone pass per image
        assert counts[phase] < 0.5 * per_image * N_TRAIN, phase


def test_turn_trains_on_its_selection_only(tmp_path, per_image):
    """The prediction follows the subset TURN selected; a model counting every image would be off by the rest."""
    record, counts = _counted_run(tmp_path, "turn")
    subset = record["metrics"]["diagnostics"]["finetune_subset_size"]
    assert 0 < subset < N_TRAIN
    wrong = dict(record, metrics=dict(record["metrics"], diagnostics=dict(record["metrics"]["diagnostics"],
                                                                          finetune_subset_size=N_TRAIN)))
    assert flops.predicted_flops(wrong, per_image)["finetune"] > 1.05 * counts["finetune"]


def test_grouped_convolution_backward_counts_each_gradient_once():
    conv = torch.nn.Conv2d(32, 32, 3, groups=32, padding=1)
    x = torch.zeros(2, 32, 8, 8, requires_grad=True)
    with flops.flop_counter() as forward:
        conv(x)
    with flops.flop_counter() as both:
        conv(x).sum().backward()
    assert both.get_total_flops() == 3 * forward.get_total_flops()
    x.requires_grad_(False)  # the weight's gradient only
    with flops.flop_counter() as weight_only:
        conv(x).sum().backward()
    assert weight_only.get_total_flops() == 2 * forward.get_total_flops()


def test_method_flops_leave_out_the_harness_phases():
    assert flops.method_flops({"data": 5.0, "test": 7.0, "total": 100.0, "train": 3.0, "divide": 4.0}) == 7.0


def test_methods_without_a_pass_model_are_named_as_such(per_image):
    assert flops.predicted_flops({"method": "no-such-method"}, per_image) is None
