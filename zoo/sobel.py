"""DeepCluster's Sobel input: fixed grayscale + Sobel filters in front of any timm backbone, as one timm model.

DeepCluster (Caron et al. 2018, §4 "Implementation details") and DeeperCluster feed the network two channels —
the horizontal and vertical Sobel gradients of the grayscale image — so that colour cannot become a trivial cue
for the clusters. The official code (``facebookresearch/deepcluster`` ``models/alexnet.py`` / ``vgg16.py``,
``sobel=True``) does it with two frozen convolutions inside the model: a 1×1 averaging the three channels, then
two 3×3 Sobel kernels. Here they are buffers (never trained, never decayed, never EMA-averaged), and the wrapper
is registered with timm as ``sslzoo_sobel`` so an exported encoder is rebuilt by ``zoo.load`` with its filters:

>>> import timm, torch, zoo
>>> net = timm.create_model("sslzoo_sobel", base_arch="sslzoo_cnn4", in_chans=3, num_classes=0)
>>> net(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 256])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

__all__ = ["SobelEncoder", "SobelFilter"]

# Rows of the 3×3 kernels of models/alexnet.py in facebookresearch/deepcluster: d/dx then d/dy.
SOBEL_KERNELS = (
    (1.0, 0.0, -1.0, 2.0, 0.0, -2.0, 1.0, 0.0, -1.0),
    (1.0, 2.0, 1.0, 0.0, 0.0, 0.0, -1.0, -2.0, -1.0),
)


class SobelFilter(nn.Module):
    """(N, C, H, W) → (N, 2, H, W): channel mean (the 1×1 grayscale conv), then the two Sobel kernels (padding 1).

    Not trainable: the kernels are buffers, so optimisers, weight decay and EMA updates never see them.
    """

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.register_buffer("gray", torch.full((1, in_chans, 1, 1), 1.0 / in_chans))
        self.register_buffer("kernels", torch.tensor(SOBEL_KERNELS).view(2, 1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gray = F.conv2d(x, self.gray.to(x.dtype))
        return F.conv2d(gray, self.kernels.to(x.dtype), padding=1)


class SobelEncoder(nn.Module):
    """:class:`SobelFilter` followed by ``timm.create_model(base_arch, in_chans=2, ...)``.

    Args:
        base_arch: The timm architecture behind the filters (``vgg16_bn``, ``resnet50``, …).
        in_chans: Channels of the images given to the encoder (the filters turn them into 2).
        num_classes: Classifier size of the backbone; 0 for a feature extractor.
        **kwargs: Passed to the backbone (``drop_path_rate``, ``img_size``, …).

    ``num_features`` is the width of the pooled output with ``num_classes=0`` (timm's ``head_hidden_size``:
    4096 for VGG, whose ``num_features`` counts the 512 channels before its convolutional MLP).
    """

    def __init__(self, base_arch: str, in_chans: int = 3, num_classes: int = 0, **kwargs) -> None:
        super().__init__()
        import timm

        self.base_arch = base_arch
        self.sobel = SobelFilter(in_chans)
        self.backbone = timm.create_model(
            base_arch, pretrained=False, in_chans=2, num_classes=num_classes, **kwargs
        )
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = (
            getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        )

    def get_classifier(self) -> nn.Module:
        return self.backbone.get_classifier()

    def reset_classifier(self, num_classes: int, *args, **kwargs) -> None:
        self.num_classes = num_classes
        self.backbone.reset_classifier(num_classes, *args, **kwargs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(self.sobel(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.backbone.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.sobel(x))


default_cfgs = generate_default_cfgs(
    {
        "sslzoo_sobel": {
            "num_classes": 0,
            "input_size": (3, 224, 224),
            "pool_size": None,
            "crop_pct": 0.875,
            "interpolation": "bilinear",
            "mean": IMAGENET_DEFAULT_MEAN,
            "std": IMAGENET_DEFAULT_STD,
            "first_conv": "backbone",
            "classifier": "backbone",
            "license": "apache-2.0",
        }
    }
)


@register_model
def sslzoo_sobel(pretrained: bool = False, base_arch: str = "resnet50", **kwargs) -> SobelEncoder:
    """Fixed grayscale + Sobel filters, then ``base_arch`` on the 2 gradient channels (DeepCluster §4)."""
    return build_model_with_cfg(
        SobelEncoder, "sslzoo_sobel", pretrained, base_arch=base_arch, **{"num_classes": 0, **kwargs}
    )
