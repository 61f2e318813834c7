"""Weighted k-NN classification of frozen features, exactly as DINO evaluates it (``eval_knn.py``).

Protocol (Caron et al., 2021, Sec. 4.1 and ``knn_classifier`` in facebookresearch/dino):

1. L2-normalise train and test features, so the inner product is the cosine similarity.
2. For each test image take its ``k`` most similar train images (sorted, most similar first).
3. Each neighbour votes for its label with weight ``exp(sim / T)``; a class's score is the sum of its votes.
4. Rank classes by score: top-1 is correct when the best class is the label, top-5 when the label is among the
   first ``min(5, k)`` classes (with ``k`` neighbours at most ``k`` classes get a vote).

The search is exact (torch matmul + topk, or a faiss flat index; see :func:`search_neighbors`) and chunked to a
memory budget. Unlike DINO's script this runs on CPU, works for any test size (DINO's chunking divides by 100 and crashes below
100 test images), takes the number of classes from the data instead of hard-wiring 1000, and scores several ``k``
from one neighbour search (the top ``max(k)`` neighbours contain the top ``k`` for every smaller ``k``).

Ties: classes with equal scores are ranked by class index (lowest first; a stable sort), so a class with no vote
never outranks one with a vote and, among unvoted classes, lower indices come first. Which of several neighbours
with equal similarity at the ``k``-th place is kept is up to the search backend
(torch's ``topk`` or faiss's heap; unspecified).

>>> import torch
>>> train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
>>> result = knn_classify(train, torch.tensor([0, 0, 1]), torch.tensor([[1.0, 0.05]]), torch.tensor([0]), k=2)
>>> result["top1"], result["predictions"].tolist()
(100.0, [0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evaluators._inputs import ArrayLike, as_features, as_labels, check_same_dim, faiss_gpu_available
from zoo.errors import SslzooError

DEFAULT_MEMORY_MB = 512.0
BACKENDS = ("auto", "torch", "faiss")


def search_neighbors(
    database: ArrayLike,
    queries: ArrayLike,
    k: int,
    *,
    memory_mb: float = DEFAULT_MEMORY_MB,
    device: str | torch.device | None = None,
    backend: str = "auto",
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest inner products of each query with the database rows, most similar first.

    Features are used as given (normalise them first for cosine similarity). Both backends are exact:

    * ``"faiss"``: an ``IndexFlatIP`` (moved to the GPU when ``device`` is CUDA and faiss has GPU support);
    * ``"torch"``: per chunk of queries one ``(chunk, N)`` similarity matmul and ``topk``, on ``device``;
    * ``"auto"`` (default): the faiss GPU index where there is one, torch otherwise. On CPU torch's MKL matmul
      measured 4-5x faster than faiss-cpu's bundled OpenBLAS (``benchmarks/bench_knn.py``).

    Queries are processed in chunks sized so the per-chunk buffers fit ``memory_mb``.

    Args:
        database: (N, D) features searched.
        queries: (M, D) features.
        k: Neighbours per query, ``1 <= k <= N``.
        memory_mb: Rough budget for the per-chunk buffers.
        device: ``"cpu"``, ``"cuda"``…; default: the device of ``queries`` if it is a tensor, else CPU.
        backend: ``"auto"``, ``"torch"`` or ``"faiss"``.
        progress: Show a progress bar over query chunks.

    Returns:
        ``(similarities, indices)``: (M, k) float32 and (M, k) int64 tensors on CPU.

    >>> sims, idx = search_neighbors(torch.eye(3), torch.tensor([[0.0, 1.0, 0.0]]), k=2)
    >>> idx.tolist()
    [[1, 0]]
    """
    db = as_features(database, "database")
    q = as_features(queries, "queries")
    check_same_dim(db, "database", q, "query")
    if not 1 <= k <= db.shape[0]:
        raise SslzooError(f"k={k} must be between 1 and the number of database rows ({db.shape[0]}).")
    if device is None:
        device = queries.device if isinstance(queries, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    return _search(db, q, k, memory_mb=memory_mb, device=device, backend=backend, progress=progress)


def _use_torch(backend: str, device: torch.device) -> bool:
    if backend not in BACKENDS:
        raise SslzooError(f"unknown k-NN search backend {backend!r}; choose from {', '.join(BACKENDS)}.")
    if backend == "auto":
        # faiss only where it wins: a faiss GPU index. On CPU, faiss-cpu's bundled OpenBLAS ran 4-5x slower than
        # torch's MKL matmul + topk in benchmarks/bench_knn.py, so torch does the exact search there.
        return not (device.type == "cuda" and faiss_gpu_available())
    return backend == "torch"


def _search(
    db: torch.Tensor,
    q: torch.Tensor,
    k: int,
    *,
    memory_mb: float,
    device: torch.device,
    backend: str,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    from tqdm.auto import tqdm

    n, m = db.shape[0], q.shape[0]
    use_torch = _use_torch(backend, device)
    budget = memory_mb * 2**20
    if use_torch:
        # The (chunk, N) similarity block dominates: size the chunk so it fits the budget.
        chunk = max(1, int(budget // (4 * n + 12 * k)))
        db_dev = db.to(device)
    else:
        import faiss

        # faiss blocks its own BLAS buffers (~16 MB); our per-query cost is the (chunk, k) result arrays.
        chunk = max(1, min(m, int(budget // (12 * k + 64))))
        index = faiss.IndexFlatIP(db.shape[1])
        if device.type == "cuda" and faiss_gpu_available():
            index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), device.index or 0, index)
        index.add(np.ascontiguousarray(db.cpu().numpy()))
    sims = torch.empty(m, k, dtype=torch.float32)
    idx = torch.empty(m, k, dtype=torch.int64)
    starts = range(0, m, chunk)
    for start in tqdm(starts, desc="k-NN search", disable=not progress or len(starts) < 2, leave=False):
        block = q[start : start + chunk]
        if use_torch:
            s, i = (block.to(device) @ db_dev.T).topk(k, dim=1, largest=True, sorted=True)
            sims[start : start + len(block)], idx[start : start + len(block)] = s.cpu(), i.cpu()
        else:
            s, i = index.search(np.ascontiguousarray(block.cpu().numpy()), k)
            sims[start : start + len(block)], idx[start : start + len(block)] = (
                torch.from_numpy(s),
                torch.from_numpy(i),
            )
    return sims, idx


def knn_vote(
    neighbor_sims: torch.Tensor, neighbor_labels: torch.Tensor, num_classes: int, temperature: float
) -> torch.Tensor:
    """Class scores from sorted neighbours: ``score[c] = Σ_{j ≤ k, y_j = c} exp(sim_j / T)`` (DINO's weighting).

    Args:
        neighbor_sims: (M, k) cosine similarities.
        neighbor_labels: (M, k) labels of those neighbours.
        num_classes: C.
        temperature: T.

    Returns:
        (M, C) float64 scores (float64 so that equal vote sums compare equal and ties follow the documented rule).
    """
    weights = (neighbor_sims.double() / temperature).exp()
    scores = torch.zeros(neighbor_sims.shape[0], num_classes, dtype=torch.float64)
    return scores.scatter_add_(1, neighbor_labels, weights)


def knn_classify(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    test_feats: ArrayLike,
    test_labels: ArrayLike,
    k: int | Sequence[int] = 20,
    temperature: float = 0.07,
    *,
    memory_mb: float = DEFAULT_MEMORY_MB,
    device: str | torch.device | None = None,
    backend: str = "auto",
    progress: bool = False,
) -> dict[str, Any] | dict[int, dict[str, Any]]:
    """DINO's weighted k-NN classifier on frozen features.

    Args:
        train_feats: (N, D) train features (any scale: they are L2-normalised here).
        train_labels: (N,) integer labels.
        test_feats: (M, D) test features, any M ≥ 1.
        test_labels: (M,) integer labels.
        k: Neighbours per test image, or several values scored from one search.
        temperature: T in the vote weight ``exp(sim / T)``.
        memory_mb: Budget for the search's per-chunk buffers.
        device: Where to search (default: the device of ``test_feats``); see :func:`search_neighbors`.
        backend: ``"auto"``, ``"torch"`` or ``"faiss"``; see :func:`search_neighbors`.
        progress: Show a progress bar over test chunks.

    Returns:
        For an int ``k``: ``{"top1": %, "top5": %, "predictions": (M,) int64 ndarray}``. For a sequence of ``k``:
        ``{k: that dict}`` for each ``k``. The number of classes is ``max(label) + 1`` over train and test.
    """
    ks = [k] if isinstance(k, int) else [int(v) for v in k]
    if not ks:
        raise SslzooError("give at least one k for the k-NN classifier.")
    if temperature <= 0:
        raise SslzooError(f"temperature must be positive, got {temperature}.")
    train = as_features(train_feats, "train_feats")
    test = as_features(test_feats, "test_feats")
    if test.shape[0] == 0:
        raise SslzooError("test_feats is empty; the k-NN accuracy needs at least one test image.")
    check_same_dim(train, "train", test, "test")
    y_train = as_labels(train_labels, train.shape[0], "train_labels")
    y_test = as_labels(test_labels, test.shape[0], "test_labels")
    if max(ks) > train.shape[0] or min(ks) < 1:
        raise SslzooError(
            f"k={max(ks) if max(ks) > train.shape[0] else min(ks)} is out of range: it must be between 1 and "
            f"the number of train images ({train.shape[0]})."
        )
    if device is None:
        device = test_feats.device if isinstance(test_feats, torch.Tensor) else torch.device("cpu")
    num_classes = int(max(y_train.max(), y_test.max())) + 1

    # Step 1: cosine similarity = inner product of L2-normalised features (DINO normalises at extraction).
    train, test = F.normalize(train, dim=1, p=2), F.normalize(test, dim=1, p=2)
    # Step 2: one search for the largest k serves every k (neighbours come sorted, most similar first).
    sims, idx = _search(
        train,
        test,
        max(ks),
        memory_mb=memory_mb,
        device=torch.device(device),
        backend=backend,
        progress=progress,
    )
    results = score_neighbors(sims, y_train.cpu()[idx], y_test.cpu(), ks, num_classes, temperature)
    return results[ks[0]] if isinstance(k, int) else results


def score_neighbors(
    sims: torch.Tensor,
    neighbor_labels: torch.Tensor,
    y: torch.Tensor,
    ks: Sequence[int],
    num_classes: int,
    temperature: float,
) -> dict[int, dict[str, Any]]:
    """Steps 3-4 for each ``k`` from one sorted search: ``{k: {"top1", "top5", "predictions"}}``.

    Args:
        sims: (M, max k) similarities, most similar first.
        neighbor_labels: (M, max k) their labels.
        y: (M,) test labels.
        ks: The k values to score.
        num_classes: C.
        temperature: T.
    """
    results: dict[int, dict[str, Any]] = {}
    for kk in ks:
        # Steps 3-4: vote exp(sim/T) per neighbour, rank classes; stable sort = ties to the lower class index.
        scores = knn_vote(sims[:, :kk], neighbor_labels[:, :kk], num_classes, temperature)
        ranking = torch.sort(scores, dim=1, descending=True, stable=True).indices
        correct = ranking.eq(y.view(-1, 1))
        top5_width = min(5, kk, num_classes)
        results[kk] = {
            "top1": 100.0 * correct[:, 0].sum().item() / len(y),
            "top5": 100.0 * correct[:, :top5_width].any(dim=1).sum().item() / len(y),
            "predictions": ranking[:, 0].numpy(),
        }
    return results
