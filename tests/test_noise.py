"""Noise models: realized statistics, determinism, user files and the on-disk cache (synthetic labels, no models)."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from scipy.stats import truncnorm

from lnlbench.errors import ConfigError, DataError
from lnlbench.noise import (
    CIFAR10_ASYM_MAP,
    NOISE_MODELS,
    NoiseCacheWarning,
    cached_noisy_labels,
    inject_noise,
    labels_sha256,
    read_asym_map,
    real_noisy_labels,
    realized_transition_matrix,
    superclass_map,
)
from lnlbench.noise import cache as cache_module

C = 10
PER_CLASS = 500
N = C * PER_CLASS


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    """10 classes x 500 samples, shuffled so class members are not contiguous."""
    return np.random.default_rng(123).permutation(np.repeat(np.arange(C), PER_CLASS)).astype(np.int64)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Small uint8 images (N x 3 x 8 x 8) for idn."""
    return np.random.default_rng(7).integers(0, 256, size=(N, 3, 8, 8), dtype=np.uint8)


def model_kwargs(model: str, images: np.ndarray, tmp_path) -> dict:
    """The extra inputs each model needs."""
    if model == "asym":
        return {"dataset_name": "cifar10"}
    if model == "idn":
        return {"images": images}
    if model == "file":
        path = tmp_path / "noisy.npy"
        np.save(path, np.arange(N, dtype=np.int64) % C)
        return {"path": path}
    return {}


def test_registry_lists_every_model_with_a_description():
    assert NOISE_MODELS.names() == [
        "asym", "cifar100n", "cifar10n", "file", "idn", "pairflip", "real", "sym", "sym-dividemix"
    ]
    for name in NOISE_MODELS:
        description = NOISE_MODELS.get(name).description
        assert description and "\n" not in description
    assert "excluded" in NOISE_MODELS.get("sym").description
    assert "included" in NOISE_MODELS.get("sym-dividemix").description


def test_unknown_model_lists_valid_names(clean):
    with pytest.raises(ConfigError, match="valid names: asym, cifar100n, cifar10n, file, idn, pairflip, real, sym, sym-dividemix"):
        inject_noise("gaussian", clean, C, 0.2, 0)


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.33, 0.5, 0.8, 1.0])
def test_sym_flips_exactly_the_rate_never_to_the_true_class(clean, rate):
    noisy = inject_noise("sym", clean, C, rate, 0)
    flipped = noisy.labels != clean
    assert flipped.sum() == math.floor(rate * N + 0.5)
    assert noisy.realized_rate == pytest.approx(rate, abs=0.5 / N)
    # every flipped label went somewhere else, and over many flips every other class is reached
    assert np.all(noisy.labels[flipped] != clean[flipped])
    if rate >= 0.5:
        for c in range(C):
            reached = set(noisy.labels[flipped & (clean == c)].tolist())
            assert reached == set(range(C)) - {c}


def test_sym_dividemix_realized_rate_is_rate_times_c_minus_one_over_c(clean):
    for rate in (0.2, 0.5, 0.8):
        noisy = inject_noise("sym-dividemix", clean, C, rate, 0)
        assert abs(noisy.realized_rate - rate * (C - 1) / C) <= 0.02
        assert noisy.realized_rate < inject_noise("sym", clean, C, rate, 0).realized_rate


@pytest.mark.parametrize("rate", [0.1, 0.45])
def test_pairflip_flips_each_class_exactly_to_the_next(clean, rate):
    noisy = inject_noise("pairflip", clean, C, rate, 3).labels
    for c in range(C):
        members = noisy[clean == c]
        assert np.count_nonzero(members != c) == math.floor(rate * PER_CLASS + 0.5)
        assert set(members[members != c].tolist()) <= {(c + 1) % C}


def test_asym_cifar10_flips_only_along_the_classic_map(clean):
    noisy = inject_noise("asym", clean, C, 0.4, 0, dataset_name="cifar10").labels
    for untouched in (0, 1, 6, 7, 8):  # airplane, automobile, frog, horse, ship
        assert np.all(noisy[clean == untouched] == untouched)
    expected = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}  # truck->automobile, bird->airplane, deer->horse, cat<->dog
    assert CIFAR10_ASYM_MAP == expected
    for src, dst in expected.items():
        members = noisy[clean == src]
        assert np.count_nonzero(members == dst) == 200
        assert np.count_nonzero(members == src) == 300


