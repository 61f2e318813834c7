"""Batched augmentations: the geometry of the crop grid, and per-sample randomness independent of the ranks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainers.augment import BatchRandom, DINOAugment, SimCLRAugment, random_resized_crop


def test_full_crop_is_a_resize_and_flip_mirrors():
    x = torch.rand(3, 1, 8, 8)
    rng = BatchRandom(0, 0, 3, 0, 3)
    full = random_resized_crop(x, 16, rng, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)
    torch.testing.assert_close(full, F.interpolate(x, size=16, mode="bilinear", align_corners=False))
    flipped = random_resized_crop(
        x, 8, BatchRandom(0, 0, 3, 0, 3), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0
    )
    torch.testing.assert_close(flipped, x.flip(-1))


def test_small_crops_zoom_in():
    # A crop of 1/16 of the area around the centre of a horizontal ramp spans a quarter of its values.
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 1, 64, 64)
    rng = BatchRandom(0, 0, 1, 0, 1)
    crop = random_resized_crop(ramp, 16, rng, scale=(1 / 16, 1 / 16), ratio=(1.0, 1.0), flip_p=0.0)
    assert 0.2 < float(crop.max() - crop.min()) < 0.3


def test_a_sample_gets_the_same_views_on_any_rank():
    torch.manual_seed(0)
    images = torch.rand(6, 3, 8, 8)
    augment = SimCLRAugment(16, (0.5,) * 3, (0.25,) * 3)
    one = augment(images, BatchRandom(seed=3, step=7, global_size=6, start=0, stop=6))
    ranks = [augment(images[i : i + 3], BatchRandom(3, 7, 6, i, i + 3)) for i in (0, 3)]
    torch.testing.assert_close(torch.cat(ranks), one)
    # Different samples and different steps get different views.
    assert not torch.allclose(one[0], one[1])
    other_step = augment(images, BatchRandom(seed=3, step=8, global_size=6, start=0, stop=6))
    assert not torch.allclose(one, other_step)


def test_dino_multicrop_sizes():
    views = DINOAugment(16, 8, (0.5,), (0.5,), n_local=3)(torch.rand(4, 1, 8, 8), BatchRandom(0, 0, 4, 0, 4))
    assert [v.shape[-1] for v in views] == [16, 16, 8, 8, 8]
    assert all(v.shape[:2] == (4, 1) for v in views)
