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
import torch.nn.functional as F

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
        return self._to_device(low + (high - low) * u)

    def bernoulli(self, p: float) -> torch.Tensor:
        """(B,) booleans, each True with probability ``p``."""
        return self.uniform(0.0, 1.0) < p

    def randint(self, high: int) -> torch.Tensor:
        """(B,) int64 uniform in [0, high)."""
        r = torch.randint(high, (self.global_size,), generator=self.generator)[self.start : self.stop]
        return self._to_device(r)

    def permutation(self, n: int) -> torch.Tensor:
        """One permutation of ``range(n)``, the same on every rank (MoCo's shuffle-BN)."""
        return self._to_device(torch.randperm(n, generator=self.generator))

    def _to_device(self, numbers: torch.Tensor) -> torch.Tensor:
        """The numbers drawn on the CPU, on ``device`` without waiting for it.

        A plain ``.to("cuda")`` from pageable memory waits for the GPU to finish all queued work (a colour
        pipeline draws ~100 times a step); from pinned memory the copy is queued behind that work instead, and
        PyTorch's pinned-memory cache keeps the buffer alive until the copy has run. On the CPU: the numbers.
        """
        if self.device.type == "cpu":
            return numbers
        if self.device.type == "cuda":
            numbers = numbers.pin_memory()
        return numbers.to(self.device, non_blocking=True)


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


_CONSTANTS: dict[tuple[tuple[float, ...], torch.device, torch.dtype], torch.Tensor] = {}