def test_superclass_map_cycles_within_each_superclass_in_index_order():
    assert superclass_map([1, 0, 1, 0, 1], 5) == {0: 2, 2: 4, 4: 0, 1: 3, 3: 1}
    assert superclass_map([0, 1, 1], 3) == {1: 2, 2: 1}  # a one-class superclass stays clean
    with pytest.raises(ConfigError, match="one coarse class per fine class"):
        superclass_map([0, 1], 3)


def test_asym_cifar100_stays_inside_superclasses():
    rng = np.random.default_rng(0)
    coarse = rng.permutation(np.repeat(np.arange(20), 5)).tolist()  # fine class -> superclass, scattered
    clean100 = np.repeat(np.arange(100), 20)
    noisy = inject_noise("asym", clean100, 100, 0.4, 0, dataset_name="cifar100", superclasses=coarse).labels
    coarse_array = np.asarray(coarse)
    assert np.all(coarse_array[noisy] == coarse_array[clean100])
    mapping = superclass_map(coarse, 100)
    for c in range(100):
        members = noisy[clean100 == c]
        assert np.count_nonzero(members == mapping[c]) == 8
        assert set(members.tolist()) == {c, mapping[c]}


def test_asym_needs_a_map_for_other_datasets(clean, tmp_path):
    with pytest.raises(ConfigError, match="pass asym_map"):
        inject_noise("asym", clean, C, 0.4, 0, dataset_name="folder")
    with pytest.raises(ConfigError, match="pass superclasses"):
        inject_noise("asym", clean, C, 0.4, 0, dataset_name="cifar100")
    with pytest.raises(ConfigError, match="outside \\[0, 10\\)"):
        inject_noise("asym", clean, C, 0.4, 0, asym_map={0: 10})
    with pytest.raises(ConfigError, match="to itself"):
        inject_noise("asym", clean, C, 0.4, 0, asym_map={4: 4})
    noisy = inject_noise("asym", clean, C, 0.5, 0, asym_map={0: 6}).labels
    assert np.count_nonzero(noisy != clean) == 250
    assert np.all(noisy[noisy != clean] == 6)
    # an explicit map wins over the dataset's built-in one
    explicit = inject_noise("asym", clean, C, 0.5, 0, dataset_name="cifar10", asym_map={0: 6}).labels
    assert np.array_equal(explicit, noisy)


