"""A method's training FLOPs, two ways: counted over a real run phase by phase (`torch.utils.flop_counter`), and
predicted from the method's structure (how many images each network forwards, and how many it also back-propagates,
times the backbone's forward FLOPs per image).

The prediction is the work a method must do; the count is the work it did. The efficiency benchmark
(`benchmarks/bench_method_efficiency.py`) divides a method's seconds by its FLOPs and compares that with `fft`'s;
`tests/test_flops.py` checks each prediction against the count of a real run on tiny data, so a method that did
needless network passes would fail there.

Conventions: FlopCounterMode counts matrix products and convolutions (2 FLOPs per multiply-add); a training pass
is the forward plus the backward, about 3 forwards (the backward computes the gradient of the input and of the
weights, each about one forward; the first layer's input gradient is skipped, so the count is slightly below 3).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import torch
from torch.utils.flop_counter import FlopCounterMode

from lnlbench import engine

TRAIN_PASS = 3.0  # forward + backward, in forwards (the usual convention; see the module docstring)


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of a convolution's backward: each gradient asked for (input, weight) costs the forward's multiply-adds.

    torch's own formula (torch.utils.flop_counter.conv_backward_flop, torch 2.x) ignores `groups`, so it counts a
    depthwise convolution's backward `groups` times too high: measured on EfficientNet-Lite0 at 32 px, a counted
    forward + backward of 42 forwards instead of about 3. The forward formula is right for grouped convolutions
    (the weight's shape carries c_in / groups), so this one reuses it.
    """
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode whose convolution backward counts grouped convolutions right (`_conv_backward_flops`)."""
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops})


def forward_flops_per_image(model: torch.nn.Module, size: int) -> float:
    """Forward FLOPs of one `size` x `size` image through `model` (counted on a batch of two, in eval mode)."""
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    x = torch.zeros(2, 3, size, size, device=param.device)
    with torch.no_grad(), flop_counter() as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() / 2


def backbone_flops(backbone: str, weights: str, num_classes: int, size: int) -> float:
    """Forward FLOPs per image of lnlbench's backbone `backbone` with a `num_classes` head at `size` px."""
    from lnlbench.models import create_backbone

    model, _ = create_backbone(backbone, weights, num_classes)
    return forward_flops_per_image(model, size)


@contextlib.contextmanager
def counted_phases() -> Iterator[dict[str, float]]:
    """Count FLOPs per timed phase (`PhaseTimer.phase`) of whatever runs inside: yields a dict phase -> FLOPs,
    filled as phases close, plus "total" (everything, phases or not) on exit. Nested phases count in both, as
    their seconds do."""
    counts: dict[str, float] = {}
    counter = flop_counter()
    original = engine.PhaseTimer.phase

    @contextlib.contextmanager
    def phase(timer: engine.PhaseTimer, name: str) -> Iterator[None]:
        start = counter.get_total_flops()
        try:
            with original(timer, name):
                yield
        finally:
            counts[name] = counts.get(name, 0.0) + counter.get_total_flops() - start

    with mock.patch.object(engine.PhaseTimer, "phase", phase), counter:
        yield counts
    counts["total"] = float(counter.get_total_flops())


# --- the pass models: network passes per phase, predicted from the method's structure and its record ------------


@dataclass
class Passes:
    """Images forwarded without a backward (`forward`) and with one (`train`), per phase, in backbone passes."""

    forward: dict[str, float] = field(default_factory=dict)
    train: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, forward: float = 0.0, train: float = 0.0) -> None:
        self.forward[phase] = self.forward.get(phase, 0.0) + forward
        self.train[phase] = self.train.get(phase, 0.0) + train

    def flops(self, per_image: float) -> dict[str, float]:
        """FLOPs per phase for a backbone of `per_image` forward FLOPs."""
        phases = set(self.forward) | set(self.train)
        return {p: per_image * (self.forward.get(p, 0.0) + TRAIN_PASS * self.train.get(p, 0.0)) for p in phases}


