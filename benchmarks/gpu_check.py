"""GPU check: lnlbench's `fft` training step, ResNet-50 at 224 px on CIFAR-shaped data, with and without each speed
option of the GPU path (bf16 autocast, channels_last, training set resident on the GPU, torch.compile).

Every variant runs the same code as `fft` (`MethodContext.make_model`, `ImageBatcher`, `training.train_steps`: pad-4
crop + flip and the resize to 224 px on the device, SGD with momentum) for a fixed number of optimiser steps and
prints:

- images/s: timed steps x batch size over their wall clock (device synchronised before and after);
- GPU busy: the time at least one CUDA kernel was running (union of the kernels' intervals in a torch.profiler
  trace of a few more steps; copies and memsets not counted) per step, over the wall-clock time per step of the
  timed, unprofiled steps, so the profiler's own overhead does not lower the figure;
- TFLOP/s: 3 x the forward FLOPs per image (torch.utils.flop_counter.FlopCounterMode, the usual forward + backward
  convention; the directly counted forward + backward is printed too) x images/s, against the card's bf16 matrix
  rate measured here (an 8192^3 bf16 matmul, CUDA events, median of repeats);
- pipeline images/s: the input path alone (ImageBatcher.batch: gather, augment, resize, normalise), same batches;
- host syncs: the source lines where one training step made the host wait for the GPU (torch.cuda sync debug mode).

Run on a GPU (under 8 minutes):   bash benchmarks/gpu_check.sh --out gpu_check.json
                                  bash benchmarks/gpu_check.sh --data-root ../shared/data/cifar10-mini
Check the code paths on a CPU:    python benchmarks/gpu_check.py --dry-run --out /tmp/dry.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without installing lnlbench

import torch  # noqa: E402

from lnlbench import engine  # noqa: E402
from lnlbench.context import MethodContext  # noqa: E402
from lnlbench.data.transforms import augment, preprocess  # noqa: E402
from lnlbench.config import RunConfig  # noqa: E402
from lnlbench.training import OptimSettings, train_steps  # noqa: E402

H100_TARGET = 3000  # images/s, issue 7: ResNet-50 at 224 px, bf16, data on the GPU
ISSUE15_TARGET = 6000  # images/s, issue 15: the same on an H100 or H200 (about 1.35x the 4,490 measured on an H200)
CIFAR_TRAIN = 50_000  # random CIFAR-shaped images: as many as CIFAR-10's training set (150 MB of uint8)


@dataclass(frozen=True)
class Variant:
    """One configuration of the GPU path."""

    name: str
    amp: bool = True
    channels_last: bool = True
    data: str = "resident"  # resident (on the GPU once) | pinned (uint8 batch copies) | host (augment+resize on CPU)
    compile: bool = False
    compile_mode: str | None = None  # torch.compile mode; "reduce-overhead" replays the step as CUDA graphs
    cudnn_benchmark: bool = False


DEFAULT = Variant("lnlbench default: bf16, channels_last, data on GPU")
VARIANTS = [
    DEFAULT,
    replace(DEFAULT, name="- autocast (fp32; cuDNN convs may use TF32)", amp=False),
    replace(DEFAULT, name="- channels_last (contiguous NCHW)", channels_last=False),
    replace(DEFAULT, name="- data on GPU (pinned uint8 batch copies)", data="pinned"),
    replace(DEFAULT, name="- device preprocessing (augment+resize on CPU)", data="host"),
    Variant("none: fp32, NCHW, augment+resize on CPU", amp=False, channels_last=False, data="host"),
    replace(DEFAULT, name="+ cudnn.benchmark", cudnn_benchmark=True),
    replace(DEFAULT, name="+ torch.compile", compile=True),
    replace(DEFAULT, name="+ torch.compile reduce-overhead (CUDA graphs)", compile=True,
            compile_mode="reduce-overhead"),
]
QUICK_VARIANTS = (7, 0)  # --quick: torch.compile first (while the budget has room for compiling), then the default


class HostBatcher:
    """The pipeline without the device: augment, resize and normalise on the CPU, then copy the float batch from
    pinned memory (what a DataLoader of transformed images feeds a GPU)."""

    def __init__(self, images: torch.Tensor, device: torch.device, size: int, mean, std, channels_last: bool) -> None:
        self.images, self.device, self.size = images, device, size
        self.mean, self.std, self.channels_last = mean, std, channels_last

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx: torch.Tensor, aug: torch.Generator | None = None) -> torch.Tensor:
        raw = self.images[idx]
        if aug is not None:
            raw = augment(raw, aug)
        x = preprocess(raw, self.size, self.mean, self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def union_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Total length of the union of [start, end) intervals (overlapping kernels on several streams count once)."""
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def kernel_intervals(prof) -> list[tuple[float, float]]:
    """[start, end) in seconds of every CUDA kernel in a torch.profiler trace (memory copies and sets excluded)."""
    out = []
    for evt in prof.events():
        if evt.device_type != torch.autograd.DeviceType.CUDA:
            continue
        name = evt.name.lower()
        if name.startswith(("memcpy", "memset")):
            continue
        out.append((evt.time_range.start / 1e6, evt.time_range.end / 1e6))
    return out


