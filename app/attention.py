"""Attention maps as pictures: per-head overlays, the head mean, and DINO's thresholded attention mask.

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


def mask_overlay(image: Image.Image, mask: np.ndarray, dim: float = 0.2) -> Image.Image:
    """Keep the image where ``mask`` (``(h, w)`` bool, at patch resolution) is set; darken it elsewhere."""
    weights = Image.fromarray(np.uint8(np.where(mask, 255, round(255 * dim)))).resize(
        image.size, Image.Resampling.NEAREST
    )
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    out = rgb * (np.asarray(weights, dtype=np.float32)[..., None] / 255.0)
    return Image.fromarray(np.uint8(np.round(out)))


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
