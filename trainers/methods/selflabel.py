"""Self-Labelling (SeLa) — Asano et al., "Self-labelling via simultaneous clustering and representation learning",
ICLR 2020.

Pseudo-labels and network are learned together by minimising one cross-entropy E(p, q) (Eq. 3) alternately:
with the labels fixed, train the network; with the network fixed, choose labels q that minimise the
cross-entropy *subject to an equipartition* — every one of the K classes gets N/K samples (Eq. 5), which rules
out the degenerate "everything in one class" solution. That label step is an optimal-transport problem, solved
approximately by Sinkhorn-Knopp on P^λ (Eq. 8; :func:`trainers.clustering.sinkhorn_knopp`) and rounded to hard
labels; under torchrun one problem spans the ranks, each holding only its own rows' logits. Several heads, each
with its own labels, share the backbone ("multiple clusterings", Sec. 3.5). Label steps follow SeLa's schedule:
more of them early in training, spaced by a square law.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainers.augment import ColorAugment
from trainers.clustering import gather_by_index, round_nmi, sinkhorn_labels
from trainers.methods.base import Batch, Method, StepInfo, feature_dim
from trainers.methods.options import DEFAULTS, SelfLabelConfig
from trainers.views import CropSpec

if TYPE_CHECKING:
    from trainers.context import TrainContext

__all__ = ["SelfLabel", "SelfLabelConfig", "label_update_epochs"]


def label_update_epochs(epochs: int, updates: int) -> list[int]:
    """Epochs that start with a label step: ``⌊epochs · (i / updates)²⌋`` for i < updates, without repeats.

    SeLa's schedule (its code's ``optimize_times``): dense at the start, when the representation changes fastest.

    >>> label_update_epochs(100, 5)
    [0, 4, 16, 36, 64]
    """
    updates = max(1, updates)
    return sorted({epochs * i * i // (updates * updates) for i in range(updates)})  # integers: no 195.99…


class _HeadLogits(nn.Module):
    """Backbone + all heads → (N, H·K) logits, for the engine's feature extractor (not a registered submodule)."""

    def __init__(self, backbone: nn.Module, heads: nn.ModuleList) -> None:
        super().__init__()
        self.backbone, self.heads = backbone, heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        return torch.cat([head(features) for head in self.heads], dim=1)


class SelfLabel(Method):
    """Backbone + ``num_heads`` linear K-way heads trained with cross-entropy to equipartitioned labels."""

    needs_random_access = True  # pseudo-labels of every image, by index
    name = "selflabel"
    Config = SelfLabelConfig
    # The paper uses SGD (lr 0.05, wd 1e-5) for 400 epochs; AdamW suits a few CPU epochs of a small CNN.
    defaults = DEFAULTS["selflabel"]

    def __init__(self, cfg: SelfLabelConfig, ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        self.backbone = ctx.create_backbone()
        dim = feature_dim(self.backbone)
        self.heads = nn.ModuleList(nn.Linear(dim, cfg.num_clusters) for _ in range(cfg.num_heads))
        # Labels of every sample for every head; SeLa starts from a random equipartition.
        g = torch.Generator().manual_seed(ctx.cfg.seed)
        start = torch.stack(
            [torch.randperm(ctx.num_train, generator=g) % cfg.num_clusters for _ in self.heads]
        )
        self.register_buffer("pseudo_labels", start)  # (H, N)
        self.update_epochs = label_update_epochs(ctx.cfg.epochs, cfg.label_updates)
        self.rounds: list[dict[str, float]] = []
        self.crop = CropSpec(ctx.image_size, (cfg.crop_min_scale, 1.0))
        self.augment = ColorAugment(ctx.mean, ctx.std, jitter=cfg.jitter, blur_p=0.0)

    def on_epoch_start(self, ctx: TrainContext, epoch: int) -> None:
        if epoch not in self.update_epochs:
            return
        cfg = self.cfg
        # Each rank keeps its own rows' (n_r, H·K) logits; each head's transport problem spans the ranks (only
        # K-length sums and, when rounding, three numbers per point cross them), so no rank holds all N rows.
        rows, logits = ctx.extract_shard(_HeadLogits(self.backbone, self.heads))
        mine = torch.stack(
            [
                sinkhorn_labels(z, lam=cfg.lam, n_iters=cfg.sinkhorn_iters, distributed=True)
                for z in logits.split(cfg.num_clusters, 1)
            ]
        )  # (H, n_r)
        del logits
        labels = gather_by_index(mine.T, rows, total=ctx.num_train).T.cpu()  # (H, N), every rank
        scores = round_nmi(
            labels[0].numpy(),
            self.pseudo_labels[0].cpu().numpy() if self.rounds else None,
            ctx.train.labels.cpu().numpy(),
        )
        scores["cluster_size_max"] = float(np.bincount(labels[0].numpy()).max())
        self.rounds.append({"epoch": float(epoch), **scores})
        ctx.log(**scores)
        self.pseudo_labels.copy_(labels.to(self.pseudo_labels.device))

    def view_specs(self) -> list[CropSpec]:
        return [self.crop]

    def view_colours(self) -> list[ColorAugment]:
        return [self.augment]

    def training_step(self, batch: Batch, step: StepInfo):
        features = self.backbone(batch.views[0])
        targets = self.pseudo_labels[:, batch.indices]  # (H, B)
        # Eq. (3) for each head, averaged over heads.
        losses = [F.cross_entropy(head(features).float(), t) for head, t in zip(self.heads, targets)]
        return torch.stack(losses).mean()

    def get_extra_state(self) -> dict[str, Any]:
        return {"rounds": self.rounds}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.rounds = list(state["rounds"])
