"""Backbones for small images, registered with timm so exported checkpoints load with ``timm.create_model``.

Importing this module (``import zoo.architectures``; ``zoo.load`` does it) registers them; after that ``timm.create_model("sslzoo_cnn4", in_chans=1)`` works like any timm
model, and so does ``timm.create_model("hf-hub:ORG/NAME", pretrained=True)`` on a folder our exporter wrote.
All are feature extractors first: ``num_classes=0`` gives the pooled embedding ``(N, num_features)``.

>>> import timm, torch, zoo.architectures
>>> net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0)
>>> net(torch.zeros(2, 1, 28, 28)).shape
torch.Size([2, 256])
"""

from __future__ import annotations

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import SelectAdaptivePool2d
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from timm.models.vision_transformer import VisionTransformer
from torch import nn

__all__ = ["SmallCNN", "SmallStemResNet"]


class SmallCNN(nn.Module):
    """Four conv blocks (3×3 conv, BN, ReLU, 2×2 max-pool), widths 32-64-128-256, then global average pooling.

    About 0.4M parameters; trains at hundreds of images/s on two CPU cores at 28–32 px.

    Args:
        in_chans: Input channels (1 for Fashion-MNIST, 3 for RGB).
        num_classes: Size of the linear head; 0 for a feature extractor.
        widths: Channels of the four blocks.
        global_pool: timm pooling type (``"avg"``).
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 0,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        global_pool: str = "avg",
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_chans
        for i, width in enumerate(widths):
            layers += [
                nn.Conv2d(prev, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            if i < len(widths) - 1:  # keep the last map spatial (e.g. 3×3 at 28 px) for similarity maps
                layers.append(nn.MaxPool2d(2))
            prev = width
        self.features = nn.Sequential(*layers)
        self.num_features = self.head_hidden_size = prev
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(prev, num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes = num_classes

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images → (N, num_features, h, w) feature map."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.global_pool(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class SmallStemResNet(ResNet):
    """timm's ResNet with the CIFAR-style stem: one 3×3 stride-1 conv and no max-pool, for 28–64 px images."""

    def __init__(self, block, layers, in_chans: int = 3, **kwargs) -> None:
        super().__init__(block, layers, in_chans=in_chans, **kwargs)
        self.conv1 = nn.Conv2d(in_chans, self.conv1.out_channels, 3, stride=1, padding=1, bias=False)
        self.maxpool = nn.Identity()


def _cfg(**kwargs) -> dict:
    return {
        "num_classes": 0,
        "input_size": (3, 32, 32),
        "pool_size": None,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "conv1",
        "classifier": "head",
        "license": "apache-2.0",
        **kwargs,
    }


default_cfgs = generate_default_cfgs(
    {
        "sslzoo_cnn4": _cfg(first_conv="features.0"),
        "sslzoo_resnet18_small": _cfg(classifier="fc"),
        "sslzoo_resnet50_small": _cfg(classifier="fc"),
        "sslzoo_vit_tiny_patch4": _cfg(first_conv="patch_embed.proj", mean=(0.5,) * 3, std=(0.5,) * 3),
        "sslzoo_vit_nano_patch4": _cfg(
            first_conv="patch_embed.proj", mean=(0.5,) * 3, std=(0.5,) * 3, input_size=(3, 28, 28)
        ),
    }
)


@register_model
def sslzoo_cnn4(pretrained: bool = False, **kwargs) -> SmallCNN:
    """Small 4-block CNN (0.4M params, 256-d features) for 28–32 px images."""
    return build_model_with_cfg(SmallCNN, "sslzoo_cnn4", pretrained, **{"num_classes": 0, **kwargs})


@register_model
def sslzoo_resnet18_small(pretrained: bool = False, **kwargs) -> SmallStemResNet:
    """ResNet-18 with a 3×3 stride-1 stem and no max-pool (512-d features)."""
    args = {"block": BasicBlock, "layers": (2, 2, 2, 2), "num_classes": 0, **kwargs}
    return build_model_with_cfg(SmallStemResNet, "sslzoo_resnet18_small", pretrained, **args)


@register_model
def sslzoo_resnet50_small(pretrained: bool = False, **kwargs) -> SmallStemResNet:
    """ResNet-50 with a 3×3 stride-1 stem and no max-pool (2048-d features)."""
    args = {"block": Bottleneck, "layers": (3, 4, 6, 3), "num_classes": 0, **kwargs}
    return build_model_with_cfg(SmallStemResNet, "sslzoo_resnet50_small", pretrained, **args)


@register_model
def sslzoo_vit_tiny_patch4(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """A 6-block, 192-d, 3-head ViT with 4×4 patches for 28–32 px images (CLS token embedding)."""
    args = {
        "img_size": 32,
        "patch_size": 4,
        "embed_dim": 192,
        "depth": 6,
        "num_heads": 3,
        "num_classes": 0,
        "global_pool": "token",
        **kwargs,
    }
    return build_model_with_cfg(VisionTransformer, "sslzoo_vit_tiny_patch4", pretrained, **args)


@register_model
def sslzoo_vit_nano_patch4(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """A 4-block, 96-d, 3-head ViT with 4×4 patches for 28 px images (7×7 patches + CLS token embedding).

    About 0.45M parameters: ~5× cheaper per image than ``sslzoo_vit_tiny_patch4``, so DINO with multi-crop trains
    it on a CPU in tens of minutes per epoch of Fashion-MNIST.
    """
    args = {
        "img_size": 28,
        "patch_size": 4,
        "embed_dim": 96,
        "depth": 4,
        "num_heads": 3,
        "num_classes": 0,
        "global_pool": "token",
        **kwargs,
    }
    return build_model_with_cfg(VisionTransformer, "sslzoo_vit_nano_patch4", pretrained, **args)


# The DINO/DINOv2 ViTs (per-forward position interpolation) and the Sobel-input backbones live in their own modules:
# `import zoo.architectures` registers every sslzoo_* architecture, theirs too.
from zoo import dino_vit, sobel  # noqa: E402, F401
