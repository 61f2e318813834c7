"""DINO and DINOv2 ViTs with the official position-embedding interpolation, registered with timm.

timm's ViT resamples a learned position embedding once (``set_input_size``, or on load) with an antialiased
bicubic resize to a target size. The official models keep the trained grid (14×14 for DINO at 224 px, 37×37 for
DINOv2 at 518 px) and interpolate it at every forward, for whatever grid the input has:

* ``facebookresearch/dino`` ``vision_transformer.py`` ``VisionTransformer.interpolate_pos_encoding``, and
* ``facebookresearch/dinov2`` ``dinov2/models/vision_transformer.py`` ``DinoVisionTransformer.interpolate_pos_encoding``
  (``interpolate_offset=0.1``, ``interpolate_antialias=False`` for the released non-register models,
  ``dinov2/hub/backbones.py``),

both with ``F.interpolate(mode="bicubic", antialias=False, scale_factor=((h0 + 0.1) / M, (w0 + 0.1) / M))`` for an
``M × M`` trained grid and an ``h0 × w0`` input grid. With a scale factor (not an output size) PyTorch maps output
pixel ``i`` to source ``(i + 0.5) · M / (h0 + 0.1) − 0.5``, so the result differs from a plain resize to ``h0 × w0``
(and from timm's antialiased one by 1–3 % of the embedding for DINOv2 at 224 px). :class:`DinoVisionTransformer`
does exactly this in every forward (``forward``, ``forward_features``, ``forward_intermediates``), so embeddings,
attention maps and any input size go through one code path.

>>> import timm, torch, zoo
>>> net = timm.create_model("sslzoo_vit_small_patch14_dinov2", num_classes=0, depth=1)
>>> net.pos_embed.shape, net(torch.zeros(1, 3, 224, 224)).shape  # 37×37 trained grid, 16×16 input grid
(torch.Size([1, 1370, 384]), torch.Size([1, 384]))
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import SwiGLUPacked
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._input import update_model_input_size
from timm.models.vision_transformer import VisionTransformer
from torch import nn

__all__ = ["DinoVisionTransformer", "interpolate_pos_encoding"]

# The offset of both official implementations ("a small number to avoid floating point error in the
# interpolation", facebookresearch/dino issue #8); it also shifts where the bicubic kernel samples.
INTERPOLATE_OFFSET = 0.1


def interpolate_pos_encoding(
    pos_embed: torch.Tensor, grid: tuple[int, int], offset: float = INTERPOLATE_OFFSET
) -> torch.Tensor:
    """The official DINO / DINOv2 position embedding for an ``h0 × w0`` patch grid.

    Args:
        pos_embed: ``(1, 1 + M·M, D)``: the [CLS] position, then the trained ``M × M`` grid row by row.
        grid: ``(h0, w0)`` patches of the input.
        offset: DINO's ``+ 0.1`` on the target grid before dividing by ``M``.

    Returns:
        ``(1, 1 + h0·w0, D)`` in ``pos_embed``'s dtype (computed in float32, as DINOv2 does).
    """
    n = pos_embed.shape[1] - 1
    h0, w0 = grid
    # Upstream returns the embedding unchanged when the patch count matches and the image is square.
    if n == h0 * w0 and h0 == w0:
        return pos_embed
    m = int(math.sqrt(n))
    if m * m != n:
        raise ValueError(f"position embedding of {n} patches is not a square grid")
    dim = pos_embed.shape[-1]
    patch_pos = pos_embed[:, 1:].float().reshape(1, m, m, dim).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(
        patch_pos,
        scale_factor=((h0 + offset) / m, (w0 + offset) / m),
        mode="bicubic",
        antialias=False,
    )
    if patch_pos.shape[-2:] != (h0, w0):  # the offset exists to make this hold; upstream asserts it too
        raise ValueError(f"interpolated grid {tuple(patch_pos.shape[-2:])} is not the input grid {(h0, w0)}")
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, h0 * w0, dim)
    return torch.cat((pos_embed[:, :1].float(), patch_pos), dim=1).to(pos_embed.dtype)


class DinoVisionTransformer(VisionTransformer):
    """timm's ``VisionTransformer`` whose position embedding is interpolated at every forward, as DINO's.

    The learned embedding keeps the grid the model was trained at (``pos_embed_size`` pixels); ``img_size`` is only
    the default input size (what preprocessing crops to). Any input whose sides are multiples of the patch works.

    Args:
        img_size: Default input side (224: the papers' evaluation crop).
        pos_embed_size: Side the position embedding was trained at (518 for DINOv2); ``None``: ``img_size``.
        **kwargs: ``VisionTransformer`` arguments (a [CLS] token, no register tokens).
    """

    def __init__(self, *, img_size: int = 224, pos_embed_size: int | None = None, **kwargs: Any) -> None:
        if kwargs.get("reg_tokens") or kwargs.get("no_embed_class") or kwargs.get("class_token") is False:
            raise ValueError(
                "DinoVisionTransformer needs a [CLS] token with a position and no register tokens"
            )
        kwargs["dynamic_img_size"] = (
            True  # the patch embedding accepts any size and keeps the (B, h, w, C) grid
        )
        super().__init__(img_size=pos_embed_size or img_size, **kwargs)
        if pos_embed_size and pos_embed_size != img_size:
            self.set_input_size(img_size=img_size)

    def set_input_size(self, img_size=None, patch_size=None) -> None:
        """Change the default input size; the position embedding keeps its trained grid (see the module doc)."""
        if patch_size is not None:
            raise ValueError("the patch size of a DINO ViT is fixed by its weights")
        self.patch_embed.set_input_size(img_size=img_size)
        update_model_input_size(self, self.patch_embed.img_size)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, h0, w0, D)`` patch tokens → ``(B, 1 + h0·w0, D)``: [CLS] prepended, official positions added."""
        batch, h0, w0, dim = x.shape
        x = torch.cat((self.cls_token.expand(batch, -1, -1), x.reshape(batch, h0 * w0, dim)), dim=1)
        x = x + interpolate_pos_encoding(self.pos_embed, (h0, w0)).to(x.dtype)
        return self.pos_drop(x)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "num_classes": 0,
        "input_size": (3, 224, 224),
        "pool_size": None,
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "license": "apache-2.0",
        **kwargs,
    }


