"""Rank, world size and joining a ``torchrun`` process group for the evaluators (no-ops in one process)."""

from __future__ import annotations

import os

import torch


def rank_world() -> tuple[int, int]:
    """(rank, world size) of an initialised ``torch.distributed`` group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def join_torchrun() -> str | None:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1) join the group — NCCL with GPUs, gloo without — and return this
    rank's device (``cuda:LOCAL_RANK`` or ``cpu``); ``None`` when not launched by ``torchrun``."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
    if not dist.is_initialized():
        if device != "cpu":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device != "cpu" else "gloo")
    return device
