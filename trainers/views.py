"""The geometric part of every view, cut per sample from the full-resolution image (in DataLoader workers).

A method declares its views as :class:`CropSpec` s — output side, area scale, aspect ratio, flip, interpolation —
e.g. DINO's ``2 × CropSpec(224, (0.4, 1))`` + ``10 × CropSpec(96, (0.05, 0.4))``. For each sample,
:func:`render_crops` draws every crop box from one generator seeded by ``(seed, epoch, index)`` — so the views
of a sample do not depend on the worker, the rank or a resume — then decodes the image once, at the smallest
JPEG draft scale (1/2, 1/4, 1/8) that still gives every crop at least its output resolution, and cuts each crop
with one antialiased ``resize(box=...)``. The crops leave the worker as uint8 ``(C, S, S)`` arrays; colour
operations run batched on the device (:mod:`trainers.augment`).

Small equal-sized images held in memory (Fashion-MNIST, digits) take a batched path with the very same boxes and
flips: :func:`render_crops_batch` cuts a whole batch with one ``torchvision.ops.roi_align`` per view (bilinear,
averaging over each output pixel's footprint as an antialiased resize does) instead of 2 PIL calls per crop.

Crop boxes follow torchvision's ``RandomResizedCrop.get_params`` (10 tries of area × log-uniform aspect ratio,
then a centre crop of the clamped ratio), the sampler every paper of the design document used.

>>> from PIL import Image
>>> image = Image.new("RGB", (400, 300))
>>> crops = render_crops(image, [CropSpec(224), CropSpec(96, (0.05, 0.4))], sample_rng(0, 0, 7), channels=3)
>>> [c.shape for c in crops]
[(3, 224, 224), (3, 96, 96)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoo.imaging import to_channels

__all__ = [
    "CropSpec",
    "EvalSpec",
    "crop_box",
    "render_crops",
    "render_crops_batch",
    "render_eval",
    "render_eval_batch",
    "sample_rng",
]

_INTERPOLATION = {"bilinear": 2, "bicubic": 3}  # PIL.Image.Resampling values, without importing PIL here


@dataclass(frozen=True)
class CropSpec:
    """One random view: a crop of ``scale`` × the image area, aspect ratio in ``ratio``, resized to ``size``.

    Attributes:
        size: Output side in pixels.
        scale: Range of the crop's area as a fraction of the image's.
        ratio: Range of the crop's aspect ratio (width / height), sampled log-uniformly.
        flip: Probability of a horizontal flip.
        interpolation: ``bilinear`` (SimCLR, MoCo, BYOL) or ``bicubic`` (DINO).
    """

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    interpolation: str = "bilinear"

    def describe(self) -> str:
        """One line, as a card states it: ``28-px crop of 20–100% of the area, aspect 0.75–1.33, bilinear, …``."""
        lo, hi = (100 * v for v in self.scale)
        return (
            f"{self.size}-px crop of {lo:g}–{hi:g}% of the area, aspect {self.ratio[0]:.2f}–{self.ratio[1]:.2f}, "
            f"{self.interpolation}, horizontal flip p {self.flip:g}"
        )


@dataclass(frozen=True)
class EvalSpec:
    """The evaluation view: the centre square of ``crop_pct`` × the shorter side, resized to ``size``.

    Equals ``Resize(size / crop_pct)`` + ``CenterCrop(size)`` (ImageNet's 256 → 224 is ``crop_pct=0.875``).
    """

    size: int
    crop_pct: float = 1.0
    interpolation: str = "bilinear"


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's views: a function of ``(seed, epoch, index)`` only."""
    return np.random.Generator(np.random.PCG64([seed, epoch, index]))


def crop_box(width: int, height: int, spec: CropSpec, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``(left, top, w, h)`` of a random resized crop, as torchvision's ``RandomResizedCrop.get_params``."""
    area = width * height
    log_ratio = (math.log(spec.ratio[0]), math.log(spec.ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*spec.scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    # Fallback: the whole image, cropped centrally to the nearest allowed aspect ratio.
    in_ratio = width / height
    if in_ratio < min(spec.ratio):
        w, h = width, round(width / min(spec.ratio))
    elif in_ratio > max(spec.ratio):
        w, h = round(height * max(spec.ratio)), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def _draft(image: Any, needed: float, channels: int) -> tuple[float, float]:
    """Decode a JPEG at 1/2, 1/4 or 1/8 scale when every crop still gets ``needed`` ≥ its output pixels.

    ``needed`` is the smallest (crop side / output side) over all crops. Returns the (x, y) scale of the
    decoded image relative to the original.
    """
    width, height = image.size
    if getattr(image, "format", None) == "JPEG" and needed >= 2.0:
        reduce = min(8, 2 ** int(math.log2(needed)))
        image.draft("L" if channels == 1 else "RGB", (math.ceil(width / reduce), math.ceil(height / reduce)))
    return image.size[0] / width, image.size[1] / height


def _cut(image: Any, box: tuple[float, float, float, float], size: int, interpolation: str) -> Any:
    return image.resize((size, size), _INTERPOLATION[interpolation], box=box)


def _to_chw(image: Any) -> np.ndarray:
    array = np.asarray(image)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def render_crops(
    image: Any, specs: list[CropSpec], rng: np.random.Generator, channels: int
) -> list[np.ndarray]:
    """Every view of one sample: uint8 ``(channels, spec.size, spec.size)`` arrays, in the order of ``specs``.

    Args:
        image: A PIL image, possibly only opened (its pixels are decoded here, once).
        specs: The views.
        rng: The sample's generator (:func:`sample_rng`).
        channels: 1 or 3: the decoded mode (:func:`zoo.imaging.to_channels`).
    """
    width, height = image.size
    boxes = [crop_box(width, height, spec, rng) for spec in specs]
    flips = [rng.uniform() < spec.flip for spec in specs]
    needed = min(min(w, h) / spec.size for (_, _, w, h), spec in zip(boxes, specs))
    sx, sy = _draft(image, needed, channels)
    decoded = to_channels(image, channels)
    out = []
    for (left, top, w, h), spec, flip in zip(boxes, specs, flips):
        box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
        crop = _cut(decoded, box, spec.size, spec.interpolation)
        if flip:
            crop = crop.transpose(0)  # Image.Transpose.FLIP_LEFT_RIGHT
        out.append(_to_chw(crop))
    return out


def render_eval(image: Any, spec: EvalSpec, channels: int) -> np.ndarray:
    """The deterministic evaluation view of one image: uint8 ``(channels, size, size)``."""
    width, height = image.size
    side = min(width, height) * spec.crop_pct
    left, top = (width - side) / 2, (height - side) / 2
    sx, sy = _draft(image, side / spec.size, channels)
    decoded = to_channels(image, channels)
    box = (left * sx, top * sy, (left + side) * sx, (top + side) * sy)
    return _to_chw(_cut(decoded, box, spec.size, spec.interpolation))


def _as_channels(batch: np.ndarray, channels: int) -> np.ndarray:
    """(B, H, W, C) uint8 with C in {1, 3} → the same with ``channels`` channels (PIL's ``L`` luma for 3 → 1)."""
    have = batch.shape[-1]
    if have == channels:
        return batch
    if channels == 3:
        return np.repeat(batch, 3, axis=-1)
    luma = batch.astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]


def _roi_crops(images: np.ndarray, boxes: list[tuple[float, float, float, float]], size: int, channels: int):
    from torchvision.ops import roi_align

    x = torch.from_numpy(np.array(_as_channels(images, channels))).permute(0, 3, 1, 2).float()
    rois = torch.tensor([[i, *box] for i, box in enumerate(boxes)], dtype=torch.float32)
    # aligned=True: pixel i covers [i, i + 1), as in PIL's resize(box=...); sampling_ratio=-1 averages
    # ceil(box / size) samples per output pixel, the antialiasing of a downscale.
    return roi_align(x, rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def _to_uint8(crops: torch.Tensor) -> np.ndarray:
    return crops.round_().clamp_(0, 255).to(torch.uint8).numpy()


def render_crops_batch(
    images: np.ndarray, specs: list[CropSpec], rngs: list[np.random.Generator], channels: int
) -> list[np.ndarray]:
    """:func:`render_crops` for a batch of equal-sized in-memory images ``(B, H, W, C)`` uint8.

    Draws each sample's boxes and flips from its own generator in the same order as :func:`render_crops`, so a
    sample's crops cover the same pixels on either path. Returns one ``(B, channels, S, S)`` array per spec.
    """
    _, height, width, _ = images.shape
    boxes = [[crop_box(width, height, spec, rng) for spec in specs] for rng in rngs]
    flips = [[rng.uniform() < spec.flip for spec in specs] for rng in rngs]
    out = []
    for v, spec in enumerate(specs):
        crops = _roi_crops(
            images, [(lf, tp, lf + w, tp + h) for lf, tp, w, h in (b[v] for b in boxes)], spec.size, channels
        )
        flip = [f[v] for f in flips]
        if any(flip):
            crops[flip] = crops[flip].flip(-1)
        out.append(_to_uint8(crops))
    return out


def render_eval_batch(images: np.ndarray, spec: EvalSpec, channels: int) -> np.ndarray:
    """:func:`render_eval` for a batch of equal-sized in-memory images ``(B, H, W, C)`` uint8."""
    _, height, width, _ = images.shape
    side = min(width, height) * spec.crop_pct
    left, top = (width - side) / 2, (height - side) / 2
    box = (left, top, left + side, top + side)
    return _to_uint8(_roi_crops(images, [box] * len(images), spec.size, channels))
