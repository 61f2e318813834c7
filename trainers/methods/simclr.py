"""SimCLR — Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020.

Two augmented views of every image go through the encoder f and an MLP projection head g; NT-Xent (Eq. 1)
pulls the two views of an image together against the other 2N − 2 views of the batch. The batch is the
*global* one: under DDP the embeddings of all ranks are gathered with gradient, so negatives come from every rank.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from trainers.augment import ColorAugment
from trainers.distributed import all_gather_with_grad, rank
from trainers.methods.base import Batch, Method, StepInfo, feature_dim
from trainers.methods.options import DEFAULTS, SimCLRConfig
from trainers.views import CropSpec

if TYPE_CHECKING:
    from trainers.context import TrainContext

__all__ = ["SimCLR", "SimCLRConfig", "nt_xent_loss"]


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (SimCLR Eq. 1) of this rank's pairs against all ranks' views.

    ℓ(i, j) = −log exp(sim(z_i, z_j)/τ) / Σ_{k≠i} exp(sim(z_i, z_k)/τ), averaged over the 2N anchors of the
    batch, with sim the cosine similarity. Under DDP, candidates are the 2·N_global views of all ranks and the
    anchors this rank's 2·N_local (the mean over ranks is the mean over the global batch).

    Args:
        z1, z2: (N, D) projections of the two views of the same N images.
        temperature: τ.
    """
    z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
    n = z1.shape[0]
    all1, all2 = all_gather_with_grad(z1), all_gather_with_grad(z2)
    n_global = all1.shape[0]
    candidates = torch.cat([all1, all2])  # (2·N_global, D): first views of all ranks, then second views
    anchors = torch.cat([z1, z2])  # (2N, D)
    logits = anchors @ candidates.T / temperature
    offset = rank() * n
    own = torch.arange(n, device=z1.device) + offset
    self_idx = torch.cat([own, own + n_global])  # where each anchor sits among the candidates
    positive = torch.cat([own + n_global, own])  # its other view
    # Exclude sim(z_i, z_i): the k ≠ i of the denominator.
    logits[torch.arange(2 * n, device=z1.device), self_idx] = float("-inf")
    return F.cross_entropy(logits, positive)


class SimCLR(Method):
    """Encoder f + projection head g(h) = W₂ σ(BN(W₁ h)) (§2.1; BN as in the paper's code), trained with NT-Xent on two
    views."""

    name = "simclr"
    Config = SimCLRConfig
    defaults = DEFAULTS["simclr"]

    def __init__(self, cfg: SimCLRConfig, ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        self.backbone = ctx.create_backbone()
        norm = [nn.BatchNorm1d(cfg.proj_hidden_dim)] if cfg.proj_bn else []
        self.projector = nn.Sequential(
            nn.Linear(feature_dim(self.backbone), cfg.proj_hidden_dim, bias=not cfg.proj_bn),
            *norm,
            nn.ReLU(inplace=True),
            nn.Linear(cfg.proj_hidden_dim, cfg.proj_dim),
        )
        self.crop = CropSpec(ctx.image_size, (cfg.crop_min_scale, 1.0))
        self.augment = ColorAugment(ctx.mean, ctx.std, jitter=cfg.jitter)

    def view_specs(self) -> list[CropSpec]:
        return [self.crop, self.crop]

    def view_colours(self) -> list[ColorAugment]:
        return [self.augment, self.augment]

    def training_step(self, batch: Batch, step: StepInfo):
        x1, x2 = batch.views
        if self.cfg.bn_per_view:
            z1, z2 = (self.projector(self.backbone(x)) for x in (x1, x2))
        else:
            z1, z2 = self.projector(self.backbone(torch.cat([x1, x2]))).chunk(2)
        return nt_xent_loss(z1, z2, self.cfg.temperature)
