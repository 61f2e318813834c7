"""Attention maps as pictures (per-head overlays with colour bars, DINO's thresholded masks) and their inputs.

DINO (Caron et al., 2021, Fig. 3 and ``visualize_attention.py``) shows the last block's attention from the [CLS]
query to every patch, one map per head, and a mask that keeps, per head, the most-attended patches that together
hold a fraction ``t`` of the attention mass (``t = 0.6`` in the paper's figures). CNNs have no attention; for them
:func:`similarity_map` shows the cosine similarity of the pooled (global) feature to the feature at each position
of the last spatial feature map, and the page labels it as such.

>>> import numpy as np
>>> threshold_mask(np.array([[0.1, 0.2, 0.3, 0.4]]), 0.6).astype(int).tolist()
[[0, 0, 1, 1]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def threshold_mask(maps: np.ndarray, t: float) -> np.ndarray:
    """DINO's attention mask: per map, keep the largest values that together hold a fraction ``t`` of the mass.

    As in ``visualize_attention.py``: normalise each map to sum 1, sort ascending, and keep the patches whose
    cumulative sum exceeds ``1 - t``, i.e. the most-attended patches that reach the mass ``t``.

    Args:
        maps: ``(..., h, w)`` non-negative attention maps (any leading dims, e.g. heads), or one ``(P,)`` map.
        t: Fraction of the mass to keep, in (0, 1].

    Returns:
        A boolean array of the same shape as ``maps``.
    """
    t = float(np.clip(t, 0.0, 1.0))
    arr = np.asarray(maps, dtype=np.float64)
    spatial = arr.shape[-2:] if arr.ndim >= 2 else arr.shape
    flat = arr.reshape(-1, int(np.prod(spatial)))
    total = flat.sum(axis=1, keepdims=True)
    share = flat / np.where(total > 0, total, 1.0)
    order = np.argsort(share, axis=1, kind="stable")  # ascending, as DINO's torch.sort
    cumulative = np.cumsum(np.take_along_axis(share, order, axis=1), axis=1)
    keep_sorted = cumulative > (1.0 - t)
    keep = np.empty_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    return keep.reshape(arr.shape)


def _to_unit(heat: np.ndarray) -> np.ndarray:
    lo, hi = float(heat.min()), float(heat.max())
    return (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.55, cmap: str = "inferno") -> Image.Image:
    """Blend a ``(h, w)`` heat map, stretched to 0..1 and shown at patch resolution, over ``image``."""
    import matplotlib

    colours = matplotlib.colormaps[cmap](_to_unit(np.asarray(heat, dtype=np.float64)))[..., :3]
    heat_img = Image.fromarray(np.uint8(np.round(colours * 255))).resize(image.size, Image.Resampling.NEAREST)
    return Image.blend(image.convert("RGB"), heat_img, alpha)


def head_colours(n: int) -> list[tuple[int, int, int]]:
    """``n`` fully saturated colours evenly spaced in hue (DINO's ``random_colors``, without the shuffle)."""
    import colorsys

    return [tuple(round(255 * c) for c in colorsys.hsv_to_rgb(i / max(n, 1), 1.0, 1.0)) for i in range(n)]


def mask_overlay(
    image: Image.Image, mask: np.ndarray, colour: tuple[int, int, int] = (255, 0, 0), alpha: float = 0.5
) -> Image.Image:
    """DINO's ``display_instances``: tint the masked patches with ``colour`` and outline them with contours.

    Args:
        image: The picture the map was computed on (any size; the mask is stretched over it).
        mask: ``(h, w)`` boolean mask at patch resolution.
        colour: RGB tint and contour colour.
        alpha: Tint strength inside the mask (DINO: 0.5).
    """
    from PIL import ImageDraw
    from skimage.measure import find_contours

    rgb = image.convert("RGB")
    big = (
        np.asarray(
            Image.fromarray(np.uint8(np.asarray(mask, dtype=bool)) * 255).resize(
                rgb.size, Image.Resampling.NEAREST
            )
        )
        > 127
    )
    pixels = np.asarray(rgb, dtype=np.float32)
    tint = np.asarray(colour, dtype=np.float32)
    # apply_mask in visualize_attention.py: image * (1 - alpha * mask) + alpha * mask * colour
    weight = alpha * big[..., None]
    out = Image.fromarray(np.uint8(np.round(pixels * (1 - weight) + weight * tint)))
    padded = np.pad(big.astype(np.float32), 1)  # so masks touching the border still close their contours
    draw = ImageDraw.Draw(out)
    width = max(1, round(max(rgb.size) / 160))
    for verts in find_contours(padded, 0.5):
        points = [(float(x) - 1, float(y) - 1) for y, x in verts]
        if len(points) > 1:
            draw.line(points + points[:1], fill=colour, width=width)
    return out


def with_colour_bar(image: Image.Image, lo: float, hi: float, cmap: str = "inferno") -> Image.Image:
    """``image`` with a vertical colour bar on its right, labelled with the map's ``hi`` (top) and ``lo`` values.

    The labels' font scales with the image (a tenth of its height, at least 10 px), so they stay legible when the
    page shows the picture smaller, and the label column is as wide as the wider label: no digit is cut off.
    """
    import matplotlib
    from PIL import ImageDraw, ImageFont

    height = image.height
    bar_width, gap = max(12, height // 14), max(4, height // 40)
    font = ImageFont.load_default(size=max(10, round(height / 10)))
    texts = (f"{hi:.3g}", f"{lo:.3g}")
    boxes = [font.getbbox(t) for t in texts]  # (left, top, right, bottom) of the ink from the drawing origin
    label_width = max(b[2] for b in boxes) + 2 * gap
    ramp = matplotlib.colormaps[cmap](np.linspace(1.0, 0.0, height))[:, :3]
    bar = np.uint8(np.round(np.repeat(ramp[:, None, :], bar_width, axis=1) * 255))
    out = Image.new("RGB", (image.width + gap + bar_width + label_width, height), (255, 255, 255))
    out.paste(image.convert("RGB"), (0, 0))
    out.paste(Image.fromarray(bar), (image.width + gap, 0))
    draw = ImageDraw.Draw(out)
    x = image.width + 2 * gap + bar_width
    (hi_text, lo_text), (hi_box, lo_box) = texts, boxes
    draw.text((x, -hi_box[1]), hi_text, fill=(0, 0, 0), font=font)  # ink flush with the top edge
    draw.text((x, height - lo_box[3]), lo_text, fill=(0, 0, 0), font=font)  # and with the bottom edge
    return out


@torch.no_grad()
def similarity_map(features: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each image's pooled feature to its feature at every position.

    Args:
        features: ``(N, C, h, w)`` last spatial feature map (timm's ``forward_features``).
        pooled: ``(N, C)`` global feature (the embedding before any projection head).

    Returns:
        ``(N, h, w)`` similarities in [-1, 1].
    """
    return torch.einsum(
        "nchw,nc->nhw", F.normalize(features.float(), dim=1), F.normalize(pooled.float(), dim=1)
    )


@torch.no_grad()
def vit_cls_attention(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last block's attention from [CLS] to every patch of a timm ``VisionTransformer``.

    The attention probabilities are recomputed from the last block's normalised input with that block's own
    ``qkv`` projection (softmax(q kᵀ / √d), Eq. 1 of Vaswani et al.), so the fused kernel stays untouched.

    Args:
        model: A timm ``VisionTransformer`` with a class token.
        x: ``(N, C, H, W)`` normalised images; ``H`` and ``W`` multiples of the patch size.

    Returns:
        ``(N, heads, h, w)``: row [CLS] of the attention matrix restricted to the patch tokens, so each map sums to
        one minus the attention [CLS] pays to itself and to any register tokens.
    """
    block = model.blocks[-1]
    captured: dict[str, torch.Tensor] = {}
    hook = block.attn.register_forward_pre_hook(lambda _m, args: captured.__setitem__("x", args[0]))
    try:
        model.forward_features(x)
    finally:
        hook.remove()
    attn, tokens = block.attn, captured["x"]
    n, length, _ = tokens.shape
    qkv = attn.qkv(tokens).reshape(n, length, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    probs = ((q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)[:, :, 0]  # (N, heads, L)
    prefix = model.num_prefix_tokens
    h, w = x.shape[-2] // model.patch_embed.patch_size[0], x.shape[-1] // model.patch_embed.patch_size[1]
    return probs[:, :, prefix:].reshape(n, attn.num_heads, h, w)


# ------------------------------------------------------------------------------------------------ model inputs
def find_transform(transform: Any, kind: type) -> Any:
    """The first step of type ``kind`` in a (composed) transform, or ``None``."""
    for step in getattr(transform, "transforms", [transform]):
        if isinstance(step, kind):
            return step
    return None


def is_vit(encoder: Any) -> bool:
    """Whether the encoder's model has ViT blocks with a [CLS] token (so it has [CLS] attention maps)."""
    model = encoder.model
    return (
        hasattr(model, "blocks")
        and hasattr(model, "patch_embed")
        and getattr(model, "cls_token", None) is not None
        and hasattr(model.blocks[-1], "attn")
    )


def native_size(encoder: Any) -> int:
    """The input side length the encoder was built for (a ViT's ``img_size``, else its eval crop)."""
    from torchvision import transforms

    if is_vit(encoder):
        return int(encoder.model.patch_embed.img_size[0])
    crop = find_transform(encoder.transform, transforms.CenterCrop)
    if crop is not None:
        return int(crop.size[0])
    return int(getattr(encoder.model, "pretrained_cfg", {}).get("input_size", (3, 224, 224))[-1])


def patch_size(encoder: Any) -> int:
    """A ViT's patch side in pixels; 1 for a CNN."""
    return int(encoder.model.patch_embed.patch_size[0]) if is_vit(encoder) else 1


def attention_input(encoder: Any, image: Image.Image, size: int) -> torch.Tensor:
    """``(1, C, size, size)``: the whole image squashed to ``size × size`` (as DINO's visualize_attention.py),
    in the encoder's colour mode and normalised as in training."""
    from torchvision import transforms

    steps = [
        transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC, antialias=True),
        transforms.ToTensor(),
    ]
    norm = find_transform(encoder.transform, transforms.Normalize)
    if norm is not None:
        steps.append(norm)
    return transforms.Compose(steps)(image.convert("L" if encoder.in_chans == 1 else "RGB"))[None]
