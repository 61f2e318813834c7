"""Batched colour augmentations: per-sample randomness independent of the ranks, colour ops as torchvision's, and
a blur that still blurs at the trained size (geometry: test_views.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from _photos import GREY, _photo

from trainers.augment import BatchRandom, ColorAugment, color_jitter, gaussian_blur


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


# ---------------------------------------------------------------- photometric ops


def _small_photos(side: int = 28) -> torch.Tensor:
    """(6, 1, side, side) grey photographs (scikit-image's), squared and downscaled to the trained size."""
    out = []
    for name in GREY:
        image = _photo(name).convert("L")
        s = min(image.size)
        out.append(np.asarray(image.crop((0, 0, s, s)).resize((side, side), resample=3, reducing_gap=3.0)))
    return torch.tensor(np.stack(out)[:, None], dtype=torch.float32) / 255


@pytest.mark.parametrize("channels", [1, 3])
def test_jitter_is_torchvisions_colorjitter_with_per_sample_factors_and_order(channels):
    import torchvision.transforms.functional as TF

    from trainers.augment import _jitter

    g = torch.Generator().manual_seed(channels)
    x = torch.rand(24, channels, 12, 12, generator=g)
    b, c, s = (0.4 + 1.2 * torch.rand(24, generator=g) for _ in range(3))
    h = 0.2 * torch.rand(24, generator=g) - 0.1
    order = torch.tensor(list(itertools.permutations(range(4))))  # all 24 orders, one per sample
    ours = _jitter(x, b, c, s, h, order)
    ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for i in range(24):
        expected = x[i]
        for op in order[i].tolist():  # torchvision's ColorJitter.forward, with this sample's fn_idx
            expected = ops[op](expected, float((b, c, s, h)[op][i]))
        torch.testing.assert_close(ours[i], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_contrast_scales_the_spread_around_the_mean_grey_and_keeps_the_mean(channels):
    g = torch.Generator().manual_seed(0)
    x = 0.35 + 0.3 * torch.rand(16, channels, 8, 8, generator=g)  # mid-grey: a 1.4× spread is not clipped
    out = color_jitter(x, BatchRandom(0, 0, 16, 0, 16), brightness=0, contrast=0.4, saturation=0, hue=0, p=1)
    weights = (
        torch.tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1) if channels == 3 else torch.ones(1, 1, 1, 1)
    )
    mean = (x * weights).sum(1, keepdim=True).mean((1, 2, 3), keepdim=True)  # the mean grey level
    factor = (out - mean).flatten(1).norm(dim=1) / (x - mean).flatten(1).norm(dim=1)
    torch.testing.assert_close(out, mean + factor.view(-1, 1, 1, 1) * (x - mean), rtol=0, atol=1e-6)
    out_mean = (out * weights).sum(1, keepdim=True).mean((1, 2, 3), keepdim=True)
    # Kept to 1e-4: torchvision's luma weights sum to 0.9999, so grey is not exactly invariant.
    torch.testing.assert_close(out_mean, mean, rtol=0, atol=1e-4)
    assert 0.6 <= float(factor.min()) < 0.9 and 1.1 < float(factor.max()) <= 1.4  # U(0.6, 1.4), per sample


def test_jitter_order_is_a_random_permutation_per_sample(monkeypatch):
    import trainers.augment as augment

    seen = []
    original = augment._jitter
    monkeypatch.setattr(augment, "_jitter", lambda *a: seen.append(a[-1]) or original(*a))
    color_jitter(torch.rand(4800, 1, 2, 2), BatchRandom(0, 0, 4800, 0, 4800))
    (order,) = seen
    assert (order.sort(1).values == torch.arange(4)).all()
    counts = torch.stack([torch.bincount(order[:, i], minlength=4) for i in range(4)])  # (position, op)
    assert counts.min() > 1100 and counts.max() < 1300  # 1200 expected for each op at each position
    # Like every draw, the order of a sample is the same whichever rank it lands on.
    seen.clear()
    color_jitter(torch.rand(2400, 1, 2, 2), BatchRandom(0, 0, 4800, 2400, 4800))
    assert torch.equal(seen[0], order[2400:])


def test_blur_kernel_is_the_gaussian_integrated_over_each_pixel():
    from scipy.stats import norm

    impulse = torch.zeros(1, 1, 15, 15)
    impulse[0, 0, 7, 7] = 1.0
    sigma = 0.8
    out = gaussian_blur(impulse, BatchRandom(0, 0, 1, 0, 1), p=1.0, sigma=(sigma, sigma), scale=1.0)
    j = np.arange(-7, 8)
    w = norm.cdf((j + 0.5) / sigma) - norm.cdf((j - 0.5) / sigma)
    w[np.abs(j) > 3] = 0  # the radius is ⌈3σ⌉ = 3 pixels: 10⁻⁵ of the mass lies beyond
    w /= w.sum()
    torch.testing.assert_close(
        out[0, 0], torch.tensor(np.outer(w, w), dtype=torch.float32), rtol=0, atol=1e-6
    )


def test_blur_at_the_trained_size_removes_detail():
    """The papers' strongest blur (σ = 2 px of 224) at 28 px is 0.25 px: it must still soften real photos."""
    import torchvision.transforms.functional as TF

    def detail(y):  # energy of the discrete Laplacian: the highest spatial frequencies
        lap = (
            4 * y[..., 1:-1, 1:-1]
            - y[..., :-2, 1:-1]
            - y[..., 2:, 1:-1]
            - y[..., 1:-1, :-2]
            - y[..., 1:-1, 2:]
        )
        return lap.square().mean((1, 2, 3))

    x = _small_photos(28)
    blurred = gaussian_blur(x, BatchRandom(0, 0, 6, 0, 6), p=1.0, sigma=(2.0, 2.0))
    kept = detail(blurred) / detail(x)
    assert kept.max() < 0.93 and kept.mean() < 0.9  # 0.82–0.90: a tenth to a sixth of the detail gone
    # The sampled 3-tap Gaussian the recipes had before keeps > 99% of it: the blur had vanished.
    sampled = TF.gaussian_blur(x, [3, 3], [0.25, 0.25])
    assert (detail(sampled) / detail(x)).min() > 0.99
    # Off means off; and without the blur's probability, a sample stays as it was.
    assert torch.equal(gaussian_blur(x, BatchRandom(0, 0, 6, 0, 6), p=0.0), x)


def test_colour_augment_states_what_it_applies():
    from trainers.augment import ColorAugment

    byol2 = ColorAugment((0.5,) * 3, (0.5,) * 3, jitter=0.5, blur_p=0.1, solarize_p=0.2)
    text = byol2.describe(224, channels=3)
    assert "saturation 0.4, hue 0.1" in text and "grayscale p 0.2" in text and "solarisation p 0.2" in text
    assert "blur p 0.1, σ 0.1–2 px" in text  # at 224 px: the papers' σ as they state it
    # DINO's 96-px local crops of 224-px images blur with σ in their own pixels (scale 1), not 96/224 of them.
    local = ColorAugment((0.5,) * 3, (0.5,) * 3, blur_scale=1.0)
    assert "σ 0.1–2 px" in local.describe(96) and "σ 0.0429–0.857 px" in ColorAugment((0,), (1,)).describe(96)
    plain = ColorAugment((0.5,), (0.5,), jitter_p=0.0, gray_p=0.0, blur_p=0.0)
    assert plain.describe(28, channels=1) == "no colour operations, then normalised"


def test_hue_on_a_gpu_kept_by_torch_where_is_bitwise_the_cpus_masked_rotation(monkeypatch):
    # The GPU path rotates every sample and keeps the rotated ones with torch.where (no mask read back to the
    # host); the CPU path rotates only the samples whose op it is. Same numbers, rotated or not, bit for bit.
    from trainers import augment

    torch.manual_seed(0)
    images = torch.rand(37, 3, 9, 9)
    masked = color_jitter(images, BatchRandom(1, 5, 37, 0, 37), p=1.0)
    monkeypatch.setattr(augment, "MASKED_HUE_DEVICES", frozenset())
    where = color_jitter(images, BatchRandom(1, 5, 37, 0, 37), p=1.0)
    assert torch.equal(where, masked)
    rotate = torch.rand(37) < 0.3
    turns = torch.rand(37) - 0.5
    kept = augment._rotate_hue_where(images.clone(), turns, rotate)
    assert torch.equal(kept[~rotate], images[~rotate])
    assert torch.equal(kept[rotate], augment._rotate_hue(images[rotate], turns[rotate]))


def test_batch_random_gives_the_numbers_drawn_on_the_cpu():
    rng, ref = BatchRandom(3, 7, 10, 2, 6, device="cpu"), torch.Generator().manual_seed(3 * 1_000_003 + 7)
    assert torch.equal(rng.uniform(0.5, 1.5, 2), 0.5 + 1.0 * torch.rand(10, 2, generator=ref)[2:6])
    assert torch.equal(rng.randint(9), torch.randint(9, (10,), generator=ref)[2:6])
    assert torch.equal(rng.permutation(5), torch.randperm(5, generator=ref))