def test_read_asym_map_from_json_and_csv(tmp_path):
    as_json = tmp_path / "map.json"
    as_json.write_text(json.dumps({"3": 5, "5": 3, "9": 1}))
    assert read_asym_map(as_json) == {3: 5, 5: 3, 9: 1}
    as_csv = tmp_path / "map.csv"
    as_csv.write_text("src,dst\n3,5\n5,3\n\n9,1\n")
    assert read_asym_map(as_csv) == {3: 5, 5: 3, 9: 1}
    plain = tmp_path / "plain.csv"
    plain.write_text("0,2\n")
    assert read_asym_map(plain) == {0: 2}


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("frac.json", '{"3": 5.5}', "not an integer"),
        ("bool.json", '{"3": true}', "not an integer"),
        ("list.json", "[[3, 5]]", "not an object"),
        ("broken.json", '{"3": ', "not valid JSON"),
        ("frac.csv", "3,5.5\n", "not an integer"),
        ("three.csv", "3,5,1\n", "not 2"),
        ("twice.csv", "3,5\n3,4\n", "twice"),
        ("empty.csv", "\n", "empty"),
    ],
)
def test_read_asym_map_rejects_bad_files(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        read_asym_map(path)
    assert name in str(info.value)


def test_read_asym_map_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_asym_map(tmp_path / "nope.json")


@pytest.mark.parametrize("model", ["sym", "sym-dividemix", "asym", "pairflip", "idn", "file"])
def test_transition_matrix_is_the_empirical_one(clean, images, tmp_path, model):
    noisy = inject_noise(model, clean, C, 0.4, 1, **model_kwargs(model, images, tmp_path))
    matrix = noisy.transition_matrix
    assert matrix.shape == (C, C) and matrix.dtype == np.float64
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    for i in range(C):
        members = noisy.labels[clean == i]
        for j in range(C):
            assert matrix[i, j] == pytest.approx(np.mean(members == j))
    assert noisy.realized_rate == pytest.approx(np.mean(noisy.labels != clean))


def test_transition_matrix_gives_empty_classes_an_identity_row():
    matrix = realized_transition_matrix([0, 0, 2], [1, 0, 2], 3)
    np.testing.assert_allclose(matrix, [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("model", ["sym", "sym-dividemix", "asym", "pairflip", "idn"])
def test_same_seed_same_labels_other_seed_other_labels(clean, images, tmp_path, model):
    kwargs = model_kwargs(model, images, tmp_path)
    first = inject_noise(model, clean, C, 0.4, 5, **kwargs)
    second = inject_noise(model, clean.copy(), C, 0.4, 5, **kwargs)
    assert first.sha256 == second.sha256 == labels_sha256(first.labels)
    assert np.array_equal(first.labels, second.labels)
    other = inject_noise(model, clean, C, 0.4, 6, **kwargs)
    assert other.sha256 != first.sha256
    assert np.count_nonzero(other.labels != first.labels) > 100


@pytest.mark.parametrize("model", ["sym", "sym-dividemix", "asym", "pairflip", "idn"])
def test_noise_ignores_the_global_random_state(clean, images, tmp_path, model):
    kwargs = model_kwargs(model, images, tmp_path)
    results = []
    for training_seed in (0, 1234):  # the training seed seeds every global generator
        random.seed(training_seed)
        np.random.seed(training_seed)
        torch.manual_seed(training_seed)
        results.append(inject_noise(model, clean, C, 0.4, 9, **kwargs).sha256)
        np.random.random(100)
        torch.rand(100)
    assert results[0] == results[1]


def test_labels_sha256_is_over_little_endian_int64():
    labels = np.array([3, 1, 2], dtype=np.int32)
    import hashlib

    assert labels_sha256(labels) == hashlib.sha256(np.array([3, 1, 2], dtype="<i8").tobytes()).hexdigest()
    assert labels_sha256(torch.tensor([3, 1, 2])) == labels_sha256(labels)


def test_idn_realized_rate_is_near_the_mean_rate(clean, images):
    for rate in (0.2, 0.4):
        noisy = inject_noise("idn", clean, C, rate, 0, images=images)
        assert abs(noisy.realized_rate - rate) <= 0.05
        # tighter: the truncated normal's mean, within ~3.5 binomial standard errors (flips never land on the
        # true class, so every drawn flip counts)
        expected = truncnorm(-rate / 0.1, (1 - rate) / 0.1, loc=rate, scale=0.1).mean()
        assert abs(noisy.realized_rate - expected) <= 0.025
    assert inject_noise("idn", clean, C, 0.0, 0, images=images).realized_rate == 0.0


def test_idn_flips_depend_on_the_images(clean, images):
    base = inject_noise("idn", clean, C, 0.4, 0, images=images).labels
    other_images = np.random.default_rng(99).integers(0, 256, size=images.shape, dtype=np.uint8)
    other = inject_noise("idn", clean, C, 0.4, 0, images=other_images).labels
    # same seed, so the same per-sample flip rates and draws: only the images differ
    assert np.count_nonzero(base != other) > 200
    # where a sample flips to depends on its image: one class's flips spread over several targets
    flipped = (base != clean) & (clean == 0)
    assert len(set(base[flipped].tolist())) >= 2


def test_idn_accepts_tensors_and_sequences_and_pools_large_images(clean):
    small = np.random.default_rng(3).integers(0, 256, size=(600, 3, 32, 32), dtype=np.uint8)
    labels = clean[:600]
    reference = inject_noise("idn", labels, C, 0.4, 0, images=small).labels
    assert np.array_equal(inject_noise("idn", labels, C, 0.4, 0, images=torch.from_numpy(small)).labels, reference)
    as_list = [torch.from_numpy(image) for image in small]
    assert np.array_equal(inject_noise("idn", labels, C, 0.4, 0, images=as_list).labels, reference)
    # 64 x 64 images made of 2 x 2 blocks average-pool back to the 32 x 32 ones
    large = small.repeat(2, axis=2).repeat(2, axis=3)
    assert np.array_equal(inject_noise("idn", labels, C, 0.4, 0, images=large).labels, reference)


def test_idn_needs_matching_images(clean, images):
    with pytest.raises(ConfigError, match="pass images"):
        inject_noise("idn", clean, C, 0.4, 0)
    with pytest.raises(ConfigError, match="999 images for 5000 labels"):
        inject_noise("idn", clean, C, 0.4, 0, images=images[:999])
    with pytest.raises(ConfigError, match="uint8"):
        inject_noise("idn", clean, C, 0.4, 0, images=images.astype(np.int32))


def write_labels(tmp_path, suffix: str, labels: np.ndarray, header: str | None = None):
    path = tmp_path / f"noisy{suffix}"
    if suffix == ".npy":
        np.save(path, labels)
    elif suffix == ".pt":
        torch.save(torch.as_tensor(np.array(labels)), path)
    else:
        lines = ([header] if header else []) + [str(v) for v in labels.tolist()]
        path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".csv"])
def test_file_model_reads_each_format(clean, tmp_path, suffix):
    stored = inject_noise("sym", clean, C, 0.3, 4).labels
    path = write_labels(tmp_path, suffix, np.asarray(stored))
    noisy = inject_noise("file", clean, C, 0.0, 0, path=path)
    assert np.array_equal(noisy.labels, stored)
    assert noisy.realized_rate == pytest.approx(0.3)
    # the rate is ignored, even one outside [0, 1]
    assert inject_noise("file", clean, C, 7.0, 0, path=path).sha256 == noisy.sha256
    assert inject_noise("file", clean, C, None, 0, path=path).rate is None


def test_file_model_reads_csv_columns_and_pt_dicts(clean, tmp_path):
    stored = np.array(inject_noise("pairflip", clean, C, 0.3, 4).labels)
    with_header = write_labels(tmp_path, ".csv", stored, header="label")
    assert np.array_equal(inject_noise("file", clean, C, 0.3, 0, path=with_header).labels, stored)
    table = tmp_path / "table.csv"
    rows = [f"{i},{c},{n}" for i, (c, n) in enumerate(zip(clean.tolist(), stored.tolist()))]
    table.write_text("index,clean_label,noisy_label\n" + "\n".join(rows) + "\n")
    assert np.array_equal(inject_noise("file", clean, C, 0.3, 0, path=table).labels, stored)
    as_dict = tmp_path / "dict.pt"
    torch.save({"noisy_label": torch.as_tensor(stored), "clean_label": torch.as_tensor(clean)}, as_dict)
    assert np.array_equal(inject_noise("file", clean, C, 0.3, 0, path=as_dict).labels, stored)


@pytest.mark.parametrize("suffix", [".npy", ".pt", ".csv"])
def test_file_model_rejects_wrong_length_and_range(clean, tmp_path, suffix):
    short = write_labels(tmp_path, suffix, np.asarray(clean[:-1]))
    with pytest.raises(DataError, match="hold 4999 labels but the training set has 5000") as info:
        inject_noise("file", clean, C, 0.0, 0, path=short)
    assert str(short) in str(info.value)
    wide = np.asarray(clean).copy()
    wide[17] = C
    out_of_range = write_labels(tmp_path, suffix, wide)
    with pytest.raises(DataError, match="label 10, outside \\[0, 10\\)"):
        inject_noise("file", clean, C, 0.0, 0, path=out_of_range)
    wide[17] = -1
    negative = write_labels(tmp_path, suffix, wide)
    with pytest.raises(DataError, match="label -1"):
        inject_noise("file", clean, C, 0.0, 0, path=negative)


def test_file_model_rejects_non_integer_labels(clean, tmp_path):
    as_float = tmp_path / "float.npy"
    np.save(as_float, clean.astype(np.float32))
    with pytest.raises(DataError, match="float32, not an integer type"):
        inject_noise("file", clean, C, 0.0, 0, path=as_float)
    as_float_pt = tmp_path / "float.pt"
    torch.save(torch.as_tensor(clean, dtype=torch.float32), as_float_pt)
    with pytest.raises(DataError, match="not an integer type"):
        inject_noise("file", clean, C, 0.0, 0, path=as_float_pt)
    text = tmp_path / "frac.csv"
    text.write_text("1\n2.5\n3\n")
    with pytest.raises(DataError, match="line 2: '2.5' is not an integer"):
        inject_noise("file", clean, C, 0.0, 0, path=text)
    unnamed = tmp_path / "unnamed.csv"
    unnamed.write_text("target\n1\n")
    with pytest.raises(DataError, match="without a label column"):
        inject_noise("file", clean, C, 0.0, 0, path=unnamed)


def test_file_model_rejects_missing_unreadable_or_unknown_files(clean, tmp_path):
    with pytest.raises(ConfigError, match="needs a file"):
        inject_noise("file", clean, C, 0.0, 0)
    with pytest.raises(ConfigError, match="does not exist"):
        inject_noise("file", clean, C, 0.0, 0, path=tmp_path / "absent.npy")
    other = tmp_path / "labels.txt"
    other.write_text("1\n")
    with pytest.raises(ConfigError, match="suffix '.txt'"):
        inject_noise("file", clean, C, 0.0, 0, path=other)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"not numpy")
    with pytest.raises(DataError, match="numpy.save"):
        inject_noise("file", clean, C, 0.0, 0, path=garbage)
    garbage_pt = tmp_path / "garbage.pt"
    garbage_pt.write_bytes(b"not torch")
    with pytest.raises(DataError, match="torch.save"):
        inject_noise("file", clean, C, 0.0, 0, path=garbage_pt)


