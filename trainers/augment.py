"""Batched colour augmentations on the device, with per-sample randomness drawn from :class:`BatchRandom`.

The geometric part of a view (random resized crop, flip) is cut per sample from the full-resolution image in
DataLoader workers (:mod:`trainers.views`); what arrives here is a batch ``(B, C, S, S)`` of floats in [0, 1] at the
view's final size. Every function draws its random parameters for the whole *global* batch from one generator
seeded by ``(seed, step)``, then keeps this rank's rows: a sample gets the same colours whether it is trained on one
process or on rank 1 of four, and a resumed run draws the same numbers as an uninterrupted one.

>>> import torch
>>> rng = BatchRandom(seed=0, step=0, global_size=4, start=0, stop=4)
>>> ColorAugment(mean=(0.5,), std=(0.25,))(torch.rand(4, 1, 8, 8), rng).shape
torch.Size([4, 1, 8, 8])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "BatchRandom",
    "ColorAugment",
    "color_jitter",
    "gaussian_blur",
    "normalize",
    "random_grayscale",
    "solarize",
]


class BatchRandom:
    """Per-sample random numbers for one global batch, seeded by ``(seed, step)``, sliced to rows ``start:stop``.

    Args:
        seed: The run's seed.
        step: The global step (so each step draws fresh numbers, reproducibly).
        global_size: Samples in the global batch (all ranks).
        start, stop: This rank's rows of the global batch.
        device: Where returned tensors live.
    """

    def __init__(
        self,
        seed: int,
        step: int,
        global_size: int,
        start: int,
        stop: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.generator = torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63))
        self.global_size, self.start, self.stop = global_size, start, stop
        self.device = torch.device(device)

    def __len__(self) -> int:
        return self.stop - self.start

    def uniform(self, low: float, high: float, *shape: int) -> torch.Tensor:
        """(B, *shape) floats uniform in [low, high)."""
        u = torch.rand(self.global_size, *shape, generator=self.generator)[self.start : self.stop]
        return (low + (high - low) * u).to(self.device)

    def bernoulli(self, p: float) -> torch.Tensor:
        """(B,) booleans, each True with probability ``p``."""
        return self.uniform(0.0, 1.0) < p

    def randint(self, high: int) -> torch.Tensor:
        """(B,) int64 uniform in [0, high)."""
        r = torch.randint(high, (self.global_size,), generator=self.generator)[self.start : self.stop]
        return r.to(self.device)

    def permutation(self, n: int) -> torch.Tensor:
        """One permutation of ``range(n)``, the same on every rank (MoCo's shuffle-BN)."""
        return torch.randperm(n, generator=self.generator).to(self.device)


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


def color_jitter(
    images: torch.Tensor,
    rng: BatchRandom,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
) -> torch.Tensor:
    """With probability ``p``: brightness, contrast, saturation and hue factors, each drawn per sample.

    Applied in a fixed order (torchvision shuffles it). Saturation and hue only apply to RGB images.
    """
    import kornia.enhance as K

    apply = rng.bernoulli(p)
    b = rng.uniform(1 - brightness, 1 + brightness)
    c = rng.uniform(1 - contrast, 1 + contrast)
    s = rng.uniform(1 - saturation, 1 + saturation)
    h = rng.uniform(-hue, hue) * 2 * math.pi  # kornia's hue is an angle in radians
    out = (images * b.view(-1, 1, 1, 1)).clamp(0, 1)
    out = K.adjust_contrast(out, c)
    if images.shape[1] == 3:
        out = K.adjust_saturation(out, s).clamp(0, 1)
        out = K.adjust_hue(out, h).clamp(0, 1)
    return _where(apply, out, images)


def random_grayscale(images: torch.Tensor, rng: BatchRandom, p: float = 0.2) -> torch.Tensor:
    """With probability ``p`` replace an RGB image by its luma (ITU-R 601-2, as torchvision); grey stays grey."""
    apply = rng.bernoulli(p)
    if images.shape[1] != 3:
        return images
    weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    gray = (images * weights).sum(1, keepdim=True).expand_as(images)
    return _where(apply, gray, images)


def gaussian_blur(
    images: torch.Tensor, rng: BatchRandom, p: float = 0.5, sigma: tuple[float, float] = (0.1, 2.0)
) -> torch.Tensor:
    """With probability ``p`` blur with σ ~ U(sigma) (in pixels of a 224-px image, scaled to this size).

    The kernel spans 10% of the image side (SimCLR §B.9), at least 3 pixels.
    """
    import kornia.filters as KF

    apply = rng.bernoulli(p)
    side = images.shape[-1]
    factor = side / 224
    s = rng.uniform(sigma[0] * factor, sigma[1] * factor).clamp(min=1e-3)
    k = max(3, int(0.1 * side) // 2 * 2 + 1)
    blurred = KF.gaussian_blur2d(images, (k, k), torch.stack([s, s], -1), border_type="reflect")
    return _where(apply, blurred, images)


def solarize(images: torch.Tensor, rng: BatchRandom, p: float = 0.2, threshold: float = 0.5) -> torch.Tensor:
    """With probability ``p`` invert pixels above ``threshold`` (BYOL's and DINO's second view)."""
    apply = rng.bernoulli(p)
    out = torch.where(images >= threshold, 1.0 - images, images)
    return _where(apply, out, images)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x − mean) / std per channel."""
    m = images.new_tensor(mean).view(1, -1, 1, 1)
    s = images.new_tensor(std).view(1, -1, 1, 1)
    return (images - m) / s


class ColorAugment:
    """SimCLR's colour distortion (§3, App. A) of one view — colour jitter (strength ``s``), grayscale, Gaussian
    blur, optionally solarisation (BYOL's and DINO's asymmetric views) — then normalisation.

    Args:
        mean, std: Per-channel normalisation.
        jitter: Colour-distortion strength ``s``: brightness/contrast/saturation ``0.8s``, hue ``0.2s``.
        jitter_p, gray_p, blur_p, solarize_p: Probabilities of each step.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        jitter: float = 0.5,
        jitter_p: float = 0.8,
        gray_p: float = 0.2,
        blur_p: float = 0.5,
        solarize_p: float = 0.0,
    ) -> None:
        self.mean, self.std = tuple(mean), tuple(std)
        self.jitter, self.jitter_p, self.gray_p = jitter, jitter_p, gray_p
        self.blur_p, self.solarize_p = blur_p, solarize_p

    def __call__(self, images: torch.Tensor, rng: BatchRandom) -> torch.Tensor:
        s = self.jitter
        x = color_jitter(images, rng, 0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=self.jitter_p)
        x = random_grayscale(x, rng, p=self.gray_p)
        x = gaussian_blur(x, rng, p=self.blur_p)
        x = solarize(x, rng, p=self.solarize_p)
        return normalize(x, self.mean, self.std)