def _full_batches(n: int, batch_size: int, drop_last: bool) -> list[int]:
    """Sizes of the mini-batches `engine.index_batches` makes of n samples."""
    stop = n - (n % batch_size if drop_last else 0)
    return [min(batch_size, stop - s) for s in range(0, stop, batch_size)]


def _epochs(record: dict, phase: str) -> list[dict]:
    return [h for h in record["metrics"]["history"] if h["phase"] == phase]


def fft_passes(record: dict, n_train: int, n_test: int) -> Passes:
    """`fft` (training.finetune): per epoch, one training pass per image of the full batches, then the test set."""
    hp = record["hparams"]
    out = Passes()
    for _ in _epochs(record, "finetune"):
        b = int(hp["batch_size"])
        out.add("finetune", train=sum(_full_batches(n_train, b, n_train > b)), forward=n_test)
    return out


def coteaching_passes(record: dict, n_train: int, n_test: int) -> Passes:
    """Co-teaching: per step each network ranks a batch (a forward, no backward) and trains on the small-loss part
    its peer chose; with a shared batch, each trains on its whole batch's forward (the backward runs through it)."""
    from lnlbench.sample_selection import small_loss_count

    hp = record["hparams"]
    b = int(hp["batch_size"])
    shared = hp["data_order"] == "shared"
    out = Passes()
    for h in _epochs(record, "train"):
        for size in _full_batches(n_train, b, n_train > b):
            keep = small_loss_count(size, h["forget_rate"])
            if shared:
                out.add("train", train=2 * size)
            else:
                out.add("train", forward=2 * size, train=2 * keep)
        out.add("train", forward=2 * n_test)  # each network on the test set, every epoch
    return out


def dividemix_passes(record: dict, n_train: int, n_test: int) -> Passes:
    """DivideMix. Warm-up: each network trains on every image, plus the loss forwards of its separation check when
    the warm-up may end; the ensemble (both networks) on the test set. After it, per epoch: each network forwards
    the training set (divide); per labelled batch of b, 4 b co-guessing forwards (two networks, two views of the
    unlabelled batch), 2 b co-refining forwards and one training pass over the 4 b mixed images; the ensemble tests."""
    hp = record["hparams"]
    diag = record["metrics"]["diagnostics"]
    b = int(hp["batch_size"])
    out = Passes()
    _warmup_passes(out, record, n_train, n_test)
    for sizes in diag["labeled_sizes"]:
        out.add("divide", forward=2 * n_train)
        for net in ("net1", "net2"):
            labeled, unlabeled = sizes[net]["labeled"], sizes[net]["unlabeled"]
            batches = _full_batches(labeled, b, False)
            if batches and batches[-1] < 2:
                batches.pop()
            for size in batches:
                u = size if unlabeled else 0
                out.add("train", forward=4 * u + 2 * size, train=2 * size + 2 * u)
        out.add("train", forward=2 * n_test)
    return out


def turn_passes(record: dict, n_train: int, n_test: int) -> Passes:
    """TURN: one feature pass over train and test (step 1 then trains a head on them: no backbone pass); step 3
    as `fft` on the selected subset."""
    hp = record["hparams"]
    diag = record["metrics"]["diagnostics"]
    out = Passes()
    out.add("features", forward=n_train + n_test)
    subset = int(diag["finetune_subset_size"])
    b = int(hp["ft_batch_size"])
    for _ in _epochs(record, "finetune"):
        out.add("finetune", train=sum(_full_batches(subset, b, subset > b)), forward=n_test)
    return out


def lp_passes(record: dict, n_train: int, n_test: int) -> Passes:
    """`lp`: one feature pass over train and test; the probe trains a head only."""
    out = Passes()
    out.add("features", forward=n_train + n_test)
    return out


