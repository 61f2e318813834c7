"""What a method may use: run facts, the data sources, and a few collective helpers (:class:`TrainContext`)."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainers import distributed as dist_utils
from trainers.augment import normalize
from trainers.config import TrainConfig
from trainers.loader import ViewLoader
from trainers.sources import ImageSource
from trainers.views import EvalSpec
from zoo.errors import SslzooError

__all__ = ["TrainContext", "is_vit"]


def is_vit(arch: str) -> bool:
    return "vit" in arch or "deit" in arch


@dataclass
class TrainContext:
    """What a method may use: run facts, the data, and a few collective helpers.

    Attributes:
        cfg: The shared options.
        run_dir: The run folder.
        device: Where the networks live.
        rank, world_size: This process among all (0 and 1 without ``torchrun``).
        in_chans, image_size: Channels and training side of the views.
        mean, std: Per-channel normalisation (also saved in the export).
        train: The train split (images opened on demand; true labels only for monitoring, -1 if unlabelled).
        test: The labelled split of the k-NN monitor, when there is one.
        bank: The labelled split whose features the k-NN monitor votes with (train, or ``--eval-dataset``'s).
        eval_spec: The deterministic view of feature extraction (what the export declares).
        workers: DataLoader worker processes per rank.
        local_batch_size, global_batch_size: Samples per rank and in total per step.
        steps_per_epoch, total_steps: Optimiser steps.
        resumed: Whether this process continued a checkpoint.
        optimizer: The optimiser (set once the method's parameters are known).
        global_step: Optimiser steps done so far.
    """

    cfg: TrainConfig
    run_dir: Path
    device: torch.device
    rank: int
    world_size: int
    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: ImageSource
    test: ImageSource | None
    bank: ImageSource | None
    eval_spec: EvalSpec
    workers: int
    local_batch_size: int
    global_batch_size: int
    steps_per_epoch: int
    total_steps: int
    arch_args: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False
    optimizer: torch.optim.Optimizer | None = None
    global_step: int = 0
    amp_dtype: torch.dtype | None = None
    _pending_logs: dict[str, float] = field(default_factory=dict)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def num_classes(self) -> int:
        return int(self.train.labels.max()) + 1

    def create_backbone(self) -> nn.Module:
        """A fresh timm encoder of ``cfg.arch`` (``num_classes=0``; ``.num_features`` is its width)."""
        import timm

        import zoo.architectures  # noqa: F401  (registers the sslzoo_* architectures)

        try:
            return timm.create_model(self.cfg.arch, pretrained=False, **self.model_args())
        except RuntimeError as exc:
            if "Unknown model" in str(exc):
                raise SslzooError(
                    f"unknown architecture {self.cfg.arch!r}; see timm.list_models() or use sslzoo_cnn4, "
                    "sslzoo_resnet18_small, sslzoo_vit_tiny_patch4, resnet50, vit_small_patch16_224."
                ) from None
            raise
        except TypeError as exc:  # an --arch-args key the architecture does not take
            raise SslzooError(f"--arch-args do not fit {self.cfg.arch!r}: {exc}") from None

    def model_args(self) -> dict[str, Any]:
        """Arguments ``timm.create_model`` needs to rebuild the encoder (saved in the export)."""
        args: dict[str, Any] = {"num_classes": 0, "in_chans": self.in_chans}
        if is_vit(self.cfg.arch):
            # Views of several sizes (DINO's local crops) need position embeddings interpolated on the fly.
            args.update(img_size=self.image_size, dynamic_img_size=True)
        return {**args, **self.arch_args}

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) floats in [0, 1] → normalised with the run's mean and std."""
        return normalize(images, self.mean, self.std)

    def to_float(self, crops: torch.Tensor) -> torch.Tensor:
        """A (B, C, S, S) uint8 batch from the workers → floats in [0, 1] on the device."""
        images = crops.to(self.device, non_blocking=True).float().div_(255.0)
        if self.cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def eval_loader(self, source: ImageSource) -> ViewLoader:
        return ViewLoader(
            source, self.eval_spec, self.cfg.seed, self.workers, pin_memory=self.device.type == "cuda"
        )

    @torch.no_grad()
    def extract_features(
        self,
        module: nn.Module,
        split: str = "train",
        indices: torch.Tensor | None = None,
        batch_size: int = 512,
    ) -> torch.Tensor:
        """(N, D) float32 features of a whole split, in eval mode without augmentation, on every rank.

        ``split`` is ``train``, ``test`` or ``bank`` (the k-NN monitor's labelled reference split). Each rank
        computes a contiguous shard (decoded by its DataLoader workers) and the shards are all-gathered, so every
        rank returns the same tensor, in the order of ``indices`` (default: the whole split). Call it on every rank.
        """
        idx = self._split_indices(split, indices)
        n = idx.numel()
        per_rank = math.ceil(n / self.world_size)
        padded = torch.cat([idx, idx[: per_rank * self.world_size - n]]) if n else idx
        local = self._embed(
            module, split, padded[self.rank * per_rank : (self.rank + 1) * per_rank], batch_size
        )
        return dist_utils.all_gather_no_grad(local)[:n]

    @torch.no_grad()
    def extract_shard(
        self, module: nn.Module, split: str = "train", batch_size: int = 512
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of a split and their (n_r, D) float32 features; nothing is gathered.

        The ranks' contiguous shards, in rank order, are the split once (no padding), so a solver that spans the
        ranks (:func:`trainers.clustering.sinkhorn_labels`, ``distributed=True``) sees every sample once.
        Returns ``(rows, features)``: ``(n_r,)`` int64 positions in the split and their features.
        """
        idx = self._split_indices(split, None)
        per_rank = math.ceil(idx.numel() / self.world_size)
        mine = idx[self.rank * per_rank : (self.rank + 1) * per_rank]
        return mine, self._embed(module, split, mine, batch_size)

    def _split_indices(self, split: str, indices: torch.Tensor | None) -> torch.Tensor:
        source = {"train": self.train, "test": self.test, "bank": self.bank}[split]
        if source is None:
            raise SslzooError(f"dataset {self.cfg.dataset!r} has no {split!r} split.")
        return torch.arange(len(source)) if indices is None else indices.cpu()

    def _embed(self, module: nn.Module, split: str, rows: torch.Tensor, batch_size: int) -> torch.Tensor:
        """(len(rows), D) float32 features of ``rows`` of ``split``, computed by this rank alone."""
        source = {"train": self.train, "test": self.test, "bank": self.bank}[split]
        was_training = module.training
        module.eval()
        feats = []
        try:
            for views in self.eval_loader(source).sequential(rows, batch_size):
                with self.autocast():
                    feats.append(module(self.normalize(self.to_float(views.crops[0]))).float())
        finally:
            module.train(was_training)
        return torch.cat(feats) if feats else torch.zeros(0, device=self.device)

    def all_gather(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate (B, ...) tensors of equal shape from all ranks (no gradient)."""
        return dist_utils.all_gather_no_grad(x)

    def broadcast(self, x: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Rank ``src``'s tensor on every rank (in place)."""
        return dist_utils.broadcast(x, src)

    def log(self, **values: float) -> None:
        """Add values to the next ``metrics.jsonl`` row (``ctx.log(nmi=0.61)``)."""
        self._pending_logs.update({k: float(v) for k, v in values.items()})

    def reset_optimizer_state(self, module: nn.Module) -> None:
        """Forget the optimiser's momentum / Adam moments of ``module``'s parameters (after re-initialising it)."""
        if self.optimizer is None:
            return
        for p in module.parameters():
            self.optimizer.state.pop(p, None)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
