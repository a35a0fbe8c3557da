"""Execute one resolved run and write its result record (resolution: `lnlbench.resolve`)."""

from __future__ import annotations

import os
import platform
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import torch

import lnlbench
from lnlbench import engine, verified
from lnlbench.context import MethodContext
from lnlbench.contention import ContentionProbe
from lnlbench.data.base import Dataset, load_dataset
from lnlbench.errors import ConfigError, DataError, WeightsError
from lnlbench.fingerprint import dataset_fingerprint
from lnlbench.log import get_logger
from lnlbench.memory import RunPeakMemory
from lnlbench.methods import MethodOutput
from lnlbench.models import create_backbone
from lnlbench.noise import NoisyLabels, cached_noisy_labels
from lnlbench.plugin_manager import method_registry, notify_run_finished
from lnlbench.resolve import default_image_size, resolve_config  # noqa: F401  (importable from here, as before)
from lnlbench.config import SCHEMA, RunConfig, RunDir, default_cache_dir, write_json_atomic


# Part of every feature-cache key: bump it whenever how features are computed changes (eval mode, preprocessing),
# so that no cache entry written by older code is ever read as current.
FEATURE_EXTRACTOR_VERSION = 2


def check_data_fingerprint(config: RunConfig, data: Dataset, cache_dir: Path | None) -> str:
    """The loaded data's content fingerprint; raises DataError when it is not the one the run id was made for."""
    fingerprint = dataset_fingerprint(config.dataset, config.data_root, config.dataset_options, cache_dir,
                                      load=lambda: data)
    if config.data_fingerprint is not None and fingerprint != config.data_fingerprint:
        raise DataError(
            f"the data of {config.dataset!r} under {config.data_root} is not the data this run was configured for "
            f"(content fingerprint {fingerprint[:16]}, the run id was made for {config.data_fingerprint[:16]}): "
            "the files changed since; configure the run again, which gives it a new id"
        )
    return fingerprint


def make_noisy_labels(
    config: RunConfig, data: Dataset, cache_dir: Path | None, fingerprint: str | None = None
) -> NoisyLabels:
    """The run's noisy training labels, made once per (dataset content, model, rate, noise seed) and cached."""
    clean = data.train.labels.numpy()
    kwargs: dict[str, Any] = {"dataset_name": config.dataset, "superclasses": data.superclasses}
    if config.noise == "idn":
        kwargs["images"] = data.train.images
    if config.noise == "file":
        kwargs["path"] = Path(config.noise_file or "")
    if "variant" in config.noise_options:  # cifar10n / cifar100n: the label file and which of its label sets
        kwargs["path"] = Path(config.noise_file or "")
        kwargs["variant"] = config.noise_options["variant"]
    if data.extra.get("train_indices") is not None:  # a training subset: original indices, for index-aligned files
        kwargs["indices"] = data.extra["train_indices"]
    if "asym_map" in config.noise_options:
        kwargs["asym_map"] = {int(k): int(v) for k, v in config.noise_options["asym_map"].items()}
    if config.noise == "real":
        return shipped_noisy_labels(config, data)
    dataset_key = fingerprint or data.content_sha256()
    if cache_dir is None:
        from lnlbench.noise import inject_noise

        return inject_noise(config.noise, clean, data.num_classes, config.rate, config.noise_seed, **kwargs)
    return cached_noisy_labels(
        cache_dir, dataset_key, config.noise, clean, data.num_classes, config.rate, config.noise_seed, **kwargs
    )


def shipped_noisy_labels(config: RunConfig, data: Dataset) -> NoisyLabels:
    """The labels a real-noise dataset ships; rate and transition matrix over the samples whose clean label is known."""
    import dataclasses

    from lnlbench.noise import labels_sha256, real_noisy_labels

    if data.noisy_train_labels is None:
        raise ConfigError(
            f"dataset {config.dataset!r} ships no noisy labels, so noise model 'real' has nothing to use; "
            "inject noise with sym, sym-dividemix, asym, pairflip, idn or file"
        )
    noisy = data.noisy_train_labels.numpy()
    clean = data.train.labels.numpy()
    known = clean >= 0  # Clothing1M: a clean label for a minority of training images; WebVision: none
    if known.all():
        return real_noisy_labels(clean, noisy, data.num_classes)
    if not known.any():
        return real_noisy_labels(None, noisy, data.num_classes)
    subset = real_noisy_labels(clean[known], noisy[known], data.num_classes)
    return dataclasses.replace(subset, labels=noisy, clean_labels=None, sha256=labels_sha256(noisy))


def selection_scorer(clean_mask: torch.Tensor, known: torch.Tensor | None = None):
    """Scores a selection mask against the true clean mask: size, precision, recall, noise rate of the subset.

    With `known` given (real-noise datasets), precision and recall count only samples whose clean label is known.
    """

    def score(selected: torch.Tensor) -> dict[str, float]:
        if selected.shape != clean_mask.shape:
            raise ConfigError(f"selection mask has shape {tuple(selected.shape)}, expected {tuple(clean_mask.shape)}")
        n_all = int(selected.sum())
        if known is not None:
            selected = selected & known
        n_sel = int(selected.sum())
        n_clean = int(clean_mask.sum())
        hit = int((selected & clean_mask).sum())
        return {
            "size": n_all,
            "fraction": n_all / max(len(clean_mask), 1),
            "scored_on": n_sel,
            "precision": hit / n_sel if n_sel else float("nan"),
            "recall": hit / n_clean if n_clean else float("nan"),
            "subset_noise_rate": 1 - hit / n_sel if n_sel else float("nan"),
        }

    return score


