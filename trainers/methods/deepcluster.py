"""DeepCluster — Caron et al., "Deep Clustering for Unsupervised Learning of Visual Features", ECCV 2018.

Alternate two steps (Sec. 3.2): (1) cluster the features of the whole train split — PCA-whitened, L2-normalised,
k-means into k groups (Eq. 2) — and take the assignments as pseudo-labels; (2) train the network to predict them
with a linear classifier and cross-entropy (Eq. 1). Trivial solutions are avoided as in Sec. 3.3: empty clusters
are refilled by splitting a non-empty one, batches are sampled uniformly over pseudo-labels, and the classifier is
re-initialised after every clustering round (its old rows mean nothing for the new clusters).

The clustering building blocks live in :mod:`trainers.clustering`; under DDP the features of all ranks are
gathered by the engine, k-means runs once on rank 0 and the labels are broadcast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainers.augment import ColorAugment
from trainers.clustering import UniformLabelSampler, cluster_features, round_nmi, solve_once
from trainers.methods.base import Batch, Method, StepInfo, feature_dim
from trainers.methods.options import DEFAULTS, DeepClusterConfig, check_minimums
from trainers.views import CropSpec
from zoo.errors import SslzooError

if TYPE_CHECKING:
    from trainers.context import TrainContext

__all__ = ["DeepCluster", "DeepClusterConfig", "check_minimums"]


def create_backbone(ctx: TrainContext, sobel: bool) -> nn.Module:
    """``ctx.create_backbone()``, or with ``sobel`` the same architecture behind fixed grayscale + Sobel filters.

    The Sobel version is timm's ``sslzoo_sobel`` (:mod:`zoo.sobel`) with ``base_arch=ctx.cfg.arch``, so the
    exported encoder carries its filters and ``zoo.load`` rebuilds it (see :meth:`DeepCluster.encoder_model_args`).
    """
    if not sobel:
        return ctx.create_backbone()
    import timm

    import zoo.architectures  # noqa: F401  (registers sslzoo_sobel)

    try:
        return timm.create_model("sslzoo_sobel", base_arch=ctx.cfg.arch, **ctx.model_args())
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise SslzooError(f"unknown architecture {ctx.cfg.arch!r}; see timm.list_models().") from None
        raise


class DeepCluster(Method):
    """Backbone + linear classifier over the current k-means pseudo-labels."""

    needs_random_access = True  # pseudo-labels of every image, by index
    name = "deepcluster"
    Config = DeepClusterConfig
    # The paper trains AlexNet/VGG with SGD (lr 0.05, wd 1e-5) for 500 epochs; for a few CPU epochs of a small
    # CNN, AdamW learns each round's classifier within the round.
    defaults = DEFAULTS["deepcluster"]

    def __init__(self, cfg: Any, ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        self.check_cluster_count(ctx.num_train)
        self.backbone = create_backbone(ctx, cfg.sobel)
        self.build_heads(feature_dim(self.backbone))
        # Pseudo-label of every train sample (−1: not clustered yet); a buffer, so checkpoints carry it.
        self.register_buffer("pseudo_labels", torch.full((ctx.num_train,), -1, dtype=torch.long))
        self.rounds: list[dict[str, float]] = []
        # Random resized crops and flips only (Sec. 4): colour cues would make clusters trivial.
        self.crop = CropSpec(ctx.image_size, (cfg.crop_min_scale, 1.0))
        self.augment = ColorAugment(ctx.mean, ctx.std, jitter_p=0.0, gray_p=0.0, blur_p=0.0)

    # ------------------------------------------------------------------ what DeeperCluster overrides
    def check_cluster_count(self, num_train: int) -> None:
        """k-means cannot make more clusters than there are images: say so before any network is built."""
        if self.cfg.k > num_train:
            raise SslzooError(
                f"--k {self.cfg.k} clusters is more than the {num_train} training images; pass --k {num_train} "
                "or fewer (the recipes' k suits ImageNet's 1.28M images)."
            )

    def build_heads(self, dim: int) -> None:
        self.classifier = nn.Linear(dim, self.cfg.k)

    def reset_heads(self) -> None:
        """A fresh classifier for the new clusters (DeepCluster's code: N(0, 0.01) weights, zero bias)."""
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)
        self.ctx.reset_optimizer_state(self.classifier)

    def assign(self, features: torch.Tensor, seed: int) -> np.ndarray:
        """(N, D) features → (N,) pseudo-labels: PCA-whiten, L2-normalise, k-means (runs on rank 0 only)."""
        cfg = self.cfg
        return cluster_features(
            features, cfg.k, pca_dim=cfg.pca_dim, niter=cfg.kmeans_iters, seed=seed
        ).labels

    def training_step(self, batch: Batch, step: StepInfo):
        logits = self.classifier(self.backbone(batch.views[0]))
        targets = self.pseudo_labels[batch.indices]
        loss = F.cross_entropy(logits.float(), targets)  # Eq. (1)
        return loss, {"acc": (logits.argmax(1) == targets).float().mean().item()}

    # ------------------------------------------------------------------ the clustering round
    def on_epoch_start(self, ctx: TrainContext, epoch: int) -> None:
        if epoch % self.cfg.cluster_every:
            return
        features = ctx.extract_features(self.backbone)  # (N, D), all ranks, dataset order
        seed = ctx.cfg.seed * 1000 + len(self.rounds)
        labels = solve_once(lambda: self.assign(features.cpu(), seed))
        new = torch.as_tensor(labels, dtype=torch.long)
        scores = round_nmi(new.numpy(), self.pseudo_labels.cpu().numpy(), ctx.train.labels.cpu().numpy())
        scores["clusters"] = float(len(np.unique(labels)))
        self.rounds.append({"epoch": float(epoch), **scores})
        ctx.log(**scores)
        self.pseudo_labels.copy_(new.to(self.pseudo_labels.device))
        self.reset_heads()

    def epoch_indices(self, ctx: TrainContext, epoch: int) -> torch.Tensor:
        """Sample uniformly over pseudo-labels (Sec. 3.3), the same order on every rank."""
        sampler = UniformLabelSampler(
            self.pseudo_labels.cpu().numpy(), num_samples=ctx.num_train, seed=ctx.cfg.seed
        )
        sampler.set_epoch(epoch)
        return torch.from_numpy(sampler.global_indices())

    def view_specs(self) -> list[CropSpec]:
        return [self.crop]

    def view_colours(self) -> list[ColorAugment]:
        return [self.augment]

    def encoder_model_args(self, model_args: dict[str, Any]) -> dict[str, Any]:
        # With Sobel filters the exported architecture is sslzoo_sobel around the configured one.
        return {**model_args, "base_arch": self.ctx.cfg.arch} if self.cfg.sobel else model_args

    # ------------------------------------------------------------------ resume
    def get_extra_state(self) -> dict[str, Any]:
        return {"rounds": self.rounds}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.rounds = list(state["rounds"])
