"""The peer of ``bench_vs_lightly.py``: SimCLR, MoCo v2, BYOL and DINO as a plain PyTorch loop built from lightly's
own parts — its losses, heads, transforms, momentum, weight-decay and schedule utilities — the way lightly's CIFAR-10
benchmark (``docs/source/getting_started/benchmarks/cifar10_benchmark.py``) builds them, without Lightning.

Each method gets the hyper-parameters of :data:`bench_vs_lightly.RECIPES`, the same ones our engine trains with;
what lightly does differently by design (its heads, its PIL augmentations) is kept, and :func:`differences` says
what they are. Nothing here imports our trainers: only the backbone (a timm model) and the data arrays are shared.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from lightly.loss import DINOLoss, NegativeCosineSimilarity, NTXentLoss
from lightly.models.batchnorm import SplitBatchNorm
from lightly.models.modules import heads
from lightly.models.utils import batch_shuffle, batch_unshuffle, get_weight_decay_parameters, update_momentum
from lightly.transforms import (
    BYOLTransform,
    BYOLView1Transform,
    BYOLView2Transform,
    DINOTransform,
    MoCoV2Transform,
    SimCLRTransform,
)
from lightly.utils.scheduler import CosineWarmupScheduler, cosine_schedule
from PIL import Image
from torch import nn

__all__ = ["LightlyLoop", "LightlyRun", "differences", "train_lightly"]


class _Images(torch.utils.data.Dataset):
    """(N, H, W, C) uint8 images as PIL (grey or RGB) through a lightly multi-view transform."""

    def __init__(self, images: np.ndarray, transform: Any) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        array = np.asarray(self.images[i])
        image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        return self.transform(image)


def _transform(method: str, r: dict[str, Any], side: int, local: int, mean, std) -> Any:
    """lightly's transform of ``method`` with the recipe's crop scales, jitter strength and blur, σ scaled to
    ``side`` as our views scale it (the papers' 0.1–2 px at 224 px)."""
    norm = {"mean": list(mean), "std": list(std)}
    sigmas = (0.1 * side / 224, 2.0 * side / 224)
    # Our jitter strength s gives brightness/contrast/saturation 0.8·s and hue 0.2·s (SimCLR App. A).
    jitter = {"cj_strength": r["jitter"], "cj_bright": 0.8, "cj_contrast": 0.8, "cj_sat": 0.8, "cj_hue": 0.2}
    if method == "simclr":
        return SimCLRTransform(side, min_scale=r["crop_min_scale"], sigmas=sigmas, normalize=norm, **jitter)
    if method == "moco":
        return MoCoV2Transform(side, min_scale=r["crop_min_scale"], sigmas=sigmas, normalize=norm, **jitter)
    if method in ("byol", "dino"):
        jitter["cj_sat"] = 0.4  # BYOL's Table 6 and DINO's saturation 0.2 beside brightness/contrast 0.4
    if method == "byol":
        view = {"min_scale": r["crop_min_scale"], "sigmas": sigmas, "normalize": norm, **jitter}
        return BYOLTransform(
            BYOLView1Transform(side, gaussian_blur=1.0, solarization_prob=0.0, **view),
            BYOLView2Transform(side, gaussian_blur=0.1, solarization_prob=0.2, **view),
        )
    if method == "dino":
        return DINOTransform(
            global_crop_size=side,
            global_crop_scale=(r["global_crop_min_scale"], 1.0),
            local_crop_size=local,
            local_crop_scale=(0.05, r["global_crop_min_scale"]),
            n_local_views=r["n_local_crops"],
            sigmas=sigmas,
            gaussian_blur=(1.0, 0.1, 0.5),
            solarization_prob=0.2,
            normalize=norm,
            **jitter,
        )
    raise ValueError(f"no lightly peer for {method!r}")


def split_batch_norm(module: nn.Module, splits: int) -> nn.Module:
    """Every BatchNorm2d of ``module`` replaced by lightly's SplitBatchNorm (MoCo's one-device shuffle-BN, as the
    CIFAR-10 benchmark's ``ResNetGenerator(num_splits=8)``)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            setattr(module, name, SplitBatchNorm(child.num_features, splits))
        else:
            split_batch_norm(child, splits)
    return module


def plain_batch_norm(trained: nn.Module, fresh: nn.Module) -> nn.Module:
    """``fresh`` (the same architecture with plain BN) loaded with ``trained``'s weights, SplitBatchNorm's running
    statistics averaged over its splits (what SplitBatchNorm itself uses in eval mode)."""
    trained.eval()  # SplitBatchNorm.train(False) collates the statistics of its splits
    state = {}
    fresh_state = fresh.state_dict()
    for key, value in trained.state_dict().items():
        target = fresh_state[key]
        state[key] = value[: target.numel()].view_as(target) if value.shape != target.shape else value
    fresh.load_state_dict(state)
    return fresh


class _Method(nn.Module):
    """One method: its networks, its loss step and its momentum update, as the CIFAR-10 benchmark writes them."""

    def step(self, views: list[torch.Tensor], t: int, total: int) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, t: int, total: int) -> None:
        """After the optimiser step (the momentum update of methods with a target)."""

    def before_optimizer_step(self, t: int, steps_per_epoch: int) -> None:
        """After backward, before the optimiser (DINO's frozen last layer)."""

    def encoder(self) -> nn.Module:
        return self.backbone


class SimCLR(_Method):
    def __init__(self, backbone: nn.Module, dim: int, r: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = heads.SimCLRProjectionHead(
            dim, r["proj_hidden_dim"], r["proj_dim"], batch_norm=r.get("head_bn", True)
        )
        self.criterion = NTXentLoss(temperature=r["temperature"])

    def step(self, views, t, total):
        x0, x1 = views
        return self.criterion(
            self.projection_head(self.backbone(x0)), self.projection_head(self.backbone(x1))
        )


class MoCo(_Method):
    """MoCo v2 as the paper trains it: one loss, queries from the first view, keys of the second from the
    momentum encoder (lightly's CIFAR-10 benchmark symmetrises it, which doubles the cost per step)."""

    def __init__(self, backbone: nn.Module, dim: int, r: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = split_batch_norm(backbone, r["bn_splits"])
        self.projection_head = heads.MoCoProjectionHead(dim, r["proj_hidden_dim"], r["proj_dim"])
        self.backbone_momentum = copy.deepcopy(self.backbone).requires_grad_(False)
        self.projection_head_momentum = copy.deepcopy(self.projection_head).requires_grad_(False)
        self.criterion = NTXentLoss(r["temperature"], memory_bank_size=(r["queue_size"], r["proj_dim"]))
        self.m = r["momentum"]

    def step(self, views, t, total):
        x0, x1 = views
        update_momentum(self.backbone, self.backbone_momentum, self.m)
        update_momentum(self.projection_head, self.projection_head_momentum, self.m)
        q = self.projection_head(self.backbone(x0))
        with torch.no_grad():
            x1, shuffle = batch_shuffle(x1)
            k = batch_unshuffle(self.projection_head_momentum(self.backbone_momentum(x1)), shuffle)
        return self.criterion(q, k)


class BYOL(_Method):
    def __init__(self, backbone: nn.Module, dim: int, r: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = heads.BYOLProjectionHead(dim, r["proj_hidden_dim"], r["proj_dim"])
        self.prediction_head = heads.BYOLPredictionHead(r["proj_dim"], r["proj_hidden_dim"], r["proj_dim"])
        self.backbone_momentum = copy.deepcopy(self.backbone).requires_grad_(False)
        self.projection_head_momentum = copy.deepcopy(self.projection_head).requires_grad_(False)
        self.criterion = NegativeCosineSimilarity()
        self.m0, self.m1 = r["momentum"], 1.0

    def step(self, views, t, total):
        x0, x1 = views
        p0 = self.prediction_head(self.projection_head(self.backbone(x0)))
        p1 = self.prediction_head(self.projection_head(self.backbone(x1)))
        with torch.no_grad():
            z0 = self.projection_head_momentum(self.backbone_momentum(x0))
            z1 = self.projection_head_momentum(self.backbone_momentum(x1))
        return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))

    def after_step(self, t, total):
        m = cosine_schedule(t, total, self.m0, self.m1)
        update_momentum(self.backbone, self.backbone_momentum, m)
        update_momentum(self.projection_head, self.projection_head_momentum, m)


class DINO(_Method):
    def __init__(self, backbone: nn.Module, dim: int, r: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = heads.DINOProjectionHead(dim, r["hidden_dim"], r["bottleneck_dim"], r["out_dim"])
        self.teacher_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        # A weight-normalised head cannot be deep-copied: lightly's benchmarks build the teacher's anew; it starts
        # from the student's weights, as main_dino.py's teacher.
        self.teacher_head = heads.DINOProjectionHead(dim, r["hidden_dim"], r["bottleneck_dim"], r["out_dim"])
        self.teacher_head.load_state_dict(self.head.state_dict())
        self.teacher_head.requires_grad_(False)
        self.criterion = DINOLoss(
            output_dim=r["out_dim"],
            warmup_teacher_temp=r["teacher_temp"],
            teacher_temp=r["teacher_temp"],
            warmup_teacher_temp_epochs=0,
            student_temp=r["student_temp"],
        )
        self.m0, self.freeze_epochs = r["momentum"], r["freeze_last_layer_epochs"]

    def step(self, views, t, total):
        with torch.no_grad():
            teacher_out = [self.teacher_head(self.teacher_backbone(v)) for v in views[:2]]
        student_out = [self.head(self.backbone(v)) for v in views]
        return self.criterion(teacher_out, student_out)

    def before_optimizer_step(self, t, steps_per_epoch):
        # DINOProjectionHead.cancel_last_layer_gradients compares whole epochs; the recipe freezes ¼ epoch.
        if t < self.freeze_epochs * steps_per_epoch:
            self.head.last_layer.weight.grad = None

    def after_step(self, t, total):
        m = cosine_schedule(t, total, self.m0, 1.0)
        update_momentum(self.backbone, self.teacher_backbone, m)
        update_momentum(self.head, self.teacher_head, m)

    def encoder(self) -> nn.Module:
        return self.teacher_backbone  # as ours and the paper: the teacher is evaluated


METHODS = {"simclr": SimCLR, "moco": MoCo, "byol": BYOL, "dino": DINO}


@dataclass
class LightlyRun:
    encoder: nn.Module
    seconds: float
    images: int


class LightlyLoop:
    """The plain loop's parts for ``method`` on ``images`` (N, H, W, C) uint8 at ``budget`` (epochs, batch, lr…):
    the DataLoader of lightly's transform, the model, AdamW over lightly's weight-decay split and lightly's cosine
    warm-up schedule. :meth:`step` is one optimiser step; :func:`train_lightly` runs them all."""

    def __init__(
        self, method: str, recipe: dict[str, Any], budget: Any, images, mean, std, side: int, make_backbone
    ):
        torch.manual_seed(budget.seed)
        np.random.seed(budget.seed)  # lightly's GaussianBlur and solarisation draw from numpy
        self.method, self.recipe, self.budget = method, recipe, budget
        local = recipe.get("local_crop_size") or max(8, round(side * 96 / 224))
        self.loader = torch.utils.data.DataLoader(
            _Images(images, _transform(method, recipe, side, local, mean, std)),
            batch_size=budget.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=budget.workers,
            generator=torch.Generator().manual_seed(budget.seed),
            persistent_workers=budget.workers > 0,
        )
        backbone = make_backbone()
        self.model = METHODS[method](backbone, backbone.num_features, recipe)
        if budget.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # lightly's weight-decay split (no decay on norms and biases), the same exclusions as our param_groups().
        decay, no_decay = get_weight_decay_parameters([self.model])
        self.params = [p for p in decay + no_decay if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": [p for p in decay if p.requires_grad], "weight_decay": budget.weight_decay},
                {"params": [p for p in no_decay if p.requires_grad], "weight_decay": 0.0},
            ],
            lr=budget.lr,
        )
        self.steps_per_epoch = len(self.loader)
        self.total = self.steps_per_epoch * budget.epochs
        warmup = min(round(budget.warmup_epochs * self.steps_per_epoch), self.total // 2)  # ours caps it so
        self.scheduler = CosineWarmupScheduler(
            self.optimizer, warmup, self.total, end_value=budget.min_lr / budget.lr
        )
        self.model.train()

    def step(self, views: list[torch.Tensor], t: int) -> torch.Tensor:
        if self.budget.channels_last:
            views = [v.to(memory_format=torch.channels_last) for v in views]
        loss = self.model.step(views, t, self.total)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.model.before_optimizer_step(t, self.steps_per_epoch)
        if self.recipe.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(self.params, self.recipe["grad_clip"])
        self.optimizer.step()
        self.scheduler.step()
        self.model.after_step(t, self.total)
        return loss.detach()


def train_lightly(
    method: str,
    recipe: dict[str, Any],
    budget: Any,
    images: np.ndarray,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    side: int,
    make_backbone: Any,
) -> LightlyRun:
    """Train ``method`` with lightly's parts on ``images`` (N, H, W, C) uint8 at ``budget`` (epochs, batch, lr…)."""
    start = time.perf_counter()
    loop = LightlyLoop(method, recipe, budget, images, mean, std, side, make_backbone)
    t = 0
    for _epoch in range(budget.epochs):
        for views in loop.loader:
            loop.step(views, t)
            t += 1
    seconds = time.perf_counter() - start
    encoder = loop.model.encoder()
    if method == "moco":
        encoder = plain_batch_norm(encoder, make_backbone())
    return LightlyRun(encoder.to(memory_format=torch.contiguous_format), seconds, t * budget.batch_size)


def differences(method: str) -> list[str]:
    """How lightly's side of ``method`` differs from ours, by design of the two libraries."""
    common = [
        "augmentations: lightly's torchvision/PIL transforms per image in the DataLoader, ours batched tensor ops "
        "(same crop scales, flip 0.5, jitter p 0.8 with brightness/contrast 0.8·s, blur probabilities, σ scaled "
        "to the side); lightly's blur is PIL's box-approximated Gaussian, ours a pixel-integrated kernel; ours "
        "clip after each jitter op, so do torchvision's; random streams differ",
    ]
    own = {
        "simclr": [
            "head: both with BatchNorm after the hidden layer (lightly's SimCLRProjectionHead; ours since this "
            "comparison, as SimCLR's code: without it ours was 0.35 k-NN behind on a validation split)"
        ],
        "moco": [
            "shuffle-BN: both split BN over 8 sub-batches with the key batch shuffled; lightly's SplitBatchNorm "
            "splits by stride, ours into contiguous parts; both sides run contiguous (not channels-last): "
            "SplitBatchNorm cannot view a channels-last batch",
            "queue: lightly's memory bank starts random and is read before it is written, as ours",
        ],
        "byol": [
            "loss: lightly's 0.5·(−cos − cos), ours (2 − 2cos) + (2 − 2cos): the same gradient direction, 4×"
        ],
        "dino": [
            "head: lightly's DINOProjectionHead (GELU MLP, no BN, weight-normalised last layer), as ours",
            "gradient clipping at 3.0: ours per parameter (the DINO repository's clip_gradients), lightly's "
            "loop on the global norm (its ImageNet DINO benchmark's configure_gradient_clipping)",
        ],
    }
    return own.get(method, []) + common