def jocor_passes(record: dict, n_train: int, n_test: int) -> Passes:
    """JoCoR: per epoch, both networks train on every full batch (the joint loss back-propagates through both; the
    small-loss choice only masks it), then each network is tested."""
    b = int(record["hparams"]["batch_size"])
    out = Passes()
    for _ in _epochs(record, "train"):
        out.add("train", train=2 * sum(_full_batches(n_train, b, n_train > b)), forward=2 * n_test)
    return out


def _warmup_passes(out: Passes, record: dict, n_train: int, n_test: int) -> None:
    """DivideMix's warm-up (shared by UNICON): each network trains on every image, plus the separation check's loss
    forwards on the epochs it ran; the ensemble (both networks) on the test set."""
    checked = {c["epoch"] for c in record["metrics"]["diagnostics"]["warmup_checks"]}
    for h in _epochs(record, "warmup"):
        out.add("warmup", train=2 * n_train, forward=2 * n_test + (2 * n_train if h["epoch"] in checked else 0))


def unicon_passes(record: dict, n_train: int, n_test: int) -> Passes:
    """UNICON. Warm-up as DivideMix. Then, per network and epoch: both networks forward the training set (the
    divergences); per full labelled batch of b with an unlabelled batch of u, 4 u co-guessing and 2 b refining
    forwards, the contrastive pair (2 u training passes through the projection head, when u >= 2) and one training
    pass over the 2 b + 2 u mixed strong views. The ensemble's per-epoch test runs outside the method's phases."""
    b = int(record["hparams"]["batch_size"])
    out = Passes()
    _warmup_passes(out, record, n_train, n_test)
    for sel in record["metrics"]["diagnostics"]["selections"]:
        out.add("select", forward=2 * n_train)
        u = sel["unlabeled_batch"] if sel["unlabeled"] else 0
        for _ in _full_batches(sel["labeled"], b, True):
            out.add("train", forward=4 * u + 2 * b, train=2 * b + 2 * u + (2 * u if u >= 2 else 0))
    return out


PASS_MODELS: dict[str, Callable[[dict, int, int], Passes]] = {
    "fft": fft_passes, "coteaching": coteaching_passes, "dividemix": dividemix_passes, "turn": turn_passes,
    "lp": lp_passes, "jocor": jocor_passes, "unicon": unicon_passes,
    # GCE, SCE and ELR run `fft`'s loop (training.finetune) with another per-sample loss: the same passes
    "gce": fft_passes, "sce": fft_passes, "elr": fft_passes,
}

# Phases that train a head on cached features only: their FLOPs are the head's (counted, not predicted by the pass
# model, which counts backbone passes).
HEAD_ONLY_PHASES = frozenset({"linear_probe", "select", "estimate"})


def predicted_flops(record: dict, per_image: float) -> dict[str, float] | None:
    """FLOPs per phase the method's pass model predicts for the run of `record` (its history, diagnostics and data
    sizes), for a backbone of `per_image` forward FLOPs; None for a method without a pass model."""
    model = PASS_MODELS.get(record["method"])
    if model is None:
        return None
    passes = model(record, int(record["n_train"]), int(record["n_test"]))
    return {p: f for p, f in passes.flops(per_image).items() if f > 0}


def method_flops(counted: dict[str, float]) -> float:
    """FLOPs of the method's own phases (data loading and the final test are the harness's)."""
    return sum(v for k, v in counted.items() if k not in engine.HARNESS_PHASES and k != "total")


def relative_gap(a: float, b: float) -> float:
    """|a - b| / max(|b|, tiny)."""
    return abs(a - b) / max(abs(b), math.ulp(1.0))


def describe(value: float) -> str:
    """FLOPs in M, G or T."""
    if value >= 1e12:
        return f"{value / 1e12:.2f} TFLOP"
    return f"{value / 1e9:.1f} GFLOP" if value >= 1e9 else f"{value / 1e6:.1f} MFLOP"


__all__: list[Any] = [
    "TRAIN_PASS", "forward_flops_per_image", "backbone_flops", "counted_phases", "Passes", "PASS_MODELS",
    "predicted_flops", "method_flops", "HEAD_ONLY_PHASES", "relative_gap", "describe",
]
