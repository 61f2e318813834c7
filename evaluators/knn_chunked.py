"""DINO's weighted k-NN over a bank larger than memory: the bank streamed in chunks, a running top-k per query.

Same protocol and ties as :func:`evaluators.knn.knn_classify` (cosine similarity, ``exp(sim / T)`` votes, stable
ranking, top-5 over ``min(5, k)`` classes); what changes is how the neighbours are found, for ImageNet's
1.28 M-row bank:

1. The test features (queries, e.g. 50 k × D) are L2-normalised once and kept on the device.
2. The train features (the bank, a memory-mapped ``(N, D)`` file is fine) are read ``bank_rows`` at a time, each
   chunk L2-normalised and moved to the device once.
3. For each chunk and each block of queries, the ``(block, chunk)`` similarities give the chunk's top-k, merged with
   the running top-k (``topk`` of the concatenation; the running indices are offset to bank rows).

Memory is bounded by ``memory_mb`` (one bank chunk plus one similarity block) plus the ``(M, D)`` queries and the
``(M, k)`` running results, whatever N is. On a GPU the same loop runs there (``device="cuda"``).

>>> import torch
>>> bank, labels = torch.randn(1000, 16), torch.arange(1000) % 10
>>> knn_classify_chunked(bank, labels, bank[:5], labels[:5], k=1, bank_rows=64)["top1"]
100.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evaluators._inputs import ArrayLike, as_features, as_labels
from evaluators.knn import score_neighbors
from zoo.errors import SslzooError

DEFAULT_MEMORY_MB = 1024.0


def _rows(x: Any, start: int, stop: int) -> torch.Tensor:
    """Rows ``[start, stop)`` of an array, memmap or tensor, as a float32 tensor (a copy only for numpy)."""
    if isinstance(x, torch.Tensor):
        return x[start:stop].float()
    return torch.from_numpy(np.array(x[start:stop], dtype=np.float32))  # a writable copy of the chunk


def chunked_neighbors(
    bank: ArrayLike,
    queries: ArrayLike,
    k: int,
    *,
    memory_mb: float = DEFAULT_MEMORY_MB,
    bank_rows: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most cosine-similar bank rows of each query, most similar first.

    Args:
        bank: (N, D) features (numpy, ``np.memmap`` or tensor); normalised here chunk by chunk.
        queries: (M, D) features; normalised here.
        k: Neighbours, ``1 <= k <= N``.
        memory_mb: Budget for one bank chunk and one similarity block.
        bank_rows: Bank rows per chunk (default: from ``memory_mb``).
        device: Where to compute (default: CUDA when available).
        progress: A progress bar over bank chunks.

    Returns:
        ``(similarities, indices)``: (M, k) float32 and int64 on the CPU.
    """
    from tqdm.auto import tqdm

    n, dim = int(bank.shape[0]), int(bank.shape[1])
    if not 1 <= k <= n:
        raise SslzooError(f"k={k} must be between 1 and the number of bank rows ({n}).")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    q = F.normalize(as_features(queries, "queries").to(device), dim=1)
    if q.shape[1] != dim:
        raise SslzooError(
            f"bank features have D={dim} but queries D={q.shape[1]}; embed both with one encoder."
        )
    budget = memory_mb * 2**20 / 4  # float32 entries
    chunk = bank_rows or int(max(k, min(n, budget / 2 / dim)))
    block = int(max(1, budget / 2 / chunk))
    best_sims = torch.full((len(q), k), -float("inf"), device=device)
    best_idx = torch.zeros((len(q), k), dtype=torch.int64, device=device)
    for start in tqdm(range(0, n, chunk), desc="k-NN bank", disable=not progress, leave=False):
        rows = F.normalize(_rows(bank, start, start + chunk).to(device), dim=1)
        if not torch.isfinite(rows.sum()):
            raise SslzooError(f"bank rows {start}..{start + len(rows)} hold NaN or infinite values.")
        kk = min(k, len(rows))
        for b in range(0, len(q), block):
            sims, idx = (q[b : b + block] @ rows.T).topk(kk, dim=1)
            merged = torch.cat([best_sims[b : b + block], sims], dim=1)
            merged_idx = torch.cat([best_idx[b : b + block], idx + start], dim=1)
            top, pos = merged.topk(k, dim=1)  # sorted, most similar first
            best_sims[b : b + block], best_idx[b : b + block] = top, merged_idx.gather(1, pos)
    return best_sims.cpu(), best_idx.cpu()


def knn_classify_chunked(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    test_feats: ArrayLike,
    test_labels: ArrayLike,
    k: int | Sequence[int] = 20,
    temperature: float = 0.07,
    *,
    memory_mb: float = DEFAULT_MEMORY_MB,
    bank_rows: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, Any] | dict[int, dict[str, Any]]:
    """:func:`evaluators.knn.knn_classify` with the bank streamed in chunks (same arguments and results).

    Args:
        train_feats: (N, D) bank; a memory-mapped array is read chunk by chunk, never whole.
        train_labels: (N,) labels.
        test_feats: (M, D) queries.
        test_labels: (M,) labels.
        k: Neighbours, or several values scored from one search.
        temperature: T in ``exp(sim / T)``.
        memory_mb: Budget for one bank chunk and one similarity block.
        bank_rows: Bank rows per chunk (default: from ``memory_mb``).
        device: Where to search (default: CUDA when available).
        progress: A progress bar over bank chunks.
    """
    ks = [k] if isinstance(k, int) else [int(v) for v in k]
    if not ks or min(ks) < 1 or max(ks) > len(train_feats):
        raise SslzooError(
            f"k must be between 1 and the number of train images ({len(train_feats)}); got {ks}."
        )
    if temperature <= 0:
        raise SslzooError(f"temperature must be positive, got {temperature}.")
    y_train = as_labels(train_labels, len(train_feats), "train_labels")
    y_test = as_labels(test_labels, len(test_feats), "test_labels")
    sims, idx = chunked_neighbors(
        train_feats,
        test_feats,
        max(ks),
        memory_mb=memory_mb,
        bank_rows=bank_rows,
        device=device,
        progress=progress,
    )
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    results = score_neighbors(sims, y_train[idx], y_test, ks, num_classes, temperature)
    return results[ks[0]] if isinstance(k, int) else results
