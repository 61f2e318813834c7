"""MoCo v2 — He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020, with the
MLP head, stronger augmentation and τ = 0.2 of Chen et al., "Improved Baselines with Momentum Contrastive
Learning", 2020.

A query encoder f_q and a momentum key encoder f_k (θ_k ← m·θ_k + (1 − m)·θ_q, Eq. 2, no gradient); keys of
past batches wait in a queue of K entries (independent of the batch size), giving a (K + 1)-way InfoNCE
(Eq. 1). All ranks enqueue the same gathered keys.

Shuffle-BN (§3.3): with BatchNorm, a query and its positive key normalised with statistics of the same samples
share a signature that identifies the positive among the queue's keys (computed in other batches), and the model
"cheats". ``--shuffle-bn`` says what prevents it:

* ``ddp-shuffle`` (the paper's, under ``torchrun``): the key batch is shuffled across ranks before f_k, so each
  rank's BN statistics for a query and for its key come from different subsets;
* ``split-bn`` (one process, as the MoCo authors' CIFAR demo and lightly's ``SplitBatchNorm``): both encoders
  normalise over ``--bn-splits`` sub-batches ("ghost" BN, like that many GPUs), and the key batch is shuffled
  before it is split;
* ``off``: plain BN (the leak, for ablations).

``auto`` (the default) picks ``ddp-shuffle`` under ``torchrun``, ``split-bn`` in one process, and ``off`` for a
backbone without BatchNorm (a ViT: nothing leaks); the run's config records what was used.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from trainers.augment import ColorAugment
from trainers.distributed import all_gather_no_grad, rank, world_size
from trainers.methods.base import Batch, Method, StepInfo, feature_dim, momentum_update
from trainers.methods.options import DEFAULTS, MoCoConfig
from trainers.schedules import cosine_schedule
from trainers.views import CropSpec
from zoo.errors import SslzooError

if TYPE_CHECKING:
    from trainers.context import TrainContext

__all__ = ["MoCo", "MoCoConfig", "info_nce_loss", "resolve_shuffle_bn"]


def info_nce_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo's InfoNCE (Eq. 1): −log exp(q·k₊/τ) / (exp(q·k₊/τ) + Σ_{k₋ ∈ queue} exp(q·k₋/τ)).

    Args:
        q: (N, D) L2-normalised queries.
        k: (N, D) L2-normalised positive keys (no gradient).
        queue: (K, D) L2-normalised negative keys.
        temperature: τ.
    """
    l_pos = (q * k).sum(1, keepdim=True)  # (N, 1)
    l_neg = q @ queue.T  # (N, K)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


class MoCo(Method):
    """Query encoder (backbone + MLP head), its momentum copy as key encoder, and a queue of keys."""

    name = "moco"
    Config = MoCoConfig
    defaults = DEFAULTS["moco"]

    def __init__(self, cfg: MoCoConfig, ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        self.backbone = ctx.create_backbone()
        self.projector = nn.Sequential(
            nn.Linear(feature_dim(self.backbone), cfg.proj_hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.proj_hidden_dim, cfg.proj_dim),
        )
        self.key_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        self.key_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(cfg.queue_size, cfg.proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.crop = CropSpec(ctx.image_size, (cfg.crop_min_scale, 1.0))
        self.augment = ColorAugment(ctx.mean, ctx.std, jitter=cfg.jitter)
        # Resolved once, in the config itself: the run's train_config.json (and so its card) says what was used.
        cfg.shuffle_bn = resolve_shuffle_bn(cfg.shuffle_bn, world_size(), _has_batch_norm(self.backbone))

    def view_specs(self) -> list[CropSpec]:
        return [self.crop, self.crop]

    def view_colours(self) -> list[ColorAugment]:
        return [self.augment, self.augment]

    def momentum(self, step: StepInfo) -> float:
        end = self.cfg.momentum if self.cfg.momentum_end is None else self.cfg.momentum_end
        return cosine_schedule(step.global_step, step.total_steps, self.cfg.momentum, end)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write the newest keys (M, D) over the oldest entries of the circular queue."""
        k = self.queue.shape[0]
        keys = keys[-k:]
        idx = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % k
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % k)

    def encode(self, backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of ``x`` (N, …), with BN statistics per sub-batch under ``split-bn``.

        The batch is cut into ``min(bn_splits, N // 2)`` nearly equal parts (BN needs 2 samples); the BN running
        statistics then move once per part, not once per step.
        """
        if self.cfg.shuffle_bn != "split-bn":
            return backbone(x)
        parts = max(1, min(self.cfg.bn_splits, x.shape[0] // 2))
        return torch.cat([backbone(part) for part in torch.tensor_split(x, parts)])

    def queries(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) normalised queries f_q(x)."""
        return F.normalize(self.projector(self.encode(self.backbone, x)).float(), dim=1)

    @torch.no_grad()
    def keys(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(N, D) normalised keys f_k(x) of this rank's images, in their order, computed on a shuffled batch."""
        if self.cfg.shuffle_bn == "split-bn":
            # Shuffled before the split: a key's sub-batch is not its query's (the CIFAR demo's single-GPU shuffle).
            perm = batch.rng.permutation(x.shape[0])
            k = torch.empty(x.shape[0], self.cfg.proj_dim, device=x.device)
            k[perm] = F.normalize(self.key_projector(self.encode(self.key_backbone, x[perm])).float(), dim=1)
            return k
        if self.cfg.shuffle_bn != "ddp-shuffle" or world_size() == 1:
            return F.normalize(self.key_projector(self.key_backbone(x)).float(), dim=1)
        n = x.shape[0]
        x_all = all_gather_no_grad(x)
        perm = batch.rng.permutation(x_all.shape[0])  # the same permutation on every rank
        mine = perm[rank() * n : (rank() + 1) * n]
        k_shuffled = F.normalize(self.key_projector(self.key_backbone(x_all[mine])).float(), dim=1)
        k_all = torch.empty_like(all_gather_no_grad(k_shuffled))
        k_all[perm] = all_gather_no_grad(k_shuffled)  # undo the shuffle
        return k_all[rank() * n : (rank() + 1) * n]

    def training_step(self, batch: Batch, step: StepInfo):
        x_q, x_k = batch.views
        # Eq. (2), before the keys are computed, as in the reference implementation.
        m = self.momentum(step)
        momentum_update(self.key_backbone, self.backbone, m)
        momentum_update(self.key_projector, self.projector, m)
        q = self.queries(x_q)
        k = self.keys(x_k, batch)
        loss = info_nce_loss(q, k, self.queue.clone(), self.cfg.temperature)
        self.enqueue(all_gather_no_grad(k))
        return loss, {"momentum": m}


def _has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def resolve_shuffle_bn(choice: str, processes: int, batch_norm: bool) -> str:
    """What ``--shuffle-bn`` ``choice`` means for a run of ``processes`` ranks and a backbone with(out) BN.

    >>> resolve_shuffle_bn("auto", 1, True), resolve_shuffle_bn("auto", 2, True), resolve_shuffle_bn("auto", 1, False)
    ('split-bn', 'ddp-shuffle', 'off')
    """
    if choice == "ddp-shuffle" and processes == 1:
        raise SslzooError(
            "--shuffle-bn ddp-shuffle needs several processes (torchrun); in one process use split-bn (or auto)."
        )
    if choice != "auto":
        return choice
    if not batch_norm:
        return "off"
    return "ddp-shuffle" if processes > 1 else "split-bn"
