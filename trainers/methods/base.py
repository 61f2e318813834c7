"""The method interface: what one self-supervised method must (and may) provide to the shared engine.

A method is an ``nn.Module`` holding its networks (backbone, heads, EMA teacher, queue, centre, pseudo-labels), and
a handful of methods the engine calls. Everything else — data, sharding, the loop, DDP, AMP, optimiser, LR / weight
decay schedules, checkpoints, resume, NaN checks, logging, k-NN monitor and export — lives in
:mod:`trainers.engine`, once.

Lifecycle, as the engine runs it::

    method = Method(cfg, ctx)                 # build networks with ctx.create_backbone(); no data access yet
    [checkpoint restored]                     # method.load_state_dict(...) — weights, buffers and extra state
    method.on_train_start(ctx)                # once per (re)started process, after restore; ctx.resumed says which
    for epoch in ...:
        method.on_epoch_start(ctx, epoch)     # NOT called when resuming in the middle of this epoch
        order = method.epoch_indices(ctx, epoch)   # None → a seeded shuffle of the train split
        for each global batch of `order` (this rank's contiguous slice of it):
            crops = [the method.view_specs() crops]          # cut per sample in DataLoader workers
            views = method.make_views(crops, rng)            # colour ops on the device; no grad, no autocast
            loss, logs = method.training_step(batch, step)   # under autocast, through DDP when distributed
            [backward, grad clipping, optimiser step]
            method.on_after_step(step)                        # EMA updates and other post-step bookkeeping
        method.on_epoch_end(ctx, epoch)

State and resume. The engine checkpoints ``method.state_dict()`` (parameters, buffers, and whatever
``get_extra_state()`` returns: plain Python values and tensors) with the optimiser, RNG states, the epoch's sample
order and the position inside the epoch. So put tensors that must survive a restart in buffers (``register_buffer``)
and small Python state (rounds done, a list of NMIs) in ``get_extra_state`` / ``set_extra_state``. A run resumed in
the middle of an epoch does not rerun ``on_epoch_start`` for that epoch: what it computed (pseudo-labels, say) comes
back from the checkpoint, and the epoch's sample order is the saved one.

Rules that keep DDP and the optimiser working:
    * Never replace a submodule or parameter after ``__init__`` (the optimiser and DDP hold references);
      re-initialise heads in place (``head.reset_parameters()``) and clear their optimiser state with
      ``ctx.reset_optimizer_state(head)``.
    * Modules that receive no gradient (EMA teachers) set ``requires_grad_(False)``; the engine optimises only
      parameters that require grad, grouped by :meth:`Method.param_groups`.
    * Anything random inside a step draws from ``batch.rng`` (per-sample, the same whichever rank a sample lands
      on, reproducible on resume), not from the global RNG.
    * Collective operations (``ctx.all_gather``, ``ctx.extract_features``) must be called on every rank.

Adding a method = one file in ``trainers/methods/`` with a subclass of :class:`Method` + one line in
``trainers/methods/__init__.py``'s ``METHODS``.

>>> from dataclasses import dataclass
>>> @dataclass
... class MyConfig:
...     temperature: float = 0.1
>>> class MyMethod(Method):
...     name = "mine"
...     Config = MyConfig
...     defaults = {"lr": 1e-3}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from trainers.augment import BatchRandom, ColorAugment
    from trainers.context import TrainContext
    from trainers.views import CropSpec

__all__ = ["Batch", "Method", "StepInfo", "feature_dim", "momentum_update"]


@dataclass
class StepInfo:
    """Where training stands; schedules inside a method read ``global_step`` / ``total_steps``.

    Attributes:
        global_step: Optimiser steps done before this one (0 for the first step).
        epoch: Current epoch (0-based).
        step_in_epoch: Position inside the epoch (0-based).
        steps_per_epoch: Optimiser steps per epoch.
        total_steps: Steps of the whole run (``epochs * steps_per_epoch``).
    """

    global_step: int
    epoch: int
    step_in_epoch: int
    steps_per_epoch: int
    total_steps: int

    @property
    def progress(self) -> float:
        """Fraction of training done before this step, in [0, 1)."""
        return self.global_step / max(1, self.total_steps)


@dataclass
class Batch:
    """One rank's share of a global batch.

    Attributes:
        views: What :meth:`Method.make_views` returned: a list of normalised (B, C, H, W) views.
        indices: (B,) int64 positions in the train split (for pseudo-labels kept per sample).
        labels: (B,) int64 true labels — for monitoring only, never for self-supervised training.
        rng: Per-sample random numbers for this step (see :class:`trainers.augment.BatchRandom`).
    """

    views: list[torch.Tensor]
    indices: torch.Tensor
    labels: torch.Tensor
    rng: BatchRandom


class Method(nn.Module):
    """Base class of a self-supervised method; subclasses live one per file in ``trainers/methods/``.

    Class attributes:
        name: Registry name (``"simclr"``).
        Config: The dataclass of the method's own options (the CLI adds a ``--flag`` for each field).
        defaults: Overrides of the shared :class:`trainers.config.TrainConfig` defaults for this method
            (``{"optimizer": "sgd", "lr": 0.06}``); options given by the user win.
        find_unused_parameters: Set when some parameters get no gradient in a step (per-super-class heads):
            DDP then looks for them.
        needs_random_access: Set when the method revisits images by index (pseudo-labels of the whole split):
            it cannot train on a stream.

    Args:
        cfg: An instance of ``Config``.
        ctx: The engine's :class:`trainers.engine.TrainContext` (device, image size, ``create_backbone()``, …).

    Subclasses must set ``self.backbone`` (the encoder that gets exported, unless :meth:`encoder` says otherwise)
    and implement :meth:`view_specs`, :meth:`make_views` and :meth:`training_step`.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = dataclass(type("NoOptions", (), {}))
    defaults: ClassVar[dict[str, Any]] = {}
    find_unused_parameters: ClassVar[bool] = False
    needs_random_access: ClassVar[bool] = False

    def __init__(self, cfg: Any, ctx: TrainContext) -> None:
        super().__init__()
        self.cfg = cfg
        self.ctx = ctx

    # ------------------------------------------------------------------ required
    def view_specs(self) -> list[CropSpec]:
        """The geometric part of each view (:class:`trainers.views.CropSpec`: size, crop scale, flip), cut per
        sample from the full-resolution image in DataLoader workers. Called once, after ``__init__``."""
        raise NotImplementedError

    def view_colours(self) -> list[ColorAugment]:
        """The colour operations of each view (:class:`trainers.augment.ColorAugment`), aligned with
        :meth:`view_specs`: what :meth:`make_views` applies and what :meth:`describe_views` states."""
        raise NotImplementedError

    def make_views(self, crops: list[torch.Tensor], rng: BatchRandom) -> list[torch.Tensor]:
        """Colour the crops: one (B, C, S, S) float tensor in [0, 1] per spec → list of normalised views.

        Runs on the device without gradient and outside autocast: each crop through its :meth:`view_colours`.
        """
        return [colour(crop, rng) for colour, crop in zip(self.view_colours(), crops, strict=True)]

    def describe_views(self) -> list[str]:
        """The augmentations as applied, one line per view (consecutive identical views share a line), for the
        run's config and its model card."""
        lines: list[tuple[int, int, str]] = []
        for i, (spec, colour) in enumerate(zip(self.view_specs(), self.view_colours(), strict=True), 1):
            text = f"{spec.describe()}; {colour.describe(spec.size, self.ctx.in_chans)}"
            if lines and lines[-1][2] == text:
                lines[-1] = (lines[-1][0], i, text)
            else:
                lines.append((i, i, text))
        return [f"view {a}: {t}" if a == b else f"views {a}–{b}: {t}" for a, b, t in lines]

    def training_step(
        self, batch: Batch, step: StepInfo
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        """Return the scalar loss of this rank's batch, optionally with extra values to log (``{"acc": 0.5}``).

        Values computed on the device stay 0-d tensors (no ``.item()``, no ``float()``): the engine reads them
        only at the steps it logs, so the other steps never wait for the GPU.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ optional hooks
    def on_train_start(self, ctx: TrainContext) -> None:
        """Called once per (re)started process, after any checkpoint was restored (``ctx.resumed``)."""

    def on_epoch_start(self, ctx: TrainContext, epoch: int) -> None:
        """Called before an epoch's first step; the place to recompute pseudo-labels.

        ``ctx.extract_features(self.backbone)`` gives (N, D) features of the whole train split (eval mode, no
        augmentation, gathered from all ranks, in dataset order). Not called when a run resumes mid-epoch.
        """

    def epoch_indices(self, ctx: TrainContext, epoch: int) -> torch.Tensor | None:
        """The order in which this epoch visits the train split: a (M,) int64 tensor, M ≥ the epoch's samples.

        Must be identical on every rank (derive it from a seeded ``torch.Generator`` or broadcast it); the
        engine cuts it into global batches and gives each rank a contiguous slice. ``None`` (the default) is a
        permutation seeded by ``(seed, epoch)``. Use it for samplers such as uniform-over-pseudo-labels.
        """
        return None

    def on_after_step(self, step: StepInfo) -> None:
        """Called after each optimiser step: EMA teachers are updated here."""

    def on_epoch_end(self, ctx: TrainContext, epoch: int) -> None:
        """Called after an epoch's last step (before the epoch's checkpoint is written)."""

    def on_before_optimizer_step(self, step: StepInfo) -> None:
        """Called after backward (gradients unscaled) and before the optimiser step: gradient surgery."""

    def encoder(self) -> nn.Module:
        """The timm backbone exported as the run's encoder (DINO exports its teacher)."""
        return self.backbone

    def encoder_model_args(self, model_args: dict[str, Any]) -> dict[str, Any]:
        """``timm.create_model`` arguments that rebuild :meth:`encoder` (the engine's; a wrapper adds its own)."""
        return model_args

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the optimiser: weight decay on weights, none on biases and norm parameters.

        Only parameters with ``requires_grad`` are included. A group may set ``"lr_scale"`` or
        ``"apply_wd": False``; the engine's schedules multiply those in.
        """
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        return [{"params": decay}, {"params": no_decay, "apply_wd": False}]

    def forward(self, batch: Batch, step: StepInfo):
        # DDP calls forward(); routing it to training_step lets the engine wrap the whole method in DDP.
        return self.training_step(batch, step)

    @classmethod
    def config_from_dict(cls, values: dict[str, Any]) -> Any:
        """Build ``Config`` from a dict, ignoring keys that are not its fields."""
        names = {f.name for f in dataclasses.fields(cls.Config)}
        return cls.Config(**{k: v for k, v in values.items() if k in names})


@torch.no_grad()
def momentum_update(target: nn.Module, online: nn.Module, m: float) -> None:
    """EMA of parameters: θ_target ← m·θ_target + (1 − m)·θ_online (MoCo Eq. 2, BYOL Eq. 1, DINO §3.1).

    Only parameters move; the target's BN running statistics are its own, as in MoCo's reference code. All
    parameters in two ``torch._foreach`` calls (a few kernels on a GPU instead of two per parameter); the same
    numbers as ``pt.mul_(m).add_(po, alpha=1 - m)`` one parameter at a time.
    """
    targets = list(target.parameters())
    onlines = [p.detach() for p in online.parameters()]
    if len(targets) != len(onlines):
        raise ValueError(f"the target has {len(targets)} parameters, the online network {len(onlines)}")
    torch._foreach_mul_(targets, m)
    torch._foreach_add_(targets, onlines, alpha=1.0 - m)


def feature_dim(backbone: nn.Module) -> int:
    """Width of a timm backbone's pooled output with ``num_classes=0``.

    timm's ``head_hidden_size`` where the head has layers of its own (VGG's convolutional MLP: 4096, while its
    ``num_features`` counts the 512 channels before it); ``num_features`` elsewhere, where the two agree.
    """
    return getattr(backbone, "head_hidden_size", None) or backbone.num_features