def environment(method: str | None = None) -> dict[str, Any]:
    """Versions, host and code provenance: commit, dirty flag and the SHA-256 of the source the run executes."""
    import timm

    from lnlbench.provenance import git_state, run_code_sha256

    from lnlbench.provenance import dependency_versions, invocation

    git = git_state()
    env: dict[str, Any] = {
        "lnlbench": lnlbench.__version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "git": git["commit"],
        "git_dirty": git["dirty"],
        "versions": dependency_versions(),
        "command": invocation(),
    }
    if method is not None:
        from lnlbench.provenance import method_module

        env["method_module"] = method_module(method)
        env["code_sha256"] = run_code_sha256(method)
    return env


def _fmt_rate(rate: float | None) -> str:
    return "unknown" if rate is None else f"{rate:.3f}"


LOG = get_logger("run")
# OpenMP reads its wait policy once, when torch loads (imported at the top of this module): what a run records is
# what this process had then, not what the environment says later (a local worker's fork server loaded torch).
OMP_WAIT_POLICY_AT_LOAD = os.environ.get("OMP_WAIT_POLICY")


def _log(verbose: bool, msg: str) -> None:
    if verbose:
        LOG.info(msg)


def execute_run(
    config: RunConfig,
    out: Path | str,
    *,
    cache_dir: Path | None = None,
    device: str | None = None,
    verbose: bool = True,
    keep_checkpoints: bool = False,
) -> dict[str, Any]:
    """Run one configuration and return its record; `OUT/<run_id>/result.json` is written atomically.

    A finished run (status done) is returned as it is. A run that fails after starting gets a record with status
    "failed", its error and traceback.txt; a configuration error raises before anything is written.
    """
    run_dir = RunDir(out, config.run_id)
    done = run_dir.done_record()
    if done is not None:
        _log(verbose, f"run {config.run_id}: already done")
        return done
    try:
        run_dir.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create run directory {run_dir.path}: {exc}; pass a writable --out") from None
    write_json_atomic(run_dir.config, config.to_json())
    run_dir.traceback.unlink(missing_ok=True)
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    dev = engine.select_device(device)
    start = time.perf_counter()
    timer = engine.PhaseTimer(dev)
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "run_id": config.run_id,
        "status": "running",
        "method": config.method,
        "hparams": config.hparams,
        "dataset": config.dataset,
        "dataset_options": config.dataset_options,
        "image_size": config.image_size,
        "seed": config.seed,
        "backbone": {"name": config.backbone, "weights": config.weights},
        "config": config.identity(),
        "env": environment(config.method),
    }
    memory = RunPeakMemory(dev).start()  # this run's own peak, not the process's so far
    threads = torch.get_num_threads()
    record["numerics"] = {"device_type": dev.type, "cpu_threads": threads,
                          "omp_wait_policy": OMP_WAIT_POLICY_AT_LOAD}
    probe = ContentionProbe(threads=threads, on_gpu=dev.type == "cuda")
    try:
        _execute(config, run_dir, record, cache_dir, dev, timer, verbose)
        record["status"] = "done"
    except Exception as exc:
        record["status"] = "failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
        run_dir.traceback.write_text(traceback.format_exc())
        _log(verbose, f"run {config.run_id} failed: {record['error']}")
    finally:
        measured = time.perf_counter() - start
        wall = measured + timer.extra_s()
        contention = probe.finish()
        cost = record.setdefault("cost", {})
        cost.update(
            {
                "wall_clock_s": wall,  # as charged: measured here, plus work done elsewhere that the result uses
                "wall_clock_measured_s": measured,
                "phases": timer.charged(),
                "phases_measured": dict(timer.seconds),
                "charges": list(timer.charges),
                "device": engine.device_name(dev),
                "device_count": 1,
                "gpu_hours": wall / 3600 if dev.type == "cuda" else 0.0,
                "peak_mem_mb": memory.peak_mb(),
                "threads": threads,
                "contended": contention["contended"],
                "contention": contention,
            }
        )
        cost.update(engine.throughput(cost.get("images_seen", 0), timer.charged(), cost.get("images_by_phase")))
        if record["status"] != "running":
            record = conforming(record)
            verified.check_write(run_dir.result)  # an attempt a later one took over writes no record either
            write_json_atomic(run_dir.result, record)
            if record["status"] == "done" and not keep_checkpoints:
                run_dir.remove_checkpoints()  # only now: until the record is on disk, they are what a resume needs
            notify_run_finished(record)
    return record