def _constant(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    """``like.new_tensor(values)``, made once per device and dtype: on a GPU each ``new_tensor`` is a blocking
    copy from host memory, and the colour ops need their weights at every call."""
    key = (values, like.device, like.dtype)
    if key not in _CONSTANTS:
        with torch.inference_mode(False):  # usable later with autograd, whatever mode made it first
            _CONSTANTS[key] = like.new_tensor(values)
    return _CONSTANTS[key]


#: torchvision's luma weights (``rgb_to_grayscale``, after TF's), used by every colour op here.
_LUMA = (0.2989, 0.587, 0.114)
#: The four ops of :func:`color_jitter`, in torchvision's numbering (``ColorJitter.get_params``' ``fn_idx``).
_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = range(4)


def _luma(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) grey level of RGB images; 1-channel images are their own grey level."""
    if images.shape[1] != 3:
        return images
    return (images * _constant(_LUMA, images).view(1, 3, 1, 1)).sum(1, keepdim=True)


def color_jitter(
    images: torch.Tensor,
    rng: BatchRandom,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
) -> torch.Tensor:
    """With probability ``p``: torchvision's ``ColorJitter``, with factors and op order drawn per sample.

    Brightness blends with black, contrast with the image's mean grey level (a scalar per image, so the mean
    stays and the spread around it scales), saturation with the image's grey version, hue rotates the HSV hue by
    ``U(-hue, hue)`` turns; each result is clipped to [0, 1]. Every sample applies the four ops in its own random
    order, as torchvision (``randperm(4)`` per image) and SimCLR's TF code (``color_jitter_rand``) do. On 1-channel
    images saturation and hue are identities (as torchvision), so brightness and contrast remain.
    """
    apply = rng.bernoulli(p)
    b = rng.uniform(max(0.0, 1 - brightness), 1 + brightness)
    c = rng.uniform(max(0.0, 1 - contrast), 1 + contrast)
    s = rng.uniform(max(0.0, 1 - saturation), 1 + saturation)
    h = rng.uniform(-hue, hue)
    order = torch.argsort(rng.uniform(0.0, 1.0, 4), dim=1)  # (B, 4): a uniform random permutation per sample
    out = _jitter(images, b, c, s, h, order)
    return _where(apply, out, images)


def _jitter(
    images: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    order: torch.Tensor,
) -> torch.Tensor:
    """Apply brightness ``b``, contrast ``c``, saturation ``s`` (factors) and hue ``h`` (turns), all (B,), to
    each sample in the order of its row of ``order`` (B, 4) (op ids as torchvision's ``fn_idx``).

    Brightness, contrast and saturation are one blend ``clip(f·x + (1 − f)·ref)``: one pass per position serves
    all three, each sample with its own op's factor and reference; hue is kept only on the samples whose op it is.
    """
    rgb = images.shape[1] == 3
    if not rgb:
        # Saturation and hue are identities on grey (as torchvision): only brightness vs contrast counts.
        order = order[(order == _BRIGHTNESS) | (order == _CONTRAST)].view(-1, 2)
    factors = torch.stack([b, c, s, torch.ones_like(h)], 1).to(images.dtype)  # (B, 4); hue: no blend
    x = images
    for position in range(order.shape[1]):
        op = order[:, position].view(-1, 1, 1, 1)
        f = factors.gather(1, order[:, position : position + 1]).view(-1, 1, 1, 1)
        keep = 1 - f
        grey = _luma(x)
        # f·x + (1 − f)·ref, ref = 0 (brightness), the mean grey level (contrast) or the grey image (saturation).
        out = torch.addcmul(keep * (op == _CONTRAST) * grey.mean((1, 2, 3), keepdim=True), x, f)
        if rgb:
            out.addcmul_(grey, keep * (op == _SATURATION))
        x = out.clamp_(0, 1)
        if rgb:
            x = _rotate_hue_where(x, h.to(x.dtype), order[:, position] == _HUE)
    return x


#: Devices where :func:`_rotate_hue_where` indexes the rotated samples: reading a mask costs nothing there.
MASKED_HUE_DEVICES = frozenset({"cpu"})


def _rotate_hue_where(x: torch.Tensor, turns: torch.Tensor, rotate: torch.Tensor) -> torch.Tensor:
    """The hue of the (B, 3, H, W) images ``x`` rotated by ``turns`` (B,) where ``rotate`` (B,) is set.

    On the CPU only the rotated samples are computed (``x[rotate]``: a quarter of the work per position). On a
    GPU every sample's hue is rotated and kept by ``torch.where``: ``x[rotate]`` (or ``if rotate.any()``) would
    wait for the GPU to say how many samples there are. Both give the same numbers per sample, bit for bit.
    """
    if x.device.type in MASKED_HUE_DEVICES:
        x[rotate] = _rotate_hue(x[rotate], turns[rotate])
        return x
    return _where(rotate, _rotate_hue(x, turns), x)


def _rotate_hue(rgb: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of (N, 3, H, W) RGB images by ``turns`` (N,), as torchvision's ``adjust_hue``.

    Value (the largest channel) and chroma (largest − smallest) stay; the hue h, in sixths of a turn, is the
    sector of the largest channel plus the offset inside it, and HSV → RGB is
    ``c = V − C·clip(min(k, 4 − k), 0, 1)`` with ``k = (n + h) mod 6``, n = 5, 3, 1 for R, G, B.
    """
    r, g, b = rgb.unbind(1)
    low, high = torch.aminmax(rgb, dim=1)
    chroma = high - low
    inv = 1 / torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    is_r, is_g = high == r, high == g
    diff = torch.where(is_r, g - b, torch.where(is_g, b - r, r - g))
    sector = torch.where(is_r, 0.0, torch.where(is_g, 2.0, 4.0))
    h = torch.remainder(torch.addcmul(sector + 6 * turns.view(-1, 1, 1), diff, inv), 6)
    k = torch.remainder(_constant((5.0, 3.0, 1.0), rgb).view(1, 3, 1, 1) + h[:, None], 6)
    return high[:, None] - chroma[:, None] * torch.minimum(k, 4 - k).clamp_(0, 1)


def random_grayscale(images: torch.Tensor, rng: BatchRandom, p: float = 0.2) -> torch.Tensor:
    """With probability ``p`` replace an RGB image by its luma (ITU-R 601-2, as torchvision); grey stays grey."""
    apply = rng.bernoulli(p)
    if images.shape[1] != 3:
        return images
    return _where(apply, _luma(images).expand_as(images), images)


BLUR_SIGMA = (0.1, 2.0)  # σ range of SimCLR's, BYOL's and DINO's blur, in pixels of a 224-px view


def gaussian_blur(
    images: torch.Tensor,
    rng: BatchRandom,
    p: float = 0.5,
    sigma: tuple[float, float] = BLUR_SIGMA,
    scale: float | None = None,
) -> torch.Tensor:
    """With probability ``p`` blur with σ ~ U(sigma) pixels of the papers' 224-px views, times ``scale``.

    ``scale`` is this batch's pixels per pixel of a 224-px view: by default ``side / 224`` (the same blur
    relative to the image). DINO blurs its 96-px local crops with σ in their own pixels, which are the global
    crops' pixels: pass ``global_side / 224`` for local crops to keep that; ``1.0`` takes σ in this batch's pixels.

    The kernel is the Gaussian integrated over each pixel, ``w_j = Φ((j + ½)/σ) − Φ((j − ½)/σ)``: the exact
    blur of pixels seen as little squares. A sampled Gaussian (torchvision, kornia) weighs a neighbour
    e^(−1/2σ²) of the centre, 3·10⁻⁴ at σ = 0.25 px, so the papers' blur at 28 px (σ ≤ 2·28/224 = 0.25 px)
    vanished; this kernel keeps it (2.3% of each pixel to each neighbour at 0.25 px). The radius is ⌈3σ_max⌉ ≥ 1
    pixels, never truncating σ (unlike SimCLR's kernel of 10% of the side), at most ``side − 1``; borders reflect.
    """
    apply = rng.bernoulli(p)
    n, ch, height, width = images.shape
    factor = min(height, width) / 224 if scale is None else scale
    s = rng.uniform(sigma[0] * factor, sigma[1] * factor).clamp(min=1e-3).to(images.dtype)
    radius = min(max(1, math.ceil(3 * sigma[1] * factor)), min(height, width) - 1)
    if radius < 1:
        return images
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    edges = torch.stack([offsets - 0.5, offsets + 0.5])[:, None, :] / (s.view(1, -1, 1) * math.sqrt(2))
    cdf = 0.5 * (1 + torch.erf(edges))  # (2, B, 2r + 1)
    w = cdf[1] - cdf[0]
    w = (w / w.sum(1, keepdim=True)).repeat_interleave(ch, 0)  # (B·C, 2r + 1): one kernel per sample
    # Separable depthwise convolution: every (sample, channel) plane is a group with its own kernel.
    x = images.reshape(1, n * ch, height, width)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), w.view(n * ch, 1, 1, -1), groups=n * ch)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), w.view(n * ch, 1, -1, 1), groups=n * ch)
    return _where(apply, x.view_as(images), images)


