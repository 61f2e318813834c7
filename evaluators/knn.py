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

import contextlib
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evaluators._inputs import (
    ArrayLike,
    as_features,
    as_int,
    as_labels,
    as_positive_float,
    check_same_dim,
    dense_labels,
    faiss_gpu_available,
)
from evaluators.features import cache_root
from zoo.atomic import write_json_atomic
from zoo.devices import resolve_device
from zoo.errors import SslzooError

DEFAULT_MEMORY_MB = 512.0
BACKENDS = ("auto", "torch", "faiss")
PROBE_MIN_WORK = 1e9  # multiply-adds (N·M·D) below which "auto" takes torch unmeasured: a probe would not pay
BLAS_FROM_QUERIES = 20  # faiss scores query blocks at least this large with BLAS (see _searcher)
BLAS_DATABASE_ROWS = 4096  # database rows per faiss BLAS product (its default 1,024; see _searcher)
PROBE_WORK = 3e9  # multiply-adds of the queries each backend searches when "auto" measures them


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
    * ``"auto"`` (default): the faiss GPU index where there is one; on CPU the faster of the two on this machine
      for searches of this size, measured once on the first queries and cached (see :func:`_auto_backend`).

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
    memory_mb = as_positive_float(memory_mb, "memory_mb")
    if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= k <= db.shape[0]:
        raise SslzooError(f"k={k} must be between 1 and the number of database rows ({db.shape[0]}).")
    if device is None:
        device = queries.device if isinstance(queries, torch.Tensor) else torch.device("cpu")
    device = resolve_device(device)
    return _search(db, q, k, memory_mb=memory_mb, device=device, backend=backend, progress=progress)


Searcher = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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
    if backend not in BACKENDS:
        raise SslzooError(f"unknown k-NN search backend {backend!r}; choose from {', '.join(BACKENDS)}.")
    chosen = _auto_backend(device, db.shape[0], q.shape[0], db.shape[1], k) if backend == "auto" else backend
    if chosen is None:
        return _measure_and_search(db, q, k, memory_mb=memory_mb, device=device, progress=progress)
    search, chunk = _searcher(db, k, memory_mb, device, chosen)
    return _search_chunks(search, chunk, q, k, progress)


