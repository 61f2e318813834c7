"""Schedules as pure functions of the step: learning rate, weight decay, EMA momentum, teacher temperature.

>>> round(cosine_schedule(50, 100, start=1.0, end=0.0), 3)
0.5
>>> cosine_schedule(5, 100, start=1.0, end=0.0, warmup_steps=10)
0.5
>>> scaled_lr(0.3, 256, 4096)  # SimCLR §2.3: 4.8 = 0.3 × 4096 / 256
4.8
"""

from __future__ import annotations

import math

__all__ = ["cosine_schedule", "linear_warmup", "scaled_lr"]


def cosine_schedule(
    step: int,
    total_steps: int,
    start: float,
    end: float,
    warmup_steps: int = 0,
    warmup_start: float = 0.0,
) -> float:
    """Linear warm-up from ``warmup_start`` to ``start`` over ``warmup_steps``, then half a cosine to ``end``.

    ``value(t) = end + (start − end) · (1 + cos(π · t / T)) / 2`` with ``t`` counted after the warm-up and
    ``T = total_steps − warmup_steps`` (SGDR, Loshchilov & Hutter 2017). Past ``total_steps`` it stays at ``end``.
    """
    if step < warmup_steps:
        return warmup_start + (start - warmup_start) * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(step - warmup_steps, span)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t / span))


def linear_warmup(step: int, warmup_steps: int, start: float, end: float) -> float:
    """``start`` → ``end`` linearly over ``warmup_steps``, then ``end`` (DINO's teacher temperature)."""
    if step >= warmup_steps:
        return end
    return start + (end - start) * step / warmup_steps


def scaled_lr(lr: float, lr_batch_ref: int | None, global_batch: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): ``lr · global_batch / lr_batch_ref``; ``lr`` as is without a reference.

    The papers state their learning rates for a reference batch (SimCLR, BYOL, DINO: per 256 images), so a recipe
    keeps its meaning when the batch changes to fit the hardware.
    """
    if lr_batch_ref is None:
        return lr
    if lr_batch_ref < 1:
        raise ValueError(f"lr_batch_ref must be a positive batch size, got {lr_batch_ref}")
    return lr * global_batch / lr_batch_ref
