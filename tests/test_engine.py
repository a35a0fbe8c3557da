"""Engine primitives: augmentation scaled to the image, deterministic batching and seeds."""

from __future__ import annotations

import torch

from lnlbench import engine


def test_crop_padding_scales_with_the_image():
    assert engine.crop_padding(32) == 4  # the CIFAR recipe
    assert engine.crop_padding(8) == 1  # digits: 4 px would shift them by half their width
    assert engine.crop_padding(256) == 32


def test_augmented_batch_keeps_small_digits_mostly_in_view():
    images = torch.zeros(64, 3, 8, 8, dtype=torch.uint8)
    images[:, :, 2:6, 2:6] = 255  # a 4 x 4 blob in the middle
    batcher = engine.ImageBatcher(images, torch.device("cpu"), 8, (0.5,) * 3, (0.5,) * 3, channels_last=False)
    out = batcher.uint8(torch.arange(64))
    from lnlbench.data.transforms import augment

    shifted = augment(out, torch.Generator().manual_seed(0), pad=engine.crop_padding(8))
    kept = (shifted[:, 0] == 255).sum(dim=(1, 2))
    assert int(kept.min()) >= 9  # at most one pixel of shift: at least 3 x 3 of the blob stays


def test_index_batches_cover_every_index_once_in_a_seeded_order():
    idx = torch.arange(10)
    a = torch.cat(list(engine.index_batches(idx, 3, engine.generator(0, "x"))))
    b = torch.cat(list(engine.index_batches(idx, 3, engine.generator(0, "x"))))
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(10))
    assert not torch.equal(a, torch.cat(list(engine.index_batches(idx, 3, engine.generator(1, "x")))))


def test_derived_seeds_are_stable_and_distinct():
    assert engine.derive_seed(0, "a", 1) == engine.derive_seed(0, "a", 1)
    assert engine.derive_seed(0, "a", 1) != engine.derive_seed(0, "a", 2)