@pytest.mark.parametrize("model", ["sym", "sym-dividemix", "asym", "pairflip", "idn"])
@pytest.mark.parametrize("rate", [1.5, -0.1, float("nan")])
def test_rate_outside_unit_interval_is_an_error(clean, model, rate):
    with pytest.raises(ConfigError, match="outside \\[0, 1\\]; pass a fraction such as 0.4"):
        inject_noise(model, clean, C, rate, 0, dataset_name="cifar10")


def test_rate_error_message_names_the_value(clean):
    with pytest.raises(ConfigError) as info:
        inject_noise("sym", clean, C, 1.5, 0)
    assert str(info.value) == "rate 1.5 is outside [0, 1]; pass a fraction such as 0.4"
    with pytest.raises(ConfigError, match="not a number"):
        inject_noise("sym", clean, C, "0.4", 0)
    with pytest.raises(ConfigError, match="non-negative integer"):
        inject_noise("sym", clean, C, 0.4, -1)


def test_bad_clean_labels_are_a_data_error():
    with pytest.raises(DataError, match="label 10"):
        inject_noise("sym", np.array([0, 10]), C, 0.4, 0)
    with pytest.raises(DataError, match="1-D"):
        inject_noise("sym", np.zeros((2, 2), dtype=np.int64), C, 0.4, 0)