# Architectures as timm defines them for these weights (vit_*_224 and vit_*_patch14_dinov2); DINOv2 adds
# LayerScale (init_values) and, for ViT-g, a SwiGLU MLP. Position grids: 14×14 / 28×28 at 224 px, 37×37 at 518 px.
_ARCHS: dict[str, dict[str, Any]] = {
    "sslzoo_vit_small_patch16_dino": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "sslzoo_vit_small_patch8_dino": dict(patch_size=8, embed_dim=384, depth=12, num_heads=6),
    "sslzoo_vit_base_patch16_dino": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "sslzoo_vit_base_patch8_dino": dict(patch_size=8, embed_dim=768, depth=12, num_heads=12),
    "sslzoo_vit_small_patch14_dinov2": dict(
        patch_size=14, embed_dim=384, depth=12, num_heads=6, init_values=1e-5, pos_embed_size=518
    ),
    "sslzoo_vit_base_patch14_dinov2": dict(
        patch_size=14, embed_dim=768, depth=12, num_heads=12, init_values=1e-5, pos_embed_size=518
    ),
    "sslzoo_vit_large_patch14_dinov2": dict(
        patch_size=14, embed_dim=1024, depth=24, num_heads=16, init_values=1e-5, pos_embed_size=518
    ),
    # SwiGLU hidden width 4096 (upstream SwiGLUFFNFused: (int(4·1536·2/3) + 7) // 8 · 8), packed as 2 × 4096.
    "sslzoo_vit_giant_patch14_dinov2": dict(
        patch_size=14,
        embed_dim=1536,
        depth=40,
        num_heads=24,
        init_values=1e-5,
        mlp_ratio=2.66667 * 2,
        mlp_layer=SwiGLUPacked,
        act_layer=nn.SiLU,
        pos_embed_size=518,
    ),
}

default_cfgs = generate_default_cfgs({name: _cfg() for name in _ARCHS})


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> DinoVisionTransformer:
    args = {**_ARCHS[variant], "num_classes": 0, **kwargs}
    return build_model_with_cfg(DinoVisionTransformer, variant, pretrained, **args)


@register_model
def sslzoo_vit_small_patch16_dino(pretrained: bool = False, **kwargs: Any) -> DinoVisionTransformer:
    """DINO ViT-S/16 (384-d [CLS])."""
    return _create("sslzoo_vit_small_patch16_dino", pretrained, **kwargs)


@register_model
def sslzoo_vit_small_patch8_dino(pretrained: bool = False, **kwargs: Any) -> DinoVisionTransformer:
    """DINO ViT-S/8 (384-d [CLS])."""
    return _create("sslzoo_vit_small_patch8_dino", pretrained, **kwargs)


@register_model
def sslzoo_vit_base_patch16_dino(pretrained: bool = False, **kwargs: Any) -> DinoVisionTransformer:
    """DINO ViT-B/16 (768-d [CLS])."""
    return _create("sslzoo_vit_base_patch16_dino", pretrained, **kwargs)


@register_model
def sslzoo_vit_base_patch8_dino(pretrained: bool = False, **kwargs: Any) -> DinoVisionTransformer:
    """DINO ViT-B/8 (768-d [CLS])."""
    return _create("sslzoo_vit_base_patch8_dino", pretrained, **kwargs)


@register_model
def sslzoo_vit_small_patch14_dinov2(pretrained: bool = False, **kwargs: Any) -> DinoVisionTransformer:
    """DINOv2 ViT-S/14 (384-d [CLS]), position grid trained at 518 px."""
    return _create("sslzoo_vit_small_patch14_dinov2", pretrained, **kwargs)


@register_model
def sslzoo_vit_base_patch14_dinov2(pretrained: bool = False, **kwargs: Any) -> DinoVisionTransformer:
    """DINOv2 ViT-B/14 (768-d [CLS]), position grid trained at 518 px."""
    return _create("sslzoo_vit_base_patch14_dinov2", pretrained, **kwargs)


@register_model
def sslzoo_vit_large_patch14_dinov2(pretrained: bool = False, **kwargs: Any) -> DinoVisionTransformer:
    """DINOv2 ViT-L/14 (1024-d [CLS]), position grid trained at 518 px."""
    return _create("sslzoo_vit_large_patch14_dinov2", pretrained, **kwargs)


@register_model
def sslzoo_vit_giant_patch14_dinov2(pretrained: bool = False, **kwargs: Any) -> DinoVisionTransformer:
    """DINOv2 ViT-g/14 (1536-d [CLS], SwiGLU MLP), position grid trained at 518 px."""
    return _create("sslzoo_vit_giant_patch14_dinov2", pretrained, **kwargs)
