"""Clustering metrics of frozen features: k-means on L2-normalised features, scored against the labels.

Every score is in percent, like the k-NN and linear accuracies (:mod:`zoo.scores`):

* NMI: mutual information over the arithmetic mean of the two entropies (scikit-learn's default).
* AMI: NMI corrected for chance (0 for a random partition, 100 for a perfect one).
* ARI: Rand index adjusted for chance (Hubert & Arabie, 1985).
* ACC: accuracy after the one-to-one matching of clusters to classes that maximises agreement (Hungarian
  algorithm on the contingency table, as in DEC, IIC and SCAN). With more clusters than classes the extra clusters
  match nothing and count as errors.

>>> import numpy as np
>>> scores = clustering_scores(np.array([2, 2, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 2, 2]))
>>> {name: round(value, 3) for name, value in scores.items()}
{'nmi': 100.0, 'ami': 100.0, 'ari': 100.0, 'acc': 100.0}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as F

from evaluators._inputs import ArrayLike, as_features, as_int, as_labels
from zoo.errors import SslzooError

SCORE_NAMES = ("nmi", "ami", "ari", "acc")
# What :func:`cluster_metrics` clusters with, as records and the leaderboard's notes name it (``details["kmeans"]``):
# this module's own k-means (:func:`kmeans_batched`), so the notes say what ran, not what once did.
KMEANS_IMPLEMENTATION = "torch k-means"
SMALL_PROBLEM = 2**20  # feature entries below which one thread is fastest


def contingency_table(assignments: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(clusters, classes) counts: entry (i, j) is the number of points in cluster i with label j."""
    _, a = np.unique(assignments, return_inverse=True)
    _, y = np.unique(labels, return_inverse=True)
    table = np.zeros((a.max() + 1, y.max() + 1), dtype=np.int64)
    np.add.at(table, (a, y), 1)
    return table


def hungarian_accuracy(assignments: ArrayLike, labels: ArrayLike) -> float:
    """Percentage of points whose cluster is matched to their class under the best one-to-one matching.

    >>> hungarian_accuracy(np.array([1, 1, 0, 0]), np.array([0, 0, 1, 2]))
    75.0
    """
    from scipy.optimize import linear_sum_assignment

    a, y = _pair(assignments, labels)
    table = contingency_table(a, y)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(100.0 * table[rows, cols].sum() / len(y))


