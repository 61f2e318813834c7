"""DeeperCluster — Caron et al., "Unsupervised Pre-Training of Image Features on Non-Curated Data", ICCV 2019.

DeepCluster combined with rotation prediction (RotNet) through a hierarchical loss (Sec. 3.3). Every input is
rotated by 0°, 90°, 180° or 270°. k-means on the un-rotated features gives m super-clusters; their Cartesian
product with the 4 rotations gives 4m super-classes, predicted by a linear classifier V. Each super-cluster is
split again by k-means into k sub-classes, predicted by a head W_s of the input's super-class s. The loss of a
sample is CE(V f(x), s) + CE(W_s f(x), sub-class) — Eq. (3)'s two terms, the second only within the true s.
Clustering runs every T epochs (``cluster_every``).

Everything else — the clustering round, uniform sampling over the m·k pseudo-labels, re-initialising heads,
NMI logging and resume — is DeepCluster's (this class extends it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainers.clustering import N_ROTATIONS, hierarchical_kmeans, pca_whiten, super_class_targets
from trainers.methods.base import Batch, StepInfo
from trainers.methods.deepcluster import DeepCluster
from trainers.methods.options import DeeperClusterConfig
from zoo.errors import SslzooError

__all__ = ["DeeperCluster", "DeeperClusterConfig", "SubClassHeads", "hierarchical_loss", "rotate_batch"]


def rotate_batch(images: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Rotate each (C, H, W) image of a square (B, C, H, W) batch by ``rotations[i] · 90°`` counter-clockwise."""
    out = images.clone()
    for r in range(1, N_ROTATIONS):
        chosen = rotations == r
        if chosen.any():
            out[chosen] = torch.rot90(images[chosen], r, dims=(2, 3))
    return out


def hierarchical_loss(
    super_logits: torch.Tensor,
    sub_logits: torch.Tensor,
    super_targets: torch.Tensor,
    sub_targets: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DeeperCluster's two cross-entropies (Eq. 3).

    Args:
        super_logits: (B, 4m) scores of V.
        sub_logits: (B, k) scores of W_s, the head of each sample's true super-class s.
        super_targets: (B,) super-class in [0, 4m).
        sub_targets: (B,) sub-class in [0, k).

    Returns:
        ``(super_loss, sub_loss)``; the training loss is their sum.
    """
    return F.cross_entropy(super_logits.float(), super_targets), F.cross_entropy(
        sub_logits.float(), sub_targets
    )


class SubClassHeads(nn.Module):
    """The 4m heads W_s, one k-way linear classifier per super-class, stored as one (4m, k, D) tensor."""

    def __init__(self, n_super: int, k: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_super, k, dim))
        self.bias = nn.Parameter(torch.empty(n_super, k))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.01)
        nn.init.zeros_(self.bias)

    def forward(self, features: torch.Tensor, supers: torch.Tensor) -> torch.Tensor:
        """(B, D) features and (B,) super-classes → (B, k) logits of each sample's own head W_s.

        One product per super-class present in the batch. Gathering a (B, k, D) weight per sample instead
        (``weight[supers]``) back-propagates through an accumulating scatter whose order of summation varies between
        calls on a multi-threaded CPU: 30 backward passes on the same tensors gave 30 different gradients, and two
        runs with the same seed drifted apart after 8 steps.
        """
        logits = None
        for s in torch.unique(supers).tolist():
            rows = (supers == s).nonzero(as_tuple=True)[0]
            block = features[rows] @ self.weight[s].T + self.bias[s]
            # In the dtype the product came out in: under bf16 autocast the float32 bias promotes it, so a buffer
            # shaped like the (bf16) features would refuse it.
            if logits is None:
                logits = block.new_empty(len(features), block.shape[1])
            logits[rows] = block
        return logits


class DeeperCluster(DeepCluster):
    """Backbone + super-class classifier V (4m outputs) + one k-way head W_s per super-class."""

    name = "deepercluster"
    Config = DeeperClusterConfig

    def check_cluster_count(self, num_train: int) -> None:
        m, k = self.cfg.super_clusters, self.cfg.sub_clusters
        if m * k > num_train:
            raise SslzooError(
                f"--super-clusters {m} × --sub-clusters {k} = {m * k} clusters is more than the {num_train} "
                "training images; lower them (the recipes' values suit ImageNet's 1.28M images)."
            )

    def build_heads(self, dim: int) -> None:
        m, k = self.cfg.super_clusters, self.cfg.sub_clusters
        self.super_classifier = nn.Linear(dim, N_ROTATIONS * m)
        self.sub_heads = SubClassHeads(N_ROTATIONS * m, k, dim)

    def reset_heads(self) -> None:
        nn.init.normal_(self.super_classifier.weight, std=0.01)
        nn.init.zeros_(self.super_classifier.bias)
        self.sub_heads.reset_parameters()
        self.ctx.reset_optimizer_state(self.super_classifier)
        self.ctx.reset_optimizer_state(self.sub_heads)

    def assign(self, features: torch.Tensor, seed: int) -> np.ndarray:
        """(N, D) features → (N,) label ``cluster · k + sub``: m super-clusters, then k sub-clusters in each."""
        cfg = self.cfg
        whitened = pca_whiten(features, cfg.pca_dim)
        clusters, subs = hierarchical_kmeans(
            whitened, cfg.super_clusters, cfg.sub_clusters, niter=cfg.kmeans_iters, seed=seed
        )
        return clusters * cfg.sub_clusters + subs

    def training_step(self, batch: Batch, step: StepInfo):
        k = self.cfg.sub_clusters
        labels = self.pseudo_labels[batch.indices]
        clusters, subs = labels // k, labels % k
        # Per-sample rotation drawn for the global batch, so it does not depend on the rank a sample lands on.
        rotations = batch.rng.randint(N_ROTATIONS)
        features = self.backbone(rotate_batch(batch.views[0], rotations))
        supers = super_class_targets(clusters, rotations)
        super_logits = self.super_classifier(features)
        super_loss, sub_loss = hierarchical_loss(super_logits, self.sub_heads(features, supers), supers, subs)
        return super_loss + sub_loss, {
            "super_loss": super_loss.item(),
            "sub_loss": sub_loss.item(),
            "super_acc": (super_logits.argmax(1) == supers).float().mean().item(),
            "rotation_acc": (super_logits.argmax(1) % N_ROTATIONS == rotations).float().mean().item(),
        }