def host_syncs(device: torch.device, fn) -> dict[str, int]:
    """Where `fn` made the host wait for the GPU: "file:line" -> count, from torch.cuda's sync debug mode (blocking
    copies, .item(), ...). Empty off CUDA."""
    if device.type != "cuda":
        return {}
    found: dict[str, int] = {}
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
            torch.cuda.synchronize(device)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for w in caught:
        if "synchroniz" in str(w.message).lower():
            where = f"{Path(w.filename).name}:{w.lineno}"
            found[where] = found.get(where, 0) + 1
    return found


def matmul_tflops(device: torch.device, n: int, repeats: int) -> float:
    """Measured bf16 matrix-multiply rate: median over `repeats` products of two n x n matrices (after 3 warm-ups)."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            a @ b
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e12


def flops_per_image(model: torch.nn.Module, size: int, device: torch.device) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs of one image, counted by FlopCounterMode on a batch of two in fp32."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, 3, size, size, device=device)
    model.train()
    with FlopCounterMode(display=False) as fwd:
        model(x)
    with FlopCounterMode(display=False) as both:
        model(x).float().sum().backward()
    model.zero_grad(set_to_none=True)
    return fwd.get_total_flops() / 2, both.get_total_flops() / 2


def load_images(args, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, str]:
    """uint8 N x 3 x 32 x 32 training images and labels: cifar10 from --data-root, else random (seed 0)."""
    if args.data_root:
        from lnlbench.data.base import load_dataset

        data = load_dataset("cifar10", args.data_root)
        return data.train.images, data.train.labels, f"cifar10 from {args.data_root} ({len(data.train)} images)"
    n = args.images
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return images, labels, f"random uint8 32x32 images ({n:,}, CIFAR-shaped)"


def make_context(args, device: torch.device, precision: engine.Precision, images, labels) -> MethodContext:
    """A MethodContext around the data, so the model comes from `MethodContext.make_model` as in a run."""
    config = RunConfig(dataset="gpu-check", noise="sym", rate=0.0, method="fft", hparams={}, image_size=args.size,
                       backbone=args.backbone, weights="random", amp="auto", compile=precision.compile)
    from lnlbench.models import create_backbone

    _, spec = create_backbone(args.backbone, "random", 10)
    batcher = engine.ImageBatcher(images[:0], device, args.size, spec.mean, spec.std, precision.channels_last)
    return MethodContext(
        config=config, hparams={}, num_classes=10, noisy_labels=labels, train=batcher, test=batcher,
        test_labels=labels[:0], spec=spec, device=device, precision=precision, timer=engine.PhaseTimer(device),
        checkpoint_dir=Path(args.workdir), cache_dir=None, feature_key={}, score_selection=lambda m: {},
        verbose=False,
    )


def amp_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return engine.default_precision(device, "auto").amp_dtype or torch.bfloat16
    return torch.bfloat16  # CPU autocast, for the dry run's code path


def run_variant(v: Variant, args, device: torch.device, images, labels, flops: float) -> dict:
    """Train `args.warmup + args.steps + args.profile_steps` steps of variant `v`; returns its figures."""
    precision = engine.Precision(amp_dtype=amp_dtype(device) if v.amp else None, channels_last=v.channels_last,
                                 compile=False)  # compile below, with the backend the command line names
    torch.backends.cudnn.benchmark = v.cudnn_benchmark
    ctx = make_context(args, device, precision, images, labels)
    spec = ctx.spec
    if v.data == "host":
        batcher = HostBatcher(images, device, args.size, spec.mean, spec.std, v.channels_last)
    else:
        batcher = engine.ImageBatcher(images, device, args.size, spec.mean, spec.std, v.channels_last,
                                      resident=v.data == "resident")
    on_device = getattr(batcher, "on_device", False)
    if v.data == "resident" and device.type == "cuda" and not on_device:
        print(f"  note: {v.name}: the images did not fit the device's free-memory share; they stay on the host")
    model = ctx.make_model()
    if v.compile:
        # a mode is an inductor option; the dry run's eager backend takes none (its code path is the same call)
        mode = v.compile_mode if args.compile_backend == "inductor" else None
        model.compile(backend=args.compile_backend, mode=mode)
    model.train()
    total_steps = args.warmup + args.steps + args.profile_steps
    settings = OptimSettings(epochs=1, lr=0.01, weight_decay=5e-4, batch_size=args.batch_size)  # fft defaults
    opt, sched = settings.build(model.parameters(), total_steps)
    scaler = torch.amp.GradScaler(enabled=precision.amp_dtype == torch.float16)
    labels_dev = labels.to(device)
    order = torch.Generator().manual_seed(1)
    aug = torch.Generator().manual_seed(2)
    batches = []
    while len(batches) < total_steps:
        batches += list(engine.index_batches(torch.arange(len(images)), args.batch_size, order, drop_last=True))
    warm, timed, prof_batches = (batches[: args.warmup], batches[args.warmup : args.warmup + args.steps],
                                 batches[args.warmup + args.steps : total_steps])
    common = (labels_dev, opt, sched, scaler, precision, aug)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    t0 = time.perf_counter()
    loss, _ = train_steps(model, batcher, warm, *common)
    sync(device)
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    loss, seen = train_steps(model, batcher, timed, *common)
    loss_value = float(loss) / max(seen, 1)  # waits for the last step
    wall = time.perf_counter() - t0
    images_per_s = seen / wall

    try:  # one more step, to list the places where it waits for the GPU
        syncs: dict[str, int] | str = host_syncs(device, lambda: train_steps(model, batcher, timed[:1], *common))
    except Exception as exc:  # a diagnostic only
        syncs = f"{type(exc).__name__}: {exc}"

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync(device)
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        train_steps(model, batcher, prof_batches, *common)
        sync(device)
        prof_wall = time.perf_counter() - t0
    busy_s = union_seconds(kernel_intervals(prof)) if device.type == "cuda" else None
    n_prof = max(len(prof_batches), 1)
    busy = min(1.0, (busy_s / n_prof) / (wall / len(timed))) if busy_s is not None else None

    # the input path alone, on the same batches (nothing else queued on the device)
    sync(device)
    t0 = time.perf_counter()
    for idx in timed:
        batcher.batch(idx, aug)
    sync(device)
    pipeline_per_s = seen / (time.perf_counter() - t0)

    tflops = 3 * flops * images_per_s / 1e12
    out = {
        "variant": asdict(v),
        "images_per_s": images_per_s,
        "step_ms": 1e3 * wall / len(timed),
        "gpu_busy": busy,
        "gpu_busy_in_profile": busy_s / prof_wall if busy_s is not None else None,
        "tflops": tflops,
        "pipeline_images_per_s": pipeline_per_s,
        "pipeline_over_model": pipeline_per_s / images_per_s,
        "host_syncs_per_step": syncs,
        "warmup_s": warm_s,
        "mean_loss": loss_value,
        "data_on_device": on_device,
        "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "precision": precision.as_record() | {"compile": v.compile},
    }
    if not (loss_value == loss_value and abs(loss_value) < float("inf")):
        out["error"] = f"loss is {loss_value}"
    del model, opt, sched, batcher, ctx
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if v.compile:
        torch._dynamo.reset()
    torch.backends.cudnn.benchmark = False
    return out

# --- DivideMix's training step: no host sync inside it, and how busy it keeps the GPU ---------------------------

# Tensor methods that read a value back to the host: on CUDA each makes the host wait for the device.
HOST_READS = ("item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__float__", "__int__", "__index__")
# Reads inside the step on tensors that are host tensors on every device (allowed), with the reason.
HOST_SIDE = {
    "mixmatch.py:mix": "the mixing weight lambda ~ Beta(alpha, alpha) is drawn on the CPU (the global CPU generator), "
                       "a host tensor on every device",
}
DIVIDEMIX_BACKBONE, DIVIDEMIX_SIZE, DIVIDEMIX_BATCH = "tf_efficientnet_lite0", 32, 64  # the case left open (issue 15)


def _caller(frame) -> str:
    """'file:function' of the first frame outside torch (where the method code made the read)."""
    while frame is not None and f"{os.sep}torch{os.sep}" in frame.f_code.co_filename:
        frame = frame.f_back
    if frame is None:
        return "torch"
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}:{frame.f_lineno}"


def host_reads(fn) -> dict[str, int]:
    """CPU emulation of CUDA's sync debug mode: where `fn` read a tensor's value back on the host ("file:function:
    line (method)" -> count), by wrapping HOST_READS and torch.nonzero while it runs. It sees reads of every tensor,
    host tensors included (HOST_SIDE names the allowed ones); it cannot see blocking host-to-device copies, which
    only the CUDA check does."""
    found: dict[str, int] = {}
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}
    original_nonzero = torch.nonzero

    def wrap(name, original):
        def reader(self, *a, **k):
            where = f"{_caller(sys._getframe(1))} ({name})"
            found[where] = found.get(where, 0) + 1
            return original(self, *a, **k)
        return reader

    def nonzero(*a, **k):
        where = f"{_caller(sys._getframe(1))} (torch.nonzero)"
        found[where] = found.get(where, 0) + 1
        return original_nonzero(*a, **k)

    try:
        for name, original in originals.items():
            setattr(torch.Tensor, name, wrap(name, original))
        torch.nonzero = nonzero
        fn()
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
        torch.nonzero = original_nonzero
    return found


def disallowed(reads: dict[str, int]) -> dict[str, int]:
    """The reads not explained by HOST_SIDE."""
    return {k: v for k, v in reads.items() if not any(k.startswith(site + ":") for site in HOST_SIDE)}


def dividemix_step_check(args, device: torch.device, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """DivideMix's training step (`DivideMix.train_step` and the optimiser step, the body of its epoch loop) on
    EfficientNet-Lite0 at 32 px, batch 64 (the case issue 15 left open): the places where one step makes the host
    wait (CUDA: sync debug mode; CPU dry run: `host_reads`), its step time and, on CUDA, the GPU-busy fraction."""
    from lnlbench_plugins.dividemix import DivideMix

    batch = DIVIDEMIX_BATCH if not args.dry_run else 8
    precision = engine.default_precision(device)
    ctx = make_context(argparse.Namespace(**{**vars(args), "backbone": DIVIDEMIX_BACKBONE}), device, precision,
                       images, labels)
    ctx.config = replace(ctx.config, weights="packaged")
    from lnlbench.models import create_backbone

    _, spec = create_backbone(DIVIDEMIX_BACKBONE, "packaged", 10)
    ctx.spec = spec
    ctx.train = engine.ImageBatcher(images, device, DIVIDEMIX_SIZE, spec.mean, spec.std, precision.channels_last)
    nets = (ctx.make_model(0), ctx.make_model(1))
    hp = {k: v.default for k, v in DivideMix.hparam_space.items()}
    opt, _ = OptimSettings(epochs=1, lr=0.02, weight_decay=5e-4, batch_size=batch).build(nets[0].parameters(), 1)
    scaler = torch.amp.GradScaler(enabled=precision.amp_dtype == torch.float16)
    labels_dev = labels.to(device)
    prob = torch.rand(len(labels), generator=torch.Generator().manual_seed(0)).to(device)
    aug = torch.Generator().manual_seed(3)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(4))
    total = torch.zeros((), device=device)
    nets[0].train()
    nets[1].eval()

    def steps(k: int) -> None:
        nonlocal total
        for i in range(k):
            start = (2 * i * batch) % max(len(order) - 2 * batch, 1)
            bx, bu = order[start : start + batch], order[start + batch : start + 2 * batch]
            loss = DivideMix.train_step(ctx, nets[0], nets[1], bx, bu, aug, labels_dev, prob, 1.0, hp)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += loss.detach() * len(bx)

    steps(2 if args.dry_run else 5)  # warm-up: allocations, cuDNN choices
    sync(device)
    if device.type == "cuda":
        syncs = host_syncs(device, lambda: steps(1))
        method = "torch.cuda sync debug mode"
    else:
        syncs = host_reads(lambda: steps(1))
        method = "CPU emulation (reads of tensor values wrapped; see host_reads)"
    n_timed = 2 if args.dry_run else 30
    sync(device)
    t0 = time.perf_counter()
    steps(n_timed)
    sync(device)
    wall = time.perf_counter() - t0
    busy = None
    if device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            steps(5)
            sync(device)
        busy = min(1.0, union_seconds(kernel_intervals(prof)) / 5 / (wall / n_timed))
    loss_value = float(total)  # once, after every step
    out = {
        "backbone": DIVIDEMIX_BACKBONE, "size": DIVIDEMIX_SIZE, "batch": batch, "sync_check": method,
        "host_syncs_per_step": syncs, "disallowed": disallowed(syncs) if device.type != "cuda" else syncs,
        "allowed_host_side": {k: v for k, v in HOST_SIDE.items() if any(s.startswith(k + ":") for s in syncs)},
        # images/s: 2 views of b labelled and 2 of b unlabelled images per step, as the method counts images_seen
        "step_ms": 1e3 * wall / n_timed, "images_per_s": 4 * batch * n_timed / wall, "gpu_busy": busy,
        "finite_loss": loss_value == loss_value and abs(loss_value) < float("inf"),
    }
    del nets, opt, ctx
    gc.collect()
    return out


def feature_rate(args, device: torch.device, images: torch.Tensor) -> dict:
    """TURN's step-0 feature extraction (`engine.extract_features`, the backbone in eval mode under
    inference_mode) with the packaged EfficientNet-Lite0 at its native resolution, in images/s."""
    from lnlbench.models import create_backbone, split_backbone_head

    model, spec = create_backbone(DIVIDEMIX_BACKBONE, "packaged", 10)
    size = spec.default_input_size if not args.dry_run else 32
    precision = engine.default_precision(device)
    model = model.to(device).to(memory_format=torch.channels_last).eval()
    feature_fn, _ = split_backbone_head(model)
    n = min(len(images), 64 if args.dry_run else 10_000)
    batcher = engine.ImageBatcher(images[:n], device, size, spec.mean, spec.std, precision.channels_last)
    engine.extract_features(feature_fn, batcher, precision, batch_size=256)  # warm-up (cuDNN choices)
    sync(device)
    t0 = time.perf_counter()
    feats = engine.extract_features(feature_fn, batcher, precision, batch_size=256)
    sync(device)
    wall = time.perf_counter() - t0
    return {"backbone": DIVIDEMIX_BACKBONE, "weights": "packaged", "size": size, "images": n,
            "images_per_s": n / wall, "feature_dim": int(feats.shape[1]), "precision": precision.as_record()}


def run_method_checks(args, device: torch.device, images, labels, payload: dict, start: float) -> None:
    """The DivideMix step check and TURN's feature rate, each skipped past the budget, into payload["methods"]."""
    payload["methods"] = {}
    for name, check in (("dividemix_step", lambda: dividemix_step_check(args, device, images, labels)),
                        ("turn_features", lambda: feature_rate(args, device, images))):
        elapsed = time.perf_counter() - start
        if elapsed > args.budget_s:
            payload["methods"][name] = {"skipped": f"time budget ({elapsed:.0f} s elapsed)"}
            continue
        print(f"[{name}] ...", flush=True)
        try:
            r = check()
        except Exception as exc:  # a diagnostic: report it, go on
            r = {"error": f"{type(exc).__name__}: {exc}"}
        payload["methods"][name] = r
        if name == "dividemix_step" and "error" not in r:
            busy = f", GPU busy {r['gpu_busy']:.0%}" if r["gpu_busy"] is not None else ""
            print(f"    {r['step_ms']:.1f} ms per step ({r['images_per_s']:,.0f} augmented images/s){busy}; "
                  f"host waits ({r['sync_check']}): {r['host_syncs_per_step'] or 'nowhere'}; not allowed: "
                  f"{r['disallowed'] or 'none'}", flush=True)
        elif "error" not in r:
            print(f"    {r['images_per_s']:,.0f} img/s at {r['size']} px ({r['backbone']}, {r['weights']})", flush=True)
        else:
            print(f"    failed: {r['error']}", flush=True)
        write_json(args.out, payload)


