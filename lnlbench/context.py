"""The context the harness hands to a method: data, noisy labels, models, timers, checkpoints, diagnostics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lnlbench import engine, verified
from lnlbench.engine import ImageBatcher, PhaseTimer, Precision
from lnlbench.log import get_logger
from lnlbench.models import BackboneSpec, create_backbone, split_backbone_head
from lnlbench.config import RunConfig


LOG = get_logger("method")


@dataclass
class MethodContext:
    """Everything a method may use. It never holds the clean training labels.

    Methods train on `noisy_labels`, call `evaluate` to log test accuracy per epoch, `record_selection` to report
    which samples they believe clean (the harness scores it against the truth), and wrap epoch loops in `epochs` so
    an interrupted run resumes where it stopped.
    """

    config: RunConfig
    hparams: dict[str, Any]
    num_classes: int
    noisy_labels: torch.Tensor
    train: ImageBatcher
    test: ImageBatcher
    test_labels: torch.Tensor
    spec: BackboneSpec
    device: torch.device
    precision: Precision
    timer: PhaseTimer
    checkpoint_dir: Path
    cache_dir: Path | None
    feature_key: dict[str, Any]
    score_selection: Callable[[torch.Tensor], dict[str, float]]
    verbose: bool = True
    samples_per_epoch: int | None = None  # a class-balanced draw per epoch instead of a full pass (Clothing1M)
    history: list[dict[str, Any]] = field(default_factory=list)
    selections: dict[str, Any] = field(default_factory=dict)
    images_seen: int = 0  # training images (augmented views included) the method has trained on
    images_by_phase: dict[str, int] = field(default_factory=dict)  # the same, per `phase` (innermost)
    # per open phase, innermost last: [name, images_seen at entry, what phases nested in it counted]
    _open_phases: list[list] = field(default_factory=list, repr=False)
    feature_costs: dict[str, dict] = field(default_factory=dict)  # split -> charged extraction cost

    # -- identity -------------------------------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def noise_model(self) -> str:
        return self.config.noise

    @property
    def declared_noise_rate(self) -> float:
        """The rate the user asked for (methods such as co-teaching may use it as their prior)."""
        return self.config.rate

    def epoch_indices(self, indices: torch.Tensor, labels: torch.Tensor, phase: str, epoch: int) -> torch.Tensor:
        """The samples of one epoch: all of `indices`, or a class-balanced draw when the protocol asks for one."""
        if self.samples_per_epoch is None:
            return indices
        from lnlbench.sampling import balanced_epoch_indices

        picks = balanced_epoch_indices(labels[indices], self.samples_per_epoch, self.rng(phase, "balanced", epoch),
                                       self.num_classes)
        return indices[picks]

    def rng(self, *names: object) -> torch.Generator:
        """A generator derived from the run seed and `names`."""
        return engine.generator(self.seed, *names)

    # -- models and features --------------------------------------------------------------------------------------
    def make_model(self, index: int = 0) -> torch.nn.Module:
        """A fresh pre-trained backbone with a new head (head initialised from the seed and `index`), on device."""
        torch.manual_seed(engine.derive_seed(self.seed, "model", index))
        model, _ = create_backbone(self.config.backbone, self.config.weights, self.num_classes)
        head = model.get_classifier()
        if isinstance(head, torch.nn.Linear):
            # A head near zero: timm's init gives logits of size ~10 on pre-trained features, whose large first
            # gradients disturb the backbone; a small normal init (std 0.01) starts every method from ~uniform.
            torch.nn.init.normal_(head.weight, std=0.01)
            torch.nn.init.zeros_(head.bias)
        model = model.to(self.device)
        if self.precision.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.precision.compile:
            # In place (nn.Module.compile): calls go through torch.compile while the module, its attributes and its
            # state_dict keys stay as they are, so checkpoints of compiled and eager runs are interchangeable.
            model.compile()
        return model

    def features(self, split: str) -> torch.Tensor:
        """Pre-logit features of the pre-trained backbone for `split` ("train" or "test"), cached on disk."""
        batcher = self.train if split == "train" else self.test

        def compute() -> torch.Tensor:
            model = self.make_model(index=-1).eval()  # batch-norm running statistics, no dropout
            feature_fn, _ = split_backbone_head(model)
            return engine.extract_features(feature_fn, batcher, self.precision)

        key = dict(self.feature_key, split=split, size=self.train.size)
        feats, cost = engine.cached_features(self.cache_dir, key, compute, engine.device_name(self.device))
        if not cost["measured_now"]:
            # Charged by work, not by luck: whichever run filled the cache, every reader pays the extraction.
            self.timer.charge(cost["seconds"], f"feature cache ({split}, extracted on {cost['device']})",
                              replaces_s=cost["read_s"])
        else:
            self.timer.charge(cost["seconds"], f"features ({split}) extracted now", replaces_s=cost["read_s"])
        self.feature_costs[split] = {k: cost[k] for k in ("seconds", "measured_now", "device")}
        return feats

    # -- evaluation and diagnostics -------------------------------------------------------------------------------
    def evaluate(self, predict: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """Clean test accuracy of `predict` (a model mapping preprocessed batches to logits)."""
        logits = engine.predict_logits(predict, self.test, self.precision)
        return engine.accuracy(logits, self.test_labels)

    def log_epoch(self, phase: str, epoch: int, **metrics: float) -> None:
        """Record per-epoch metrics (e.g. test_acc, train_loss) in the history and print a progress line."""
        entry = {"phase": phase, "epoch": epoch, **{k: float(v) for k, v in metrics.items()}}
        self.history.append(entry)
        if self.verbose:
            shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            LOG.info(f"  [{self.config.method}] {phase} epoch {epoch + 1}: {shown}")

    def record_selection(self, mask: torch.Tensor, epoch: int | None = None, network: str = "net1") -> dict:
        """Report the samples believed clean; returns (and records) size, precision and recall against the truth."""
        mask = mask.detach().to("cpu", torch.bool)
        scores = self.score_selection(mask)
        entry = self.selections.setdefault(network, {"by_epoch": []})
        if epoch is None:
            entry["final"] = scores
        else:
            entry["by_epoch"].append({"epoch": epoch, **scores})
            entry["final"] = scores
        return scores

    # -- resumable loops ------------------------------------------------------------------------------------------
    def epochs(self, phase: str, n: int, state: dict[str, Any]) -> Iterator[int]:
        """Yield epoch indices of `phase`, checkpointing `state` after each and resuming from the last checkpoint.

        `state` maps names to objects with `state_dict`/`load_state_dict` (models, optimisers, schedulers) or to
        plain dicts (updated in place). The global RNG is reseeded per epoch, so a resumed run is exact.
        """
        path = self.checkpoint_dir / f"{phase}.pt"
        start = 0
        ck = None
        if path.exists() or verified.previous_path(path).exists():  # verified; a corrupt one is moved aside
            ck, _ = verified.load_healing(path, f"[{self.config.method}] checkpoint", check=_check_checkpoint)
            if ck is None:
                verified.say(f"[{self.config.method}] {phase}: no usable checkpoint left; starting over at epoch 1")
        if ck is not None:
            for name, obj in state.items():
                saved = ck["state"][name]
                if isinstance(obj, dict):
                    obj.clear()
                    obj.update(saved)
                else:
                    obj.load_state_dict(saved)
            self.history = ck["history"]
            self.selections = ck["selections"]
            self.images_seen = ck["images_seen"]
            if "images_by_phase" in ck:  # checkpoints before this field: the open phases count the restored images
                self._restore_images_by_phase(ck["images_by_phase"])
            start = ck["epoch"] + 1
            self._charge_earlier_attempts(phase, ck.get("phase_seconds") or {})
            if self.verbose and start < n:
                LOG.info(f"  [{self.config.method}] {phase}: resuming at epoch {start + 1}")
        for epoch in range(start, n):
            engine.seed_epoch(self.seed, phase, epoch)
            yield epoch
            snapshot = {
                name: (dict(obj) if isinstance(obj, dict) else obj.state_dict()) for name, obj in state.items()
            }
            engine.atomic_torch_save(
                {
                    "epoch": epoch,
                    "state": snapshot,
                    "history": self.history,
                    "selections": self.selections,
                    "images_seen": self.images_seen,
                    "images_by_phase": self._images_by_phase_so_far(),
                    "phase_seconds": self.timer.charged(include_open=True),
                    "saved_at": time.time(),
                },
                path,
            )

    def _charge_earlier_attempts(self, loop: str, saved: dict[str, float]) -> None:
        """On resume: charge each method phase the time an earlier attempt had spent in it beyond what this attempt
        has measured so far, so a resumed run costs what its finished epochs took (the harness's own phases, data
        loading and testing, are measured again in every attempt and not charged twice)."""
        now = self.timer.charged(include_open=True)
        for name, seconds in saved.items():
            extra = float(seconds) - now.get(name, 0.0)
            if name not in engine.HARNESS_PHASES and extra > 0:
                self.timer.charge(extra, f"earlier attempt (resumed {loop} from its checkpoint)", phase=name)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a named phase into `cost.phases` and count the training images it added to `images_seen` (less
        what phases nested in it counted) into `cost.images_by_phase`, so images/s is per phase."""
        self._open_phases.append([name, self.images_seen, 0])
        try:
            with self.timer.phase(name):
                yield
        finally:
            _, start, nested = self._open_phases.pop()
            grown = self.images_seen - start
            if grown - nested:
                self.images_by_phase[name] = self.images_by_phase.get(name, 0) + grown - nested
            if self._open_phases:
                self._open_phases[-1][2] += grown

    def _images_by_phase_so_far(self) -> dict[str, int]:
        """`images_by_phase` as if the open phases closed now (what a checkpoint saves)."""
        out = dict(self.images_by_phase)
        for level, (name, start, nested) in enumerate(self._open_phases):
            inner = self._open_phases[level + 1][1] if level + 1 < len(self._open_phases) else self.images_seen
            own = (inner - start) - nested
            if own:
                out[name] = out.get(name, 0) + own
        return out

    def _restore_images_by_phase(self, saved: dict[str, int]) -> None:
        """On resume: the checkpoint's per-phase counts stand, and the open phases count only images from now on
        (the jump of `images_seen` to the checkpoint's total is already in `saved`)."""
        self.images_by_phase = {k: int(v) for k, v in saved.items()}
        for entry in self._open_phases:
            entry[1], entry[2] = self.images_seen, 0


def _check_checkpoint(ck: object) -> None:
    """A checkpoint decodes to the dict `MethodContext.epochs` writes; else CorruptFileError."""
    if not (isinstance(ck, dict) and isinstance(ck.get("epoch"), int) and isinstance(ck.get("state"), dict)):
        raise verified.CorruptFileError("it is not an epoch checkpoint")
