"""Solve a clustering problem once for all ranks: gather every rank's features, solve on rank 0, broadcast.

k-means, PCA and Sinkhorn need the features of the whole dataset, so a 2-process run must assign the same labels
as a 1-process run. Without ``torch.distributed`` initialised every function here is the identity.

>>> import torch
>>> feats = gather_by_index(torch.ones(3, 2), torch.tensor([2, 0, 1]), total=3)
>>> feats.shape
torch.Size([3, 2])
>>> solve_once(lambda: [1, 2, 3])
[1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

from zoo.errors import SslzooError

T = TypeVar("T")


def is_distributed() -> bool:
    """True inside an initialised ``torch.distributed`` process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_(x: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``x`` summed (``op="sum"``) or maximised (``"max"``) over all ranks, in place; ``x`` itself in one process."""
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return x


def all_gather_rows(x: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``(n_r, ...)`` tensor (``n_r`` may differ between ranks), in rank order; ``[x]`` in one process."""
    return _all_gather_rows(x.contiguous()) if is_distributed() else [x]


def _all_gather_rows(x: torch.Tensor) -> list[torch.Tensor]:
    """All ranks' ``(n_r, ...)`` tensors (``n_r`` may differ), in rank order."""
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    out = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(out, padded)
    return [o[: int(s.item())] for o, s in zip(out, sizes)]


@torch.no_grad()
def gather_by_index(local: torch.Tensor, indices: torch.Tensor, total: int) -> torch.Tensor:
    """Put every rank's rows at their dataset positions: ``(n_local, D)`` + ``(n_local,)`` → ``(total, D)``.

    Rows a distributed sampler duplicated (padding) land on the same position twice with the same value.
    Without distributed training this is ``local`` reordered by ``indices``.
    """
    if is_distributed():
        parts = _all_gather_rows(local.contiguous())
        index_parts = _all_gather_rows(indices.to(local.device).long().contiguous())
        local, indices = torch.cat(parts), torch.cat(index_parts)
    indices = indices.long().to(local.device)
    seen = torch.zeros(total, dtype=torch.bool, device=local.device)
    seen[indices] = True
    if not bool(seen.all()):
        missing = int((~seen).sum())
        raise SslzooError(
            f"{missing} of {total} samples got no features; the feature pass must cover the dataset"
        )
    out = torch.empty((total, *local.shape[1:]), dtype=local.dtype, device=local.device)
    out[indices] = local
    return out


def solve_once(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give its (picklable) result to every rank; just ``fn()`` when not distributed.

    Solving once keeps k-means' random initialisation and tie-breaking identical to a single-process run.
    """
    if not is_distributed():
        return fn()
    box = [fn() if dist.get_rank() == 0 else None]
    device = None
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    dist.broadcast_object_list(box, src=0, device=device)
    return box[0]  # type: ignore[return-value]
