"""Distributional checks of the synthetic noise models on large seeded draws.

Symmetric noise spreads its flips uniformly over the other classes (chi-square), `sym-dividemix` over all classes;
IDN's per-sample flip rates follow Normal(rate, 0.1) truncated to [0, 1] (Kolmogorov-Smirnov), each sample flips
with its own rate, and a flip never lands on the true class. Seeds are fixed, so each test gives the same verdict on
every run; the significance level 1e-3 is what a correct model must clear. The mutants of tools/mutants.py (a class
never reached, a skewed offset, the true class allowed, another spread, one rate for all) fail these tests.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, chisquare, kstest, truncnorm

from lnlbench.noise import idn, inject_noise
from lnlbench.noise.base import NoiseInputs

ALPHA = 1e-3
C = 10


def clean_labels(per_class: int, num_classes: int = C) -> np.ndarray:
    """`per_class` samples of each class, shuffled."""
    return np.random.default_rng(11).permutation(np.repeat(np.arange(num_classes), per_class)).astype(np.int64)


def flip_counts(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C counts of (clean, noisy) pairs among the samples whose label changed."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    flipped = clean != noisy
    np.add.at(counts, (clean[flipped], noisy[flipped]), 1)
    return counts


@pytest.mark.parametrize("model", ["sym", "sym-dividemix"])
@pytest.mark.parametrize("num_classes", [3, 10])
def test_symmetric_flips_are_uniform_over_the_other_classes(model, num_classes):
    clean = clean_labels(4000, num_classes)
    noisy = inject_noise(model, clean, num_classes, 0.6, 2024).labels
    counts = flip_counts(clean, noisy, num_classes)
    assert np.trace(counts) == 0
    for c in range(num_classes):
        others = np.delete(counts[c], c)
        assert others.sum() > 1000
        assert chisquare(others).pvalue > ALPHA, (c, others)  # each other class equally likely
    off = counts[~np.eye(num_classes, dtype=bool)]
    assert chisquare(off).pvalue > ALPHA  # and the same across source classes


def test_sym_dividemix_redraws_hit_every_class_including_the_true_one():
    """Of the round(rate*N) redrawn labels a fraction 1/C lands back on the true class (binomial check)."""
    clean = clean_labels(4000)
    rate = 0.6
    noisy = inject_noise("sym-dividemix", clean, C, rate, 2024).labels
    redrawn = round(rate * len(clean))
    changed = int((noisy != clean).sum())
    assert binomtest(redrawn - changed, redrawn, 1 / C).pvalue > ALPHA
    assert inject_noise("sym", clean, C, rate, 2024).realized_rate == pytest.approx(rate)


@pytest.mark.parametrize("rate", [0.05, 0.4, 0.9])
def test_idn_flip_rates_follow_the_truncated_normal(rate):
    q = idn.flip_rates(rate, 20000, np.random.default_rng(3))
    assert q.min() >= 0.0 and q.max() <= 1.0
    law = truncnorm((0.0 - rate) / 0.1, (1.0 - rate) / 0.1, loc=rate, scale=0.1)
    assert kstest(q, law.cdf).pvalue > ALPHA
    if rate == 0.05:  # near the boundary the truncation matters: the plain normal would put ~31% below zero
        assert kstest(q, "norm", args=(rate, 0.1)).pvalue < ALPHA


def test_idn_draws_its_per_sample_rates_from_flip_rates(monkeypatch):
    """IDN asks `flip_rates` for one rate per sample at the requested rate, and flips each sample with its own rate."""
    per_class = 600
    clean = clean_labels(per_class)
    n = len(clean)
    images = np.random.default_rng(4).integers(0, 256, size=(n, 3, 4, 4), dtype=np.uint8)
    groups = np.arange(n) % 3  # rate 0, 0.3 and 1 in turn
    q = np.array([0.0, 0.3, 1.0])[groups]
    asked: list[tuple[float, int]] = []

    def fixed_rates(rate: float, count: int, rng: np.random.Generator) -> np.ndarray:
        asked.append((rate, count))
        rng.random(count)  # keep the generator's stream where the real draw leaves it
        return q.copy()

    monkeypatch.setattr(idn, "flip_rates", fixed_rates)
    noisy = idn.instance_dependent(clean, C, 0.25, np.random.default_rng(5), NoiseInputs(images=images))
    assert asked == [(0.25, n)]
    flipped = noisy != clean
    assert not flipped[groups == 0].any()  # rate 0: never flipped
    assert flipped[groups == 2].all()  # rate 1: always flipped, and never "flipped" onto the true class
    middle = groups == 1
    assert binomtest(int(flipped[middle].sum()), int(middle.sum()), 0.3).pvalue > ALPHA
    targets = flip_counts(clean, noisy, C)
    assert np.trace(targets) == 0 and (targets.sum(1) > 0).all()


@pytest.mark.parametrize("rate", [0.3, 0.9])
def test_idn_never_flips_to_the_true_class_and_flips_at_the_mean_rate(rate):
    clean = clean_labels(500)
    images = np.random.default_rng(8).integers(0, 256, size=(len(clean), 3, 8, 8), dtype=np.uint8)
    noisy = inject_noise("idn", clean, C, rate, 0, images=images)
    expected = truncnorm(-rate / 0.1, (1 - rate) / 0.1, loc=rate, scale=0.1).mean()
    # every drawn flip changes the label, so the realized rate is a binomial draw at the truncated normal's mean
    assert binomtest(int(round(noisy.realized_rate * len(clean))), len(clean), expected).pvalue > ALPHA
    assert np.trace(flip_counts(clean, noisy.labels, C)) == 0