def _pair(assignments: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = as_labels(assignments, _count(assignments), "assignments").cpu().numpy()
    y = as_labels(labels, _count(labels), "labels").cpu().numpy()
    if len(a) != len(y):
        raise SslzooError(f"{len(a)} cluster assignments for {len(y)} labels; pass one assignment per point.")
    if len(y) == 0:
        raise SslzooError("no points to score; clustering metrics need at least one labelled point.")
    return a, y


def _count(values: ArrayLike) -> int:
    """How many entries ``values`` has (anything ``np.size`` takes), so the label check compares like with like."""
    return int(values.numel()) if hasattr(values, "numel") else int(np.size(np.asarray(values, dtype=object)))


def clustering_scores(assignments: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """NMI, AMI, ARI and Hungarian accuracy of a partition against the labels, each in percent (ARI ≥ -50).

    Args:
        assignments: (N,) cluster ids (any integers; their values need not match the labels).
        labels: (N,) class labels.

    Returns:
        ``{"nmi", "ami", "ari", "acc"}``.
    """
    from sklearn import metrics

    a, y = _pair(assignments, labels)
    return {
        "nmi": 100.0 * float(metrics.normalized_mutual_info_score(y, a)),
        "ami": 100.0 * float(metrics.adjusted_mutual_info_score(y, a)),
        "ari": 100.0 * float(metrics.adjusted_rand_score(y, a)),
        "acc": hungarian_accuracy(a, y),
    }


def kmeans_assignments(
    feats: ArrayLike, n_clusters: int, seed: int = 0, *, niter: int = 25, gpu: bool = False
) -> np.ndarray:
    """Assign each row of L2-normalised ``feats`` (N, D) to one of ``n_clusters`` k-means centroids.

    See :func:`kmeans_batched`, which this runs for one seed (on the GPU when ``gpu``).
    """
    x = F.normalize(as_features(feats, "feats"), dim=1)
    niter = as_int(niter, "niter", 1)
    seed = as_int(seed, "seed", 0)
    device = torch.device("cuda" if gpu and torch.cuda.is_available() else "cpu")
    return kmeans_batched(x.to(device), n_clusters, [seed], niter=niter)[0]


def kmeans_batched(
    x: torch.Tensor, n_clusters: int, seeds: Sequence[int], *, niter: int = 25, sample_per_cluster: int = 1024
) -> np.ndarray:
    """Lloyd's k-means from k-means++ seeds, one run per seed, all seeds sharing each pass over ``x``.

    Coarse to fine: each run is seeded (greedy k-means++, as scikit-learn's ``KMeans``) and converged on a random
    sample of ``sample_per_cluster`` points per cluster, then refined by Lloyd iterations on all points until
    converged by scikit-learn's criterion (no assignment changes, or centroids moving less than 1e-4 of the
    feature variance; at most ``niter``), so the result is what scikit-learn's Lloyd reaches, at a fraction of
    the passes. The S runs are (S·K) centroids scored in one matmul per chunk of
    rows, and assignment and centroid update share that chunk (one pass over x per iteration).

    Args:
        x: (N, D) float32 features on the device to cluster on.
        n_clusters: K, ``1 <= K <= N``.
        seeds: One run per seed.
        niter: Lloyd iterations on the full data at most.
        sample_per_cluster: Size of the coarse stage's sample, per cluster.

    Returns:
        (S, N) int64 cluster ids.
    """
    n = x.shape[0]
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, Integral) or not 1 <= n_clusters <= n:
        raise SslzooError(f"n_clusters={n_clusters} must be between 1 and the number of points ({n}).")
    generators = [torch.Generator(device=x.device).manual_seed(int(s)) for s in seeds]
    threads = torch.get_num_threads()
    # Small problems on CPU: thread start-up and spinning cost more than the arithmetic (badly on a busy machine).
    if x.device.type == "cpu" and x.numel() < SMALL_PROBLEM:
        torch.set_num_threads(1)
    try:
        with torch.no_grad():
            # One sample for every run (drawn with a fixed seed, so a run depends on its own seed only).
            sample = x
            if n > sample_per_cluster * n_clusters:
                order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
                sample = x[order[: sample_per_cluster * n_clusters].to(x.device)]
            centroids = _kmeans_plus_plus(sample, n_clusters, generators)
            # scikit-learn's tolerance: 1e-4 of the mean per-feature variance (here of the sample).
            tol = 1e-4 * sample.var(dim=0).mean().item()
            centroids, _ = _lloyd(sample, centroids, niter=100, tol=tol)  # coarse: on the sample
            _, assignments = _lloyd(x, centroids, niter=niter, tol=tol)  # fine: on all points
    finally:
        torch.set_num_threads(threads)
    return assignments.cpu().numpy()


def _kmeans_plus_plus(x: torch.Tensor, k: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """(S, K, D) seeds by greedy k-means++ (scikit-learn's), one run per generator.

    D² sampling (Arthur & Vassilvitskii, 2007): each next seed is drawn ∝ the squared distance to the nearest seed
    so far; greedy: of 2 + ⌊ln K⌋ such draws the one that lowers the total squared distance most is kept.
    """
    trials = 2 + int(math.log(k))
    first = torch.cat([torch.randint(len(x), (1,), generator=g, device=x.device) for g in generators])
    chosen = [x[first]]  # (S, D) per step
    sq = x.pow(2).sum(dim=1, keepdim=True)
    d2 = (sq - 2 * x @ chosen[0].T + chosen[0].pow(2).sum(dim=1)).clamp_min_(0)  # (N, S)
    for _ in range(1, k):
        # An all-zero column (every point already a seed) would make multinomial fail: fall back to uniform.
        weights = torch.where(d2.sum(dim=0) > 0, d2, torch.ones_like(d2)).T
        picks = torch.stack(
            [torch.multinomial(w, trials, replacement=True, generator=g) for w, g in zip(weights, generators)]
        )  # (S, trials)
        candidates = x[picks]  # (S, trials, D)
        dist = (
            sq[:, :, None]
            - 2 * torch.einsum("nd,std->nst", x, candidates)
            + candidates.pow(2).sum(dim=2)[None]
        ).clamp_min_(0)  # (N, S, trials)
        new_d2 = torch.minimum(d2[:, :, None], dist)
        best = new_d2.sum(dim=0).argmin(dim=1)  # (S,)
        rows = torch.arange(len(generators), device=x.device)
        chosen.append(candidates[rows, best])
        d2 = new_d2[:, rows, best]
    return torch.stack(chosen, dim=1)


def _lloyd(
    x: torch.Tensor, centroids: torch.Tensor, niter: int, tol: float = 0.0, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd iterations of S runs at once; ``centroids`` (S, K, D).

    Stops when no assignment changes or, as scikit-learn's ``KMeans``, when every run's centroids moved by at
    most ``tol`` (sum of squared shifts). Returns the (S, K, D) centroids and the (S, N) assignments of the last
    pass.
    """
    s, k, d = centroids.shape
    n = x.shape[0]
    offsets = torch.arange(s, device=x.device) * k
    assignments = torch.full((s, n), -1, dtype=torch.long, device=x.device)
    for iteration in range(niter + 1):
        flat = centroids.reshape(s * k, d)
        half_norms = 0.5 * flat.pow(2).sum(dim=1)
        sums = torch.zeros(s * k, d, dtype=x.dtype, device=x.device)
        counts = torch.zeros(s * k, dtype=x.dtype, device=x.device)
        new = torch.empty_like(assignments)
        for start in range(0, n, chunk):
            block = x[start : start + chunk]
            # argmin ‖x − c‖² = argmax x·c − ‖c‖²/2, for all S·K centroids in one matmul.
            labels = torch.addmm(-half_norms, block, flat.T).view(len(block), s, k).argmax(dim=2)
            new[:, start : start + chunk] = labels.T
            one_hot = torch.zeros(len(block), s * k, dtype=x.dtype, device=x.device)
            one_hot.scatter_(1, labels + offsets, 1.0)
            sums.addmm_(one_hot.T, block)  # while the block is in cache: the update's sums in the same pass
            counts += one_hot.sum(dim=0)
        converged = torch.equal(new, assignments)
        assignments = new
        if converged or iteration == niter:
            break
        # An empty cluster keeps its centroid (scikit-learn relocates it; rare with k-means++ seeds).
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], flat).view(s, k, d)
        if (centroids - flat.view(s, k, d)).pow(2).sum(dim=(1, 2)).max() <= tol:
            # Keep this pass's assignments: the centroids moved by at most tol since (scikit-learn spends one more
            # pass on a final E-step, which can only move points at the boundaries).
            break
    return centroids, assignments


def cluster_metrics(
    feats: ArrayLike,
    labels: ArrayLike,
    n_clusters: int | None = None,
    seeds: int | Sequence[int] = 3,
    *,
    niter: int = 25,
) -> dict[str, float]:
    """k-means the features several times and average the clustering scores over the seeds.

    Args:
        feats: (N, D) features (L2-normalised here).
        labels: (N,) class labels.
        n_clusters: Number of clusters; default: the number of distinct labels.
        seeds: How many seeds (0, 1, …) or which seeds to run k-means with.
        niter: k-means iterations.

    Returns:
        The mean of each score in ``SCORE_NAMES`` (in percent), its standard deviation over seeds as
        ``"<name>_std"`` (in points), and ``"n_clusters"``.

    >>> import torch
    >>> x = torch.cat([torch.randn(50, 4) + 20 * torch.eye(4)[0], torch.randn(50, 4) + 20 * torch.eye(4)[1]])
    >>> cluster_metrics(x, [0] * 50 + [1] * 50, seeds=2)["acc"]
    100.0
    """
    x = as_features(feats, "feats")
    y = as_labels(labels, x.shape[0], "labels").cpu().numpy()
    if n_clusters is None:
        n_clusters = len(np.unique(y))
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seed_list = list(range(seeds))
    else:
        try:
            seed_list = [as_int(s, "a k-means seed", 0) for s in seeds]
        except TypeError:
            raise SslzooError(f"seeds must be a count or a list of seeds, got {seeds!r}.") from None
    if not seed_list:
        raise SslzooError("give at least one k-means seed.")
    niter = as_int(niter, "niter", 1)
    # Normalised once, on the GPU when there is one; every seed's run shares each pass over the features.
    x = F.normalize(x, dim=1).to("cuda" if torch.cuda.is_available() else "cpu")
    runs = [clustering_scores(a, y) for a in kmeans_batched(x, n_clusters, seed_list, niter=niter)]
    out: dict[str, float] = {}
    for name in SCORE_NAMES:
        values = np.array([r[name] for r in runs])
        out[name] = float(values.mean())
        out[f"{name}_std"] = float(values.std())
    out["n_clusters"] = n_clusters
    return out