def test_record_is_read_only_and_serialises(clean):
    noisy = inject_noise("sym", torch.as_tensor(clean), C, 0.5, 0)
    assert noisy.labels.dtype == np.int64 and noisy.labels.shape == (N,)
    with pytest.raises(ValueError):
        noisy.labels[0] = 1
    tensor = noisy.labels_tensor()
    assert tensor.dtype == torch.int64 and tensor.tolist() == noisy.labels.tolist()
    record = json.loads(json.dumps(noisy.to_json()))
    assert set(record) == {
        "model", "rate", "seed", "realized_rate", "labels_sha256", "transition_matrix", "num_classes", "n"
    }
    assert record["model"] == "sym" and record["rate"] == 0.5 and record["seed"] == 0 and record["n"] == N
    assert record["labels_sha256"] == noisy.sha256 and record["num_classes"] == C
    np.testing.assert_allclose(record["transition_matrix"], noisy.transition_matrix, atol=5e-7)
    assert all(len(f"{v}".split(".")[-1]) <= 6 for row in record["transition_matrix"] for v in row)


def test_real_noisy_labels_with_and_without_clean(clean):
    shipped = np.asarray(inject_noise("sym", clean, C, 0.25, 2).labels)
    known = real_noisy_labels(clean, shipped, C)
    assert known.model == "real" and known.rate is None and known.seed is None
    assert known.realized_rate == pytest.approx(0.25)
    unknown = real_noisy_labels(None, known.labels_tensor(), C)
    assert unknown.transition_matrix is None and unknown.realized_rate is None and unknown.clean_labels is None
    assert unknown.sha256 == known.sha256
    assert json.loads(json.dumps(unknown.to_json()))["transition_matrix"] is None
    with pytest.raises(DataError, match="label 10"):
        real_noisy_labels(None, [0, 10], C)