def solarize(images: torch.Tensor, rng: BatchRandom, p: float = 0.2, threshold: float = 0.5) -> torch.Tensor:
    """With probability ``p`` invert pixels above ``threshold`` (BYOL's and DINO's second view)."""
    apply = rng.bernoulli(p)
    out = torch.where(images >= threshold, 1.0 - images, images)
    return _where(apply, out, images)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x − mean) / std per channel."""
    m = _constant(tuple(mean), images).view(1, -1, 1, 1)
    s = _constant(tuple(std), images).view(1, -1, 1, 1)
    return (images - m) / s


class ColorAugment:
    """SimCLR's colour distortion (§3, App. A) of one view — colour jitter (strength ``s``), grayscale, Gaussian
    blur, optionally solarisation (BYOL's and DINO's asymmetric views) — then normalisation.

    Args:
        mean, std: Per-channel normalisation.
        jitter: Colour-distortion strength ``s``: brightness/contrast/saturation ``0.8s``, hue ``0.2s``.
        saturation: The saturation strength where a paper departs from ``0.8s``: BYOL (Table 6) and DINO
            (``DataAugmentationDINO``) jitter saturation by 0.2 beside brightness and contrast 0.4 (``0.4s``).
        jitter_p, gray_p, blur_p, solarize_p: Probabilities of each step.
        blur_scale: Pixels of this view per pixel of a 224-px view, for the blur's σ (see :func:`gaussian_blur`;
            default: the view's side / 224).
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
        blur_scale: float | None = None,
        saturation: float | None = None,
    ) -> None:
        self.mean, self.std = tuple(mean), tuple(std)
        self.jitter, self.jitter_p, self.gray_p = jitter, jitter_p, gray_p
        self.saturation = 0.8 * jitter if saturation is None else saturation
        self.blur_p, self.solarize_p, self.blur_scale = blur_p, solarize_p, blur_scale

    def describe(self, side: int, channels: int = 3) -> str:
        """The colour operations of a ``side``-px view in one line, σ of the blur in this view's pixels; on
        1-channel images saturation, hue and grayscale change nothing and are not listed."""
        s, parts = self.jitter, []
        if self.jitter_p > 0 and s > 0:
            same = abs(self.saturation - 0.8 * s) < 1e-12
            colour = (
                f"brightness, contrast, saturation {0.8 * s:g}"
                if same
                else (f"brightness, contrast {0.8 * s:g}, saturation {self.saturation:g}")
            )
            factors = (
                f"{colour}, hue {0.2 * s:g}"
                if channels > 1
                else f"brightness, contrast {0.8 * s:g}; saturation and hue do nothing to 1-channel images"
            )
            parts.append(
                f"colour jitter p {self.jitter_p:g} ({factors}; torchvision's operations, in random order)"
            )
        if self.gray_p > 0 and channels > 1:
            parts.append(f"grayscale p {self.gray_p:g}")
        if self.blur_p > 0:
            factor = side / 224 if self.blur_scale is None else self.blur_scale
            lo, hi = BLUR_SIGMA
            parts.append(
                f"Gaussian blur p {self.blur_p:g}, σ {lo * factor:.3g}–{hi * factor:.3g} px (the papers' "
                f"{lo:g}–{hi:g} px at 224 px; pixel-integrated kernel)"
            )
        if self.solarize_p > 0:
            parts.append(f"solarisation p {self.solarize_p:g}")
        return ", ".join(parts or ["no colour operations"]) + ", then normalised"

    def __call__(self, images: torch.Tensor, rng: BatchRandom) -> torch.Tensor:
        s = self.jitter
        x = color_jitter(images, rng, 0.8 * s, 0.8 * s, self.saturation, 0.2 * s, p=self.jitter_p)
        x = random_grayscale(x, rng, p=self.gray_p)
        x = gaussian_blur(x, rng, p=self.blur_p, scale=self.blur_scale)
        x = solarize(x, rng, p=self.solarize_p)
        return normalize(x, self.mean, self.std)