def conforming(record: dict[str, Any]) -> dict[str, Any]:
    """The record as the record type writes it; a record that departs from the schema is never published as done."""
    from lnlbench.record import ResultRecord, validate

    problems = validate(record)
    if problems:
        record = dict(record, status="failed",
                      error=f"internal error: the record does not follow the record schema ({'; '.join(problems[:5])})")
        problems = validate(record)
        if problems:
            raise RuntimeError(f"record of run {record.get('run_id')} does not follow the schema: {problems}")
    return ResultRecord.from_json(record).to_json()


def _execute(
    config: RunConfig,
    run_dir: RunDir,
    record: dict[str, Any],
    cache_dir: Path,
    dev: torch.device,
    timer: engine.PhaseTimer,
    verbose: bool,
) -> None:
    method_cls = method_registry().get(config.method)
    with timer.phase("data"):
        data = load_dataset(config.dataset, config.data_root, **config.dataset_options)
        fingerprint = check_data_fingerprint(config, data, cache_dir)
        noisy = make_noisy_labels(config, data, cache_dir, fingerprint)
    record["data_fingerprint"] = fingerprint
    record["n_train"] = len(data.train)
    record["n_test"] = len(data.test)
    record["num_classes"] = data.num_classes
    record["noise"] = {
        "model": config.noise,
        "rate": config.rate,
        "seed": config.noise_seed,
        "realized_rate": noisy.realized_rate,
        "clean_labels_known": int((data.train.labels >= 0).sum()),
        "labels_sha256": noisy.sha256,
        "transition_matrix": noisy.to_json()["transition_matrix"],
    }
    _log(
        verbose,
        f"run {config.run_id}: {config.method} on {config.dataset} ({len(data.train)} train, {len(data.test)} test), "
        f"noise {config.noise} {config.rate} (realized {_fmt_rate(noisy.realized_rate)}), {config.backbone} "
        f"[{config.weights}] at {config.image_size} px on {engine.device_name(dev)}",
    )
    _, spec = create_backbone(config.backbone, config.weights, data.num_classes)
    if config.weights_sha256 is not None and spec.weights_sha256 != config.weights_sha256:
        raise WeightsError(
            f"the weights {config.weights} changed since this run was configured (SHA-256 {spec.weights_sha256}, "
            f"the run id was made for {config.weights_sha256}); configure the run again, which gives it a new id"
        )
    record["backbone"]["weights_sha256"] = spec.weights_sha256
    precision = engine.default_precision(dev, config.amp, config.compile)
    record["precision"] = precision.as_record()

    def batcher(images: Any) -> engine.ImageBatcher:
        return engine.ImageBatcher(images, dev, config.image_size, spec.mean, spec.std, precision.channels_last)

    noisy_labels = noisy.labels_tensor().long()
    known = data.train.labels >= 0
    clean_mask = (noisy_labels == data.train.labels) & known
    ctx = MethodContext(
        config=config,
        hparams=config.hparams,
        num_classes=data.num_classes,
        noisy_labels=noisy_labels,
        train=batcher(data.train.images),
        test=batcher(data.test.images),
        test_labels=data.test.labels,
        spec=spec,
        device=dev,
        precision=precision,
        timer=timer,
        checkpoint_dir=run_dir.checkpoints,
        cache_dir=cache_dir,
        feature_key={
            "extractor": FEATURE_EXTRACTOR_VERSION,
            "dataset": fingerprint,
            "backbone": config.backbone,
            "weights": spec.weights_sha256 or config.weights,
            "precision": precision.as_record()["precision"],
        },
        score_selection=selection_scorer(clean_mask, None if bool(known.all()) else known),
        samples_per_epoch=data.extra.get("samples_per_epoch"),
        verbose=verbose,
    )
    output: MethodOutput = method_cls().fit(ctx)
    with timer.phase("test"):
        final_acc = ctx.evaluate(output.predict)
    accs = [h["test_acc"] for h in ctx.history if "test_acc" in h]
    metrics: dict[str, Any] = {
        "test_acc": final_acc,
        "test_acc_best": max([final_acc, *accs]),
        "test_acc_best_note": "max over per-epoch evaluations on the test set; not a reportable number",
        "history": ctx.history,
    }
    extra_splits = data.extra.get("eval_splits") or {}
    if extra_splits:  # e.g. Clothing1M's clean validation split, ILSVRC12 val for WebVision
        with timer.phase("test"):
            metrics["extra_test_acc"] = {
                name: engine.accuracy(engine.predict_logits(output.predict, batcher(split.images), precision), split.labels)
                for name, split in extra_splits.items()
            }
    if ctx.selections:
        metrics["selection"] = ctx.selections
    if output.diagnostics:
        metrics["diagnostics"] = output.diagnostics
    record["metrics"] = metrics
    record["cost"] = {"images_seen": ctx.images_seen, "images_by_phase": dict(ctx.images_by_phase)}
    if ctx.feature_costs:
        record["cost"]["features"] = ctx.feature_costs
    _log(verbose, f"run {config.run_id}: test_acc {final_acc:.4f}")
    for warning in (output.diagnostics or {}).get("warnings", []):  # e.g. a probe that did not learn (issue 11)
        _log(verbose, f"run {config.run_id}: warning: {warning}")
