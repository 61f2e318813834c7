"""BYOL — Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning", NeurIPS 2020.

An online network (encoder → projector → predictor) predicts the projection of another view made by a target
network (encoder → projector, no predictor) whose weights are an exponential moving average of the online ones:
ξ ← τ·ξ + (1 − τ)·θ, with τ from τ_base to 1 by cosine (§3.2). The loss is the normalised MSE
‖q̄ − z̄′‖² = 2 − 2·cos(q, z′) (Eq. 2), symmetrised over the two views (Eq. 3); no negatives.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from trainers.augment import ColorAugment
from trainers.methods.base import Batch, Method, StepInfo, feature_dim, momentum_update
from trainers.methods.options import DEFAULTS, BYOLConfig
from trainers.schedules import cosine_schedule
from trainers.views import CropSpec

if TYPE_CHECKING:
    from trainers.context import TrainContext

__all__ = ["BYOL", "BYOLConfig", "byol_loss", "mlp"]


def mlp(in_dim: int, hidden: int, out: int) -> nn.Sequential:
    """BYOL's projector / predictor: Linear → BN → ReLU → Linear (§3.3)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out)
    )


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Eq. (2): mean over the batch of ‖p/‖p‖ − z/‖z‖‖² = 2 − 2·cos(p, z); ``z`` is the target (no gradient).

    Args:
        p: (N, D) online predictions.
        z: (N, D) target projections of the other view.
    """
    p, z = F.normalize(p.float(), dim=1), F.normalize(z.detach().float(), dim=1)
    return (2 - 2 * (p * z).sum(dim=1)).mean()


class BYOL(Method):
    """Online encoder + projector + predictor; target = EMA of online encoder + projector."""

    name = "byol"
    Config = BYOLConfig
    defaults = DEFAULTS["byol"]

    def __init__(self, cfg: BYOLConfig, ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        self.backbone = ctx.create_backbone()
        self.projector = mlp(feature_dim(self.backbone), cfg.proj_hidden_dim, cfg.proj_dim)
        self.predictor = mlp(cfg.proj_dim, cfg.proj_hidden_dim, cfg.proj_dim)
        self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.crop = CropSpec(ctx.image_size, (cfg.crop_min_scale, 1.0))
        # The two asymmetric views of Table 6: blur always / rarely, solarisation only on the second.
        # Table 6's jitter: brightness, contrast 0.4 (0.8·s), saturation 0.2 (0.4·s), hue 0.1 (0.2·s).
        colour = {"jitter": cfg.jitter, "saturation": 0.4 * cfg.jitter}
        self.augment1 = ColorAugment(ctx.mean, ctx.std, blur_p=1.0, **colour)
        self.augment2 = ColorAugment(ctx.mean, ctx.std, blur_p=0.1, solarize_p=0.2, **colour)

    def view_specs(self) -> list[CropSpec]:
        return [self.crop, self.crop]

    def view_colours(self) -> list[ColorAugment]:
        return [self.augment1, self.augment2]

    def tau(self, step: StepInfo) -> float:
        """τ = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2 (§3.2)."""
        return cosine_schedule(step.global_step, step.total_steps, self.cfg.momentum, self.cfg.momentum_end)

    def training_step(self, batch: Batch, step: StepInfo):
        x1, x2 = batch.views

        def online(x):
            return self.predictor(self.projector(self.backbone(x)))

        def target(x):
            return self.target_projector(self.target_backbone(x))

        if self.cfg.bn_per_view:
            p1, p2 = online(x1), online(x2)
            with torch.no_grad():
                z1, z2 = target(x1), target(x2)
        else:
            p1, p2 = online(torch.cat([x1, x2])).chunk(2)
            with torch.no_grad():
                z1, z2 = target(torch.cat([x1, x2])).chunk(2)
        # Eq. (3): the symmetrised loss L + L̃.
        return byol_loss(p1, z2) + byol_loss(p2, z1), {"tau": self.tau(step)}

    def on_after_step(self, step: StepInfo) -> None:
        tau = self.tau(step)
        momentum_update(self.target_backbone, self.backbone, tau)
        momentum_update(self.target_projector, self.projector, tau)
