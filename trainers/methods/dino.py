"""DINO — Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021.

Self-distillation with no labels: a student g_θs is trained to match a teacher g_θt of the same architecture on
different crops of an image. The teacher sees the 2 global crops, the student all crops (2 global + several
local, multi-crop §3.1); the loss is Σ_{x ∈ global} Σ_{x′ ≠ x} H(P_t(x), P_s(x′)) (Eq. 3) with
P = softmax(g(x)/τ). Collapse is avoided by *centering* the teacher, g_t(x) ← g_t(x) − c with
c ← m·c + (1 − m)·mean_batch(g_t) (Eq. 4, the mean all-reduced over ranks), and *sharpening* it with
τ_t < τ_s (τ_t warmed up linearly). The teacher is an EMA of the student, λ from 0.996 to 1 by cosine. The head
has no batch norm (ViTs have none either), ending in an L2-normalised bottleneck and a weight-normalised layer.
As in the repository, each parameter's gradient norm is clipped at 3.0 on its own (``--param-grad-clip``), not the
global norm (``--grad-clip``, off by default for DINO); the run config records both.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from trainers.augment import ColorAugment
from trainers.distributed import all_reduce_mean
from trainers.methods.base import Batch, Method, StepInfo, feature_dim, momentum_update
from trainers.methods.options import DEFAULTS, DINOConfig
from trainers.schedules import cosine_schedule, linear_warmup
from trainers.views import CropSpec

if TYPE_CHECKING:
    from trainers.context import TrainContext

__all__ = ["DINO", "DINOConfig", "DINOHead", "clip_grad_norm_per_parameter", "dino_loss"]


class DINOHead(nn.Module):
    """3-layer MLP (GELU, no BN) → L2-normalised bottleneck → weight-normalised linear layer without bias.

    The last layer's weight is normalised row-wise: weight norm with g fixed to 1 (main_dino.py's
    ``--norm_last_layer`` default), or with a trained scale g, initialised to 1, when ``norm_last_layer=False``.

    >>> head = DINOHead(256, out_dim=64)
    >>> head(torch.randn(4, 256)).shape
    torch.Size([4, 64])
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 512,
        bottleneck_dim: int = 128,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = nn.Linear(bottleneck_dim, out_dim, bias=False)
        nn.init.trunc_normal_(self.last_layer.weight, std=0.02)
        # weight_norm's g, (out_dim, 1) as in the reference (so it is weight-decayed like the reference's).
        self.last_layer_g = None if norm_last_layer else nn.Parameter(torch.ones(out_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1)
        weight = F.normalize(self.last_layer.weight, dim=1)
        return x @ (weight if self.last_layer_g is None else self.last_layer_g * weight).T


def dino_loss(
    student_out: list[torch.Tensor],
    teacher_out: list[torch.Tensor],
    center: torch.Tensor,
    student_temp: float,
    teacher_temp: float,
) -> torch.Tensor:
    """Eq. (3): mean over pairs (teacher crop t, student crop s ≠ t) of H(P_t, P_s) = −Σ_k P_t[k] log P_s[k].

    P_t = softmax((g_t − c)/τ_t) (centred and sharpened, no gradient), P_s = softmax(g_s/τ_s).

    Args:
        student_out: One (N, K) logit tensor per crop; the first ``len(teacher_out)`` are the global crops.
        teacher_out: One (N, K) logit tensor per global crop.
        center: (1, K) centre c.
        student_temp, teacher_temp: τ_s, τ_t.
    """
    log_ps = [F.log_softmax(s.float() / student_temp, dim=-1) for s in student_out]
    pts = [F.softmax((t.float() - center) / teacher_temp, dim=-1).detach() for t in teacher_out]
    total, terms = 0.0, 0
    for it, pt in enumerate(pts):
        for iv, log_p in enumerate(log_ps):
            if iv == it:
                continue  # the same crop: not a pair of different views
            total = total + (-pt * log_p).sum(dim=-1).mean()
            terms += 1
    return total / terms


@torch.no_grad()
def clip_grad_norm_per_parameter(parameters: Iterable[torch.Tensor], max_norm: float) -> None:
    """Scale each parameter's gradient to an L2 norm of at most ``max_norm``, one parameter at a time.

    The DINO repository's ``utils.clip_gradients``: the factor is ``max_norm / (‖g‖ + 1e-6)`` when below 1, as
    ``torch.nn.utils.clip_grad_norm_`` computes it for the global norm. A large gradient in one layer then no
    longer shrinks every other layer's. The norms and factors of all parameters are computed together
    (``torch._foreach_norm``: a few kernels on a GPU instead of five per parameter), with the same numbers.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    norms = torch.stack(torch._foreach_norm(grads, 2))
    factors = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, list(factors.unbind()))


class DINO(Method):
    """Student (backbone + DINO head) and its EMA teacher; centre buffer; multi-crop views."""

    name = "dino"
    Config = DINOConfig
    defaults = DEFAULTS["dino"]

    def __init__(self, cfg: DINOConfig, ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        self.backbone = ctx.create_backbone()
        self.head = DINOHead(
            feature_dim(self.backbone), cfg.out_dim, cfg.hidden_dim, cfg.bottleneck_dim, cfg.norm_last_layer
        )
        self.teacher_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
        # The reference builds its teacher without stochastic depth (main_dino.py: only the student gets
        # drop_path_rate); the teacher runs in train mode, so a copied DropPath would drop its blocks.
        for module in self.teacher_backbone.modules():
            if hasattr(module, "drop_prob"):
                module.drop_prob = 0.0
        self.teacher_head = copy.deepcopy(self.head).requires_grad_(False)
        self.register_buffer("center", torch.zeros(1, cfg.out_dim))
        local = cfg.local_crop_size or max(8, round(ctx.image_size * 96 / 224))
        # Multi-crop (§3.1, main_dino.py DataAugmentationDINO): 2 global + N local crops of one image, bicubic.
        self.global_crop = CropSpec(ctx.image_size, (cfg.global_crop_min_scale, 1.0), interpolation="bicubic")
        self.local_crop = CropSpec(local, (0.05, cfg.local_crop_max_scale), interpolation="bicubic")
        # BYOL's colour operations: blur always on the first global crop, rarely + solarise on the second.
        # main_dino.py's ColorJitter(0.4, 0.4, 0.2, 0.1): saturation 0.4·s beside brightness and contrast 0.8·s.
        colour = {"jitter": cfg.jitter, "saturation": 0.4 * cfg.jitter}
        self.global1 = ColorAugment(ctx.mean, ctx.std, blur_p=1.0, **colour)
        self.global2 = ColorAugment(ctx.mean, ctx.std, blur_p=0.1, solarize_p=0.2, **colour)
        # main_dino.py blurs a 96-px local crop with σ ∈ [0.1, 2] of its own pixels, the global crops' pixels:
        # the σ scale is the global side / 224 (1 at 224 px), not the local side / 224.
        self.local = ColorAugment(ctx.mean, ctx.std, blur_p=0.5, blur_scale=ctx.image_size / 224, **colour)

    def view_specs(self) -> list[CropSpec]:
        return [self.global_crop] * 2 + [self.local_crop] * self.cfg.n_local_crops

    def view_colours(self) -> list[ColorAugment]:
        return [self.global1, self.global2] + [self.local] * self.cfg.n_local_crops

    def encoder(self) -> nn.Module:
        return self.teacher_backbone  # the paper evaluates the teacher

    def teacher_temp(self, step: StepInfo) -> float:
        warmup = round(self.cfg.warmup_teacher_temp_epochs * step.steps_per_epoch)
        return linear_warmup(step.global_step, warmup, self.cfg.warmup_teacher_temp, self.cfg.teacher_temp)

    def teacher_momentum(self, step: StepInfo) -> float:
        return cosine_schedule(step.global_step, step.total_steps, self.cfg.momentum, self.cfg.momentum_end)

    def _forward_crops(
        self, backbone: nn.Module, head: nn.Module, crops: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        # Crops of one size go through the backbone together (as the reference's MultiCropWrapper).
        outs, i = [], 0
        while i < len(crops):
            j = i
            while j < len(crops) and crops[j].shape[-1] == crops[i].shape[-1]:
                j += 1
            outs.append(backbone(torch.cat(crops[i:j])))
            i = j
        return list(head(torch.cat(outs)).chunk(len(crops)))

    @torch.no_grad()
    def update_center(self, teacher_out: list[torch.Tensor]) -> None:
        """Eq. (4): c ← m·c + (1 − m)·mean of the teacher outputs of the global batch (all ranks)."""
        batch_mean = all_reduce_mean(torch.cat(teacher_out).float().mean(dim=0, keepdim=True))
        self.center.mul_(self.cfg.center_momentum).add_(batch_mean, alpha=1 - self.cfg.center_momentum)

    def training_step(self, batch: Batch, step: StepInfo):
        crops = batch.views
        with torch.no_grad():
            teacher_out = self._forward_crops(self.teacher_backbone, self.teacher_head, crops[:2])
        student_out = self._forward_crops(self.backbone, self.head, crops)
        t_temp = self.teacher_temp(step)
        center = self.center if self.cfg.centering else torch.zeros_like(self.center)
        loss = dino_loss(student_out, teacher_out, center, self.cfg.student_temp, t_temp)
        with torch.no_grad():
            # H(P_t, P_s) = H(P_t) + KL(P_t ‖ P_s): the student can only lower the KL part, so log it apart.
            p_t = F.softmax((torch.cat(teacher_out).float() - center) / t_temp, dim=-1)
            teacher_entropy = -(p_t * p_t.clamp_min(1e-12).log()).sum(-1).mean()
            # 0-d tensors: the engine reads them at logging steps only. In float64, the difference of the two
            # float32 values is the one Python's floats gave.
            kl = loss.detach().double() - teacher_entropy.double()
        if self.cfg.centering:
            self.update_center(teacher_out)
        return loss, {"teacher_temp": t_temp, "teacher_entropy": teacher_entropy, "kl": kl}

    def on_before_optimizer_step(self, step: StepInfo) -> None:
        if self.cfg.param_grad_clip > 0:
            clip_grad_norm_per_parameter(self.parameters(), self.cfg.param_grad_clip)
        # §A / reference code: the last layer stays fixed during the first epoch(s), which stabilises training.
        if step.global_step < self.cfg.freeze_last_layer_epochs * step.steps_per_epoch:
            self.head.last_layer.weight.grad = None
            if self.head.last_layer_g is not None:
                self.head.last_layer_g.grad = None

    def on_after_step(self, step: StepInfo) -> None:
        lam = self.teacher_momentum(step)
        momentum_update(self.teacher_backbone, self.backbone, lam)
        momentum_update(self.teacher_head, self.head, lam)
