"""Clustering metrics of frozen features: k-means on L2-normalised features, scored against the labels.

* NMI: mutual information over the arithmetic mean of the two entropies (scikit-learn's default).
* AMI: NMI corrected for chance (0 for a random partition, 1 for a perfect one).
* ARI: Rand index adjusted for chance (Hubert & Arabie, 1985).
* ACC: accuracy after the one-to-one matching of clusters to classes that maximises agreement (Hungarian
  algorithm on the contingency table, as in DEC, IIC and SCAN). With more clusters than classes the extra clusters
  match nothing and count as errors.

>>> import numpy as np
>>> scores = clustering_scores(np.array([2, 2, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 2, 2]))
>>> {name: round(value, 3) for name, value in scores.items()}
{'nmi': 1.0, 'ami': 1.0, 'ari': 1.0, 'acc': 1.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np
import torch.nn.functional as F

from evaluators._inputs import ArrayLike, as_features, as_int, as_labels, faiss_gpu_available
from zoo.errors import SslzooError

SCORE_NAMES = ("nmi", "ami", "ari", "acc")
SMALL_PROBLEM = 2**20  # feature entries below which one thread is fastest


def contingency_table(assignments: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(clusters, classes) counts: entry (i, j) is the number of points in cluster i with label j."""
    _, a = np.unique(assignments, return_inverse=True)
    _, y = np.unique(labels, return_inverse=True)
    table = np.zeros((a.max() + 1, y.max() + 1), dtype=np.int64)
    np.add.at(table, (a, y), 1)
    return table


def hungarian_accuracy(assignments: ArrayLike, labels: ArrayLike) -> float:
    """Share of points whose cluster is matched to their class under the best one-to-one matching.

    >>> hungarian_accuracy(np.array([1, 1, 0, 0]), np.array([0, 0, 1, 1]))
    1.0
    """
    from scipy.optimize import linear_sum_assignment

    a, y = _pair(assignments, labels)
    table = contingency_table(a, y)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(y))


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
    """NMI, AMI, ARI and Hungarian accuracy of a partition against the labels, each in [0, 1] (ARI ≥ -0.5).

    Args:
        assignments: (N,) cluster ids (any integers; their values need not match the labels).
        labels: (N,) class labels.

    Returns:
        ``{"nmi", "ami", "ari", "acc"}``.
    """
    from sklearn import metrics

    a, y = _pair(assignments, labels)
    return {
        "nmi": float(metrics.normalized_mutual_info_score(y, a)),
        "ami": float(metrics.adjusted_mutual_info_score(y, a)),
        "ari": float(metrics.adjusted_rand_score(y, a)),
        "acc": hungarian_accuracy(a, y),
    }


def kmeans_assignments(
    feats: ArrayLike, n_clusters: int, seed: int = 0, *, niter: int = 25, gpu: bool = False
) -> np.ndarray:
    """Assign each row of L2-normalised ``feats`` (N, D) to one of ``n_clusters`` faiss k-means centroids.

    All points are used to fit (faiss would otherwise subsample to 256 points per centroid).
    """
    import faiss

    x = np.ascontiguousarray(F.normalize(as_features(feats, "feats"), dim=1).cpu().numpy())
    niter = as_int(niter, "niter", 1)
    seed = as_int(seed, "seed", 0)
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, Integral) or not 1 <= n_clusters <= len(x):
        raise SslzooError(f"n_clusters={n_clusters} must be between 1 and the number of points ({len(x)}).")
    kmeans = faiss.Kmeans(
        x.shape[1],
        n_clusters,
        niter=niter,
        seed=seed,
        gpu=gpu,
        max_points_per_centroid=max(256, -(-len(x) // n_clusters)),
        min_points_per_centroid=1,  # small test splits are fine; don't print faiss's warning
        verbose=False,
    )
    # Small problems: OpenMP start-up and spinning cost more than the arithmetic (badly so on a busy machine).
    threads = faiss.omp_get_max_threads()
    if x.size < SMALL_PROBLEM:
        faiss.omp_set_num_threads(1)
    try:
        kmeans.train(x)
        _, assignment = kmeans.index.search(x, 1)
    finally:
        faiss.omp_set_num_threads(threads)
    return assignment.reshape(-1)


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
        The mean of each score in ``SCORE_NAMES``, its standard deviation over seeds as ``"<name>_std"``, and
        ``"n_clusters"``.

    >>> import torch
    >>> x = torch.cat([torch.randn(50, 4) + 20 * torch.eye(4)[0], torch.randn(50, 4) + 20 * torch.eye(4)[1]])
    >>> cluster_metrics(x, [0] * 50 + [1] * 50, seeds=2)["acc"]
    1.0
    """
    import torch

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
    gpu = torch.cuda.is_available() and faiss_gpu_available()
    runs = [
        clustering_scores(kmeans_assignments(x, n_clusters, s, niter=niter, gpu=gpu), y) for s in seed_list
    ]
    out: dict[str, float] = {}
    for name in SCORE_NAMES:
        values = np.array([r[name] for r in runs])
        out[name] = float(values.mean())
        out[f"{name}_std"] = float(values.std())
    out["n_clusters"] = n_clusters
    return out
