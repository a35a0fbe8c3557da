"""benchmarks/gpu_check.py: its dry run goes through every variant's code path on the CPU, and its figures add up."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
CIFAR_MINI = REPO.parent / "shared" / "data" / "cifar10-mini"
FAST = ["--dry-run", "--steps", "1", "--warmup", "1", "--profile-steps", "1"]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_dry_run_measures_every_variant(gpu_check, tmp_path):
    out = tmp_path / "dry.json"
    assert gpu_check.main([*FAST, "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert [r["index"] for r in payload["variants"]] == list(range(len(gpu_check.VARIANTS)))
    for r in payload["variants"]:
        assert "error" not in r and "skipped" not in r, r
        assert r["images_per_s"] > 0 and r["pipeline_images_per_s"] > 0
        assert r["tflops"] > 0 and r["gpu_busy"] is None  # no CUDA kernels on the CPU: no busy figure
        assert r["mean_loss"] == r["mean_loss"]  # finite training loss, not NaN
    compiled = [r for r in payload["variants"] if r["variant"]["compile"]]
    assert compiled and compiled[0]["precision"]["compile"] is True
    fp32 = [r for r in payload["variants"] if not r["variant"]["amp"]]
    assert fp32 and all(r["precision"]["precision"] == "fp32" for r in fp32)
    assert payload["variants"][0]["precision"]["precision"] == "bfloat16"
    flops = payload["flops_per_image"]
    assert 0 < flops["forward"] < flops["counted_forward_backward"] <= flops["train_3x"] * 1.01
    assert payload["bf16_matmul_tflops"] > 0
    assert payload["env"]["device"].startswith("cpu")
    graphs = [r for r in payload["variants"] if r["variant"]["compile_mode"] == "reduce-overhead"]
    assert graphs and "error" not in graphs[0]
    dm = payload["methods"]["dividemix_step"]
    assert dm["disallowed"] == {} and dm["finite_loss"] and dm["step_ms"] > 0 and dm["gpu_busy"] is None
    assert "emulation" in dm["sync_check"]
    feats = payload["methods"]["turn_features"]
    assert feats["images_per_s"] > 0 and feats["feature_dim"] == 1280  # EfficientNet-Lite0's pooled features


def test_dividemix_sync_check_catches_a_host_read_in_the_step(gpu_check, tmp_path, monkeypatch, capsys):
    """A step that reads its loss back (a host sync on CUDA) fails the dry run, named by file and function."""
    from lnlbench_plugins.dividemix import DivideMix

    original = DivideMix.train_step

    def reads_its_loss(*args, **kwargs):
        loss = original(*args, **kwargs)
        loss.item()
        return loss

    monkeypatch.setattr(DivideMix, "train_step", staticmethod(reads_its_loss))
    out = tmp_path / "sync.json"
    assert gpu_check.main([*FAST, "--variants", "0", "--out", str(out)]) == 1
    disallowed = json.loads(out.read_text())["methods"]["dividemix_step"]["disallowed"]
    assert any("reads_its_loss" in site and "(item)" in site for site in disallowed), disallowed
    assert "makes the host wait" in capsys.readouterr().err


def test_host_reads_sees_reads_and_restores_tensor(gpu_check):
    t = torch.ones(3)
    before = (torch.Tensor.item, torch.Tensor.__bool__, torch.nonzero)
    reads = gpu_check.host_reads(lambda: (t.sum().item(), t.tolist(), torch.nonzero(t), bool(t[0])))
    kinds = sorted(site.rsplit("(", 1)[1] for site in reads)
    assert kinds == ["__bool__)", "item)", "tolist)", "torch.nonzero)"]
    assert (torch.Tensor.item, torch.Tensor.__bool__, torch.nonzero) == before  # restored
    assert gpu_check.host_reads(lambda: t + 1) == {}


def test_quick_runs_compile_and_default_then_the_method_checks(gpu_check, tmp_path):
    out = tmp_path / "quick.json"
    assert gpu_check.main([*FAST, "--quick", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert [r["index"] for r in payload["variants"]] == list(gpu_check.QUICK_VARIANTS)
    assert set(payload["methods"]) == {"dividemix_step", "turn_features"}


def test_budget_skips_variants_and_still_writes_json(gpu_check, tmp_path):
    out = tmp_path / "skipped.json"
    assert gpu_check.main([*FAST, "--budget-s", "0", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert len(payload["variants"]) == len(gpu_check.VARIANTS)
    assert all("skipped" in r for r in payload["variants"])
    assert all("skipped" in r for r in payload["methods"].values())


@pytest.mark.skipif(not CIFAR_MINI.is_dir(), reason="../shared/data/cifar10-mini is not beside this checkout")
def test_dry_run_reads_real_cifar(gpu_check, tmp_path):
    out = tmp_path / "cifar.json"
    assert gpu_check.main([*FAST, "--variants", "0", "--data-root", str(CIFAR_MINI), "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert "cifar10" in payload["data"] and "5000 images" in payload["data"]
    assert payload["variants"][0]["images_per_s"] > 0


def test_no_cuda_without_dry_run_is_a_clear_error(gpu_check, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert gpu_check.main(["--device", "cuda"]) == 2
    assert "--dry-run" in capsys.readouterr().err


def test_union_counts_overlaps_once(gpu_check):
    assert gpu_check.union_seconds([]) == 0.0
    assert gpu_check.union_seconds([(0.0, 1.0), (0.5, 2.0), (3.0, 4.0)]) == pytest.approx(3.0)
    assert gpu_check.union_seconds([(3.0, 4.0), (0.0, 10.0)]) == pytest.approx(10.0)


def test_kernel_intervals_keep_cuda_kernels_only(gpu_check):
    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU

    def event(name, device, start_us, end_us):
        return SimpleNamespace(name=name, device_type=device, time_range=SimpleNamespace(start=start_us, end=end_us))

    prof = SimpleNamespace(events=lambda: [
        event("volta_sgemm", cuda, 0, 1_000_000),
        event("Memcpy HtoD (Pinned -> Device)", cuda, 1_000_000, 3_000_000),
        event("Memset (Device)", cuda, 0, 5_000_000),
        event("aten::conv2d", cpu, 0, 9_000_000),
    ])
    assert gpu_check.kernel_intervals(prof) == [(0.0, 1.0)]


def test_shell_wrapper_parses():
    assert subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "gpu_check.sh")]).returncode == 0


FULL_SCALE = REPO / "benchmarks" / "full_scale_gpu.sh"


def _full_scale(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(FULL_SCALE), *args], capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"})


def test_full_scale_dry_run_records_and_resumes(tmp_path):
    """The full-scale script's dry run (fft alone, digits at 16 px, one epoch) leaves a record and a summary under
    --out; a second attempt from a copy of that folder finds the run done and launches nothing."""
    first = _full_scale("--dry-run", "--methods", "fft", "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr[-2000:]
    rows = (tmp_path / "a" / "summary.tsv").read_text().splitlines()
    assert rows[0].startswith("method\tstatus") and rows[1].startswith("fft\tdone\t1\t"), rows
    second = _full_scale("--dry-run", "--methods", "fft", "--out", str(tmp_path / "b"), "--resume-from",
                         str(tmp_path / "a"))
    assert second.returncode == 0, second.stderr[-2000:]
    assert "1 done" in second.stdout, second.stdout
    # a relaunched run would have a new wall-clock: the same summary means the record was carried, not redone
    assert (tmp_path / "b" / "summary.tsv").read_text() == (tmp_path / "a" / "summary.tsv").read_text()


def test_full_scale_refuses_bad_arguments(tmp_path):
    assert _full_scale("--dry-run").returncode == 2  # no --out
    bad = _full_scale("--dry-run", "--out", str(tmp_path / "x"), "--methods", "nosuch")
    assert bad.returncode != 0 and "nosuch" in bad.stderr
    assert not (tmp_path / "x" / "runs").exists()  # nothing launched
    assert _full_scale("--dry-run", "--out", str(tmp_path / "y"), "--time-s", "soon").returncode == 2
