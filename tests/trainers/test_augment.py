"""Batched colour augmentations: per-sample randomness independent of the ranks (geometry: test_views.py)."""

from __future__ import annotations

import torch

from trainers.augment import BatchRandom, ColorAugment


def test_a_sample_gets_the_same_views_on_any_rank():
    torch.manual_seed(0)
    images = torch.rand(6, 3, 8, 8)
    augment = ColorAugment((0.5,) * 3, (0.25,) * 3)
    one = augment(images, BatchRandom(seed=3, step=7, global_size=6, start=0, stop=6))
    ranks = [augment(images[i : i + 3], BatchRandom(3, 7, 6, i, i + 3)) for i in (0, 3)]
    torch.testing.assert_close(torch.cat(ranks), one)
    # Different samples and different steps get different views.
    assert not torch.allclose(one[0], one[1])
    other_step = augment(images, BatchRandom(seed=3, step=8, global_size=6, start=0, stop=6))
    assert not torch.allclose(one, other_step)