def _searcher(
    db: torch.Tensor, k: int, memory_mb: float, device: torch.device, backend: str
) -> tuple[Searcher, int]:
    """A function searching one block of queries with ``backend``, and the block size that fits ``memory_mb``."""
    budget = memory_mb * 2**20
    if backend == "torch":
        db_dev = db.to(device)

        def search_torch(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            s, i = (block.to(device) @ db_dev.T).topk(k, dim=1, largest=True, sorted=True)
            return s.cpu(), i.cpu()

        # The (chunk, N) similarity block dominates: size the chunk so it fits the budget.
        return search_torch, max(1, int(budget // (4 * db.shape[0] + 12 * k)))
    import faiss

    index = faiss.IndexFlatIP(db.shape[1])
    if device.type == "cuda" and faiss_gpu_available():
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), device.index or 0, index)
    index.add(np.ascontiguousarray(db.cpu().numpy()))

    def search_faiss(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # faiss 1.10+ takes its BLAS path only from nq·d ≥ 128,000 (fewer than 334 queries of 384 dims are scored
        # one by one, ~10x slower per query); the BLAS path is the faster one from ~20 queries (faiss's old
        # threshold), so a probe's or a last block's few queries are not timed on the slow path.
        # Its database blocks of 1,024 rows make skinny products: 4,096 rows run ~3% faster on a 2-core AVX2 CPU
        # (2.94-2.97 s vs 3.00-3.11 s for 10k x 60k x 384), for a 64 MB distance block instead of 16 MB.
        cvar = faiss.cvar
        saved = cvar.distance_compute_blas_threshold, cvar.distance_compute_blas_database_bs
        cvar.distance_compute_blas_threshold = min(saved[0], BLAS_FROM_QUERIES)
        cvar.distance_compute_blas_database_bs = max(saved[1], BLAS_DATABASE_ROWS)
        try:
            s, i = index.search(np.ascontiguousarray(block.cpu().numpy()), k)
        finally:
            cvar.distance_compute_blas_threshold, cvar.distance_compute_blas_database_bs = saved
        return torch.from_numpy(s), torch.from_numpy(i)

    # faiss blocks its own BLAS buffers (~64 MB); our per-query cost is the (chunk, k) result arrays.
    return search_faiss, max(1, int(budget // (12 * k + 64)))


def _search_chunks(
    search: Searcher, chunk: int, q: torch.Tensor, k: int, progress: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    from tqdm.auto import tqdm

    sims = torch.empty(len(q), k, dtype=torch.float32)
    idx = torch.empty(len(q), k, dtype=torch.int64)
    starts = range(0, len(q), chunk)
    for start in tqdm(starts, desc="k-NN search", disable=not progress or len(starts) < 2, leave=False):
        s, i = search(q[start : start + chunk])
        sims[start : start + len(s)], idx[start : start + len(s)] = s, i
    return sims, idx


def _sequence(k: Any) -> list[Any]:
    try:
        return list(k)
    except TypeError:
        raise SslzooError(f"k must be a whole number or a sequence of them, got {k!r}.") from None


def _auto_backend(device: torch.device, n: int, m: int, d: int, k: int) -> str | None:
    """The backend ``"auto"`` uses, or None when it must first be measured on this machine.

    A faiss GPU index where there is one (torch on other GPUs). On CPU the faster one depends on the BLAS each was
    built with, the cores and the sizes (faiss-cpu's OpenBLAS ran 4-5x slower than torch's MKL on one machine,
    1.4x faster on another), so small searches use torch and larger ones the winner of a short measurement
    (:func:`_measure_and_search`), cached per machine, library versions, threads and size bucket.
    """
    if device.type == "cuda":
        return "faiss" if faiss_gpu_available() else "torch"
    if device.type != "cpu" or n * m * d < PROBE_MIN_WORK or m < 256:
        return "torch"
    entry = _read_backend_cache().get(_probe_key(n, m, d, k))
    backend = entry.get("backend") if isinstance(entry, dict) else None
    return backend if backend in ("torch", "faiss") else None


def _measure_and_search(
    db: torch.Tensor, q: torch.Tensor, k: int, *, memory_mb: float, device: torch.device, progress: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Search the first queries with both backends, time them, remember the faster and search the rest with it.

    The probe costs ~``PROBE_WORK`` multiply-adds per backend, and its work is not lost: the winner's results for
    those queries are part of the answer.
    """
    n, d = db.shape
    head = q[: min(len(q) // 4, max(64, int(PROBE_WORK // (n * d))))]
    halves = (head[: len(head) // 2], head[len(head) // 2 :])
    searchers, results = {}, {"torch": [], "faiss": []}
    seconds = {"torch": 0.0, "faiss": 0.0}
    # Building a searcher (faiss copies the database into its index) is paid once per call, and both are built
    # before the clock starts: only searches are timed, as they are what the rest of the queries cost. Order
    # torch, faiss, faiss, torch over the two halves: a change of load on a shared machine weighs on both alike.
    for name in ("torch", "faiss"):
        searchers[name] = _searcher(db, k, memory_mb, device, name)
    for name, half in (("torch", 0), ("faiss", 0), ("faiss", 1), ("torch", 1)):
        start = time.perf_counter()
        results[name].append(_search_chunks(*searchers[name], halves[half], k, False))
        seconds[name] += time.perf_counter() - start
    best = min(seconds, key=seconds.__getitem__)
    _remember_backend(_probe_key(n, len(q), d, k), best, seconds)
    search, chunk = searchers.pop(best)
    searchers.clear()  # free the loser's copy of the database (faiss keeps its own)
    sims, idx = _search_chunks(search, chunk, q[len(head) :], k, progress)
    parts = [*results[best], (sims, idx)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _probe_key(n: int, m: int, d: int, k: int) -> str:
    """Machine, library versions, threads and a size bucket (nearest powers of two) of one search."""
    import faiss

    def bucket(v: int) -> int:
        return round(math.log2(max(v, 1)))

    return (
        f"{_machine()} | torch {torch.__version__} | faiss {faiss.__version__} | {torch.get_num_threads()} threads"
        f" | n~2^{bucket(n)} m~2^{bucket(m)} d~2^{bucket(d)} k~2^{bucket(k)}"
    )


def _machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{platform.node()} ({model}, {os.cpu_count()} CPUs)"


def backend_cache_path() -> Path:
    """``$SSLZOO_CACHE/knn_backend.json`` (default ``~/.cache/sslzoo``): the measured k-NN backends."""
    return cache_root().parent / "knn_backend.json"


def _read_backend_cache() -> dict[str, Any]:
    try:
        data = json.loads(backend_cache_path().read_text())
    except (OSError, ValueError):  # none yet, or unreadable: measure again
        return {}
    return data if isinstance(data, dict) else {}


def _remember_backend(key: str, backend: str, seconds: dict[str, float]) -> None:
    data = _read_backend_cache()
    data[key] = {"backend": backend, **{f"{name}_s": t for name, t in seconds.items()}}
    with contextlib.suppress(OSError):  # a read-only cache only costs a new measurement next time
        write_json_atomic(backend_cache_path(), data)


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
        ``{k: that dict}`` for each ``k``. The classes are the distinct labels of train and test (any integer
        ids); predictions are given in those ids.
    """
    ks = [as_int(v, "k", 1) for v in ([k] if isinstance(k, Integral) else _sequence(k))]
    if not ks:
        raise SslzooError("give at least one k for the k-NN classifier.")
    temperature = as_positive_float(temperature, "temperature")
    memory_mb = as_positive_float(memory_mb, "memory_mb")
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
    device = resolve_device(device)
    # Any integer ids (10⁹, negative, with gaps) become 0..C-1 here; predictions are mapped back below.
    (y_train, y_test), classes = dense_labels(y_train, y_test)
    num_classes = len(classes)

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
    for result in results.values():  # back to the caller's class ids
        result["predictions"] = classes[torch.from_numpy(result["predictions"])].numpy()
    return results[ks[0]] if isinstance(k, Integral) else results


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