def cache_files(cache_dir):
    return sorted(str(p.relative_to(cache_dir)) for p in cache_dir.rglob("*") if p.is_file())


def test_cache_second_call_loads_the_same_labels(clean, tmp_path, monkeypatch):
    first = cached_noisy_labels(tmp_path, "toy", "sym", clean, C, 0.4, 0)
    assert first.sha256 == inject_noise("sym", clean, C, 0.4, 0).sha256
    files = cache_files(tmp_path)
    assert f"noise/{first.sha256}.npy" in files and len(files) == 2
    assert not any(".tmp" in name for name in files)

    def must_not_generate(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(cache_module, "inject_noise", must_not_generate)
    second = cached_noisy_labels(tmp_path, "toy", "sym", clean, C, 0.4, 0)
    assert second.sha256 == first.sha256 and np.array_equal(second.labels, first.labels)
    np.testing.assert_array_equal(second.transition_matrix, first.transition_matrix)
    with pytest.raises(AssertionError, match="cache should have been used"):  # another request is not a hit
        cached_noisy_labels(tmp_path, "toy", "sym", clean, C, 0.4, 1)


def test_cache_keys_separate_requests(clean, tmp_path, images):
    a = cached_noisy_labels(tmp_path, "toy", "sym", clean, C, 0.4, 0)
    b = cached_noisy_labels(tmp_path, "other-dataset", "sym", clean, C, 0.4, 0)
    c = cached_noisy_labels(tmp_path, "toy", "asym", clean, C, 0.4, 0, asym_map={0: 1})
    d = cached_noisy_labels(tmp_path, "toy", "asym", clean, C, 0.4, 0, asym_map={0: 2})
    assert a.sha256 == b.sha256 and c.sha256 != d.sha256
    assert len(list((tmp_path / "noise" / "index").glob("*.json"))) == 4
    # a noise file whose content changes is a new request
    path = tmp_path / "labels.npy"
    np.save(path, np.asarray(a.labels))
    assert cached_noisy_labels(tmp_path, "toy", "file", clean, C, 0.0, 0, path=path).sha256 == a.sha256
    np.save(path, np.asarray(d.labels))
    assert cached_noisy_labels(tmp_path, "toy", "file", clean, C, 0.0, 0, path=path).sha256 == d.sha256


@pytest.mark.parametrize("damage", ["truncate", "flip", "index"])
def test_corrupt_cache_is_regenerated_with_a_warning(clean, tmp_path, damage):
    first = cached_noisy_labels(tmp_path, "toy", "pairflip", clean, C, 0.3, 0)
    labels_file = tmp_path / "noise" / f"{first.sha256}.npy"
    (index_file,) = (tmp_path / "noise" / "index").glob("*.json")
    if damage == "truncate":
        labels_file.write_bytes(labels_file.read_bytes()[:100])
    elif damage == "flip":
        bad = np.asarray(first.labels).copy()
        bad[0] = (bad[0] + 1) % C
        np.save(labels_file, bad)
    else:
        index_file.write_text("{not json")
    with pytest.warns(NoiseCacheWarning, match="regenerating"):
        again = cached_noisy_labels(tmp_path, "toy", "pairflip", clean, C, 0.3, 0)
    assert again.sha256 == first.sha256
    assert labels_sha256(np.load(labels_file)) == first.sha256  # repaired on disk
    assert json.loads(index_file.read_text())["labels_sha256"] == first.sha256
    assert not any(".tmp" in name for name in cache_files(tmp_path))


def test_failed_write_leaves_no_files(clean, tmp_path, monkeypatch):
    def broken_save(handle, array):
        handle.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(cache_module.np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cached_noisy_labels(tmp_path, "toy", "sym", clean, C, 0.4, 0)
    assert cache_files(tmp_path) == []