def environment(device: torch.device) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "host": platform.node(),
           "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "device": engine.device_name(device),
           "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env |= {"gpu": props.name, "gpu_memory_gb": props.total_memory / 2**30, "sms": props.multi_processor_count,
                "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    return env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dry-run", action="store_true",
                   help="CPU, tiny model (timm test_resnet) at 32 px, a few steps: checks every code path")
    p.add_argument("--out", default=None, help="write every figure as JSON to this file (rewritten after each variant)")
    p.add_argument("--data-root", default=None, help="cifar10 data root (e.g. ../shared/data/cifar10-mini); "
                   "default: random CIFAR-shaped images")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --dry-run)")
    p.add_argument("--backbone", default=None, help="timm architecture (default resnet50; test_resnet dry run)")
    p.add_argument("--size", type=int, default=None, help="input size in pixels (default 224; 32 dry run)")
    p.add_argument("--batch-size", type=int, default=None, help="default 256 (8 dry run)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 40; 2 dry run)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5; 1 dry run)")
    p.add_argument("--profile-steps", type=int, default=None, help="profiled steps (default 5; 1 dry run)")
    p.add_argument("--images", type=int, default=None, help="random images (default 50,000; 64 dry run)")
    p.add_argument("--variants", default=None, help="comma-separated variant numbers (see the table); default all")
    p.add_argument("--compile-backend", default=None, help="torch.compile backend (default inductor; eager dry run)")
    p.add_argument("--matmul-n", type=int, default=None, help="size of the bf16 matmul (default 8192; 128 dry run)")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="skip variants that would start after this many seconds (torch.compile needs 150 s left)")
    p.add_argument("--compile-margin-s", type=float, default=150.0,
                   help="a torch.compile variant starts only with this many seconds of the budget left")
    p.add_argument("--quick", action="store_true",
                   help=f"variants {','.join(map(str, QUICK_VARIANTS))} with 20 timed steps, budget 150 s, then the "
                        "DivideMix and feature checks (< 3 min on a GPU)")
    p.add_argument("--skip-methods", action="store_true", help="skip the DivideMix step and TURN feature checks")
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    gpu = {"device": "cuda", "backbone": "resnet50", "size": 224, "batch_size": 256, "steps": 40, "warmup": 5,
           "profile_steps": 5, "images": CIFAR_TRAIN, "compile_backend": "inductor", "matmul_n": 8192}
    dry = {"device": "cpu", "backbone": "test_resnet", "size": 32, "batch_size": 8, "steps": 2, "warmup": 1,
           "profile_steps": 1, "images": 64, "compile_backend": "eager", "matmul_n": 128}
    if args.quick:
        gpu |= {"steps": 20, "variants": ",".join(map(str, QUICK_VARIANTS))}
        dry |= {"variants": ",".join(map(str, QUICK_VARIANTS))}
        if args.budget_s == 420.0:
            args.budget_s = 150.0
        if args.compile_margin_s == 150.0:
            args.compile_margin_s = 100.0
    for key, value in (dry if args.dry_run else gpu).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.workdir is None:
        import tempfile

        args.workdir = tempfile.mkdtemp(prefix="lnlbench-gpu-check-")
    return args


