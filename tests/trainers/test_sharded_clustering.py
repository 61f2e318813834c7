"""Clustering solvers that span ranks: two gloo processes on loopback, each holding half of the rows, reach what one
process reaches on all of them, and never send each other a row's worth of K numbers."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist

from trainers.clustering import sinkhorn_knopp, sinkhorn_labels

N, K, SPLIT = 403, 16, 202  # rank 0 holds rows [0, 202), rank 1 the other 201: uneven on purpose


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _logits() -> torch.Tensor:
    return torch.randn(N, K, generator=torch.Generator().manual_seed(0)) * 2.0


def _recording_collectives(sizes: list[int]) -> None:
    """Wrap the collectives the solvers use so each records how many numbers it moved."""
    for name in ("all_reduce", "all_gather"):
        original = getattr(dist, name)

        def recorded(first, *args, _original=original, **kwargs):
            sizes.append(sum(t.numel() for t in first) if isinstance(first, list) else first.numel())
            return _original(first, *args, **kwargs)

        setattr(dist, name, recorded)


def _sinkhorn_rank(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        mine = _logits()[:SPLIT] if rank == 0 else _logits()[SPLIT:]
        sizes: list[int] = []
        _recording_collectives(sizes)
        labels = sinkhorn_labels(mine, lam=25.0, n_iters=5000, distributed=True)
        plan = sinkhorn_knopp(mine, lam=25.0, n_iters=5000, distributed=True)
        torch.save({"labels": labels, "plan": plan, "sizes": sizes}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_sinkhorn_over_two_ranks_gives_the_one_process_labels_and_sends_no_rows_of_k(tmp_path):
    single_labels = sinkhorn_labels(_logits(), lam=25.0, n_iters=5000)
    single_plan = sinkhorn_knopp(_logits(), lam=25.0, n_iters=5000)
    torch.multiprocessing.spawn(_sinkhorn_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    assert [len(r["labels"]) for r in ranks] == [SPLIT, N - SPLIT]
    torch.testing.assert_close(torch.cat([r["labels"] for r in ranks]), single_labels, rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([r["plan"] for r in ranks]), single_plan, rtol=1e-9, atol=0)
    # Sharp scores: the rounding took several rounds, so the re-proposals across ranks were exercised.
    assert (single_labels != single_plan.argmax(1)).any()
    # What crossed ranks: K-length sums, scalars and three numbers per point (class, value, row) — never a rank's
    # (n, K) logits or plan (≥ 201 × 16 numbers), let alone the gathered (N, K).
    largest = max(size for r in ranks for size in r["sizes"])
    assert largest <= 2 * 3 * SPLIT < (N - SPLIT) * K