def write_json(path: str | None, payload: dict) -> None:
    if path:
        tmp = Path(path).with_name(Path(path).name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2, default=str))
        os.replace(tmp, path)


def print_table(results: list[dict], peak: float) -> None:
    ran = [r for r in results if "images_per_s" in r]
    base = next((r["images_per_s"] for r in ran if r["index"] == 0), ran[0]["images_per_s"] if ran else None)
    print()
    print(f"{'#':>2} {'variant':<50} {'img/s':>8} {'vs def':>7} {'step ms':>8} {'GPU busy':>9} {'TFLOP/s':>8} "
          f"{'% peak':>7} {'pipe img/s':>11} {'mem GB':>7}")
    for r in results:
        i, name = r["index"], r["variant"]["name"]
        if "images_per_s" not in r:
            print(f"{i:>2} {name:<50} {r.get('skipped') or r.get('error')}")
            continue
        busy = f"{r['gpu_busy']:.0%}" if r["gpu_busy"] is not None else "n/a"
        mem = f"{r['peak_mem_gb']:.1f}" if r["peak_mem_gb"] is not None else "n/a"
        print(f"{i:>2} {name:<50} {r['images_per_s']:>8,.0f} {r['images_per_s'] / base:>6.2f}x {r['step_ms']:>8.1f} "
              f"{busy:>9} {r['tflops']:>8.3g} {r['tflops'] / peak:>7.1%} {r['pipeline_images_per_s']:>11,.0f} {mem:>7}"
              + (f"  ERROR {r['error']}" if "error" in r else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; run with --dry-run to check the code paths on the CPU", file=sys.stderr)
        return 2
    images, labels, data_desc = load_images(args, device)
    env = environment(device)
    print(f"gpu_check on {env['device']}: {args.backbone} at {args.size} px, batch {args.batch_size}, "
          f"{args.warmup}+{args.steps}+{args.profile_steps} steps per variant; data: {data_desc}", flush=True)
    peak = matmul_tflops(device, args.matmul_n, repeats=10 if device.type == "cuda" else 3)
    print(f"measured bf16 matmul ({args.matmul_n}^3): {peak:.1f} TFLOP/s", flush=True)
    from lnlbench.models import create_backbone

    counter, _ = create_backbone(args.backbone, "random", 10)
    fwd, fwd_bwd = flops_per_image(counter.to(device), args.size, device)
    del counter
    print(f"FLOPs per image: forward {fwd / 1e9:.2f} G, training (3 x forward) {3 * fwd / 1e9:.2f} G, "
          f"counted forward + backward {fwd_bwd / 1e9:.2f} G", flush=True)
    chosen = range(len(VARIANTS)) if not args.variants else [int(x) for x in args.variants.split(",")]
    payload: dict = {"env": env, "args": {k: v for k, v in vars(args).items() if k != "workdir"}, "data": data_desc,
                     "bf16_matmul_tflops": peak, "flops_per_image": {"forward": fwd, "train_3x": 3 * fwd,
                                                                     "counted_forward_backward": fwd_bwd},
                     "h100_target_images_per_s": H100_TARGET, "variants": []}
    for i in chosen:
        v = VARIANTS[i]
        elapsed = time.perf_counter() - start
        if elapsed > args.budget_s or (v.compile and elapsed > args.budget_s - args.compile_margin_s):
            payload["variants"].append({"index": i, "variant": asdict(v),
                                        "skipped": f"time budget ({elapsed:.0f} s elapsed)"})
            continue
        print(f"[{i}] {v.name} ...", flush=True)
        try:
            r = {"index": i, **run_variant(v, args, device, images, labels, fwd)}
            print(f"    {r['images_per_s']:,.0f} img/s, warm-up {r['warmup_s']:.1f} s; host waits for the GPU per "
                  f"step at: {r['host_syncs_per_step'] or 'nowhere'}", flush=True)
        except Exception as exc:  # one failing option (e.g. no compiler for torch.compile) must not hide the rest
            r = {"index": i, "variant": asdict(v), "error": f"{type(exc).__name__}: {exc}"}
            print(f"    failed: {r['error']}", flush=True)
        payload["variants"].append(r)
        payload["total_s"] = time.perf_counter() - start
        write_json(args.out, payload)
    if not args.skip_methods:
        run_method_checks(args, device, images, labels, payload, start)
    print_table(payload["variants"], peak)
    default = next((r for r in payload["variants"] if r["index"] == 0 and "images_per_s" in r), None)
    if default and device.type == "cuda":
        print(f"\nlnlbench default on {engine.device_name(device)}: {default['images_per_s']:,.0f} img/s (targets: "
              f">= {H100_TARGET:,}, issue 7; >= {ISSUE15_TARGET:,} on an H100/H200, issue 15); "
              f"pipeline / model = {default['pipeline_over_model']:.1f} (target >= 3)")
    payload["total_s"] = time.perf_counter() - start
    write_json(args.out, payload)
    print(f"total {payload['total_s']:.0f} s" + (f"; figures in {args.out}" if args.out else ""))
    failed = [r for r in payload["variants"] + list(payload.get("methods", {}).values()) if "error" in r]
    dm = payload.get("methods", {}).get("dividemix_step", {})
    if dm.get("disallowed"):
        print(f"DivideMix's step makes the host wait at: {dm['disallowed']}", file=sys.stderr)
        return 1
    return 1 if failed and args.dry_run else 0


if __name__ == "__main__":
    sys.exit(main())
