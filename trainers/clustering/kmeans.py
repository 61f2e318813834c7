"""DeepCluster's clustering round: PCA-whitening, faiss k-means, empty-cluster repair; DeeperCluster's hierarchy.

Caron et al., "Deep Clustering for Unsupervised Learning of Visual Features" (ECCV 2018), Sec. 3.2–3.3, and
"Unsupervised Pre-Training of Image Features on Non-Curated Data" (ICCV 2019), Sec. 3.3.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(500, 32)).astype("float32")
>>> z = pca_whiten(x, dim=8)
>>> z.shape, bool(np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5))
((500, 8), True)
>>> result = kmeans(z, k=10, niter=5, seed=0)
>>> result.labels.shape, result.centroids.shape, int(np.bincount(result.labels, minlength=10).min()) > 0
((500,), (10, 8), True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from zoo.errors import SslzooError

#: Relative size of the perturbation that separates a copied centroid from its source (faiss uses 1/1024 too).
SPLIT_EPS = 1.0 / 1024
#: Below this many feature values faiss runs single-threaded: OpenMP threads only add waiting on small problems,
#: and a lot of it when the cores are shared.
SINGLE_THREAD_VALUES = 1 << 22


@contextlib.contextmanager
def _faiss_threads_for(x: np.ndarray) -> Iterator[None]:
    import faiss

    if x.size >= SINGLE_THREAD_VALUES:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@dataclass
class KMeansResult:
    """Outcome of :func:`kmeans`.

    Attributes:
        labels: ``(N,)`` int64 cluster of each point; no cluster is empty.
        centroids: ``(k, D)`` float32 centroids, consistent with ``labels`` after empty-cluster repair.
        n_repaired: How many empty clusters were refilled by splitting a non-empty one.
    """

    labels: np.ndarray
    centroids: np.ndarray
    n_repaired: int = 0


def _as_float32(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().float().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit Euclidean norm: ``(N, D) → (N, D)``."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def pca_whiten(features, dim: int, eps: float = 1e-5) -> np.ndarray:
    """PCA-whiten ``(N, D)`` features to ``(N, d)`` and L2-normalise the rows (DeepCluster, Sec. 3.3).

    Each kept principal component is divided by the square root of its eigenvalue (faiss ``PCAMatrix`` with
    ``eigen_power=-0.5``); ``eps`` is added to the eigenvalues so near-constant directions do not explode.
    ``d`` is clipped to ``min(D, N)``.
    """
    import faiss

    x = _as_float32(features)
    n, d_in = x.shape
    d_out = max(1, min(dim, d_in, n))
    pca = faiss.PCAMatrix(d_in, d_out, -0.5)
    pca.epsilon = eps
    with _faiss_threads_for(x):
        pca.train(x)
        if not pca.is_trained:
            raise SslzooError(
                f"PCA of {n} features of size {d_in} failed; use more samples or a smaller pca_dim"
            )
        return l2_normalize(pca.apply(x))


def faiss_gpu_available() -> bool:
    """True when faiss was built with GPU support and sees a GPU (faiss-gpu wheels); faiss-cpu returns False."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def fill_empty_clusters(
    features: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int]:
    """Give every empty cluster half of a random non-empty cluster (DeepCluster, Sec. 3.3, "Empty clusters").

    For each empty cluster ``e``: pick a non-empty cluster ``s`` with at least two points (uniformly at random),
    put the centroid of ``e`` at ``s``'s centroid plus a small random perturbation ``δ`` and move ``s`` to its
    centroid minus ``δ``; then reassign ``s``'s points to the nearer of the two. The split plane passes through
    the mean of ``s``'s points, so both halves get points unless they all lie on it; then they are halved by index.

    Args:
        features: ``(N, D)`` points.
        labels: ``(N,)`` cluster ids in ``[0, k)``, some clusters possibly empty.
        k: Number of clusters.
        rng: Source of randomness (which cluster to split, and δ's direction).

    Returns:
        ``(labels, centroids, n_repaired)``: repaired ``(N,)`` labels, the ``(k, D)`` means of the final clusters,
        and the number of clusters that were empty.
    """
    x = _as_float32(features)
    labels = np.asarray(labels, dtype=np.int64).copy()
    if len(labels) < k:
        raise SslzooError(f"cannot make {k} non-empty clusters from {len(labels)} points; use a smaller k")
    counts = np.bincount(labels, minlength=k)
    empty = np.flatnonzero(counts == 0)
    for e in empty:
        splittable = np.flatnonzero(counts >= 2)
        s = int(rng.choice(splittable))
        members = np.flatnonzero(labels == s)
        center = x[members].mean(axis=0)
        direction = rng.normal(size=x.shape[1]).astype(np.float32)
        scale = SPLIT_EPS * max(float(np.linalg.norm(center)), 1e-6)
        delta = direction / np.linalg.norm(direction) * scale
        # Nearer to center+δ than to center−δ  ⇔  (x − center)·δ > 0.
        side = (x[members] - center) @ delta > 0
        if side.all() or not side.any():
            side = np.arange(len(members)) < len(members) // 2
        labels[members[side]] = e
        counts[e] = int(side.sum())
        counts[s] -= counts[e]
    centroids = np.zeros((k, x.shape[1]), dtype=np.float32)
    np.add.at(centroids, labels, x)
    centroids /= np.maximum(counts, 1)[:, None]
    return labels, centroids, len(empty)


def kmeans(
    features,
    k: int,
    niter: int = 20,
    seed: int = 0,
    use_gpu: bool | None = None,
    max_points_per_centroid: int = 10_000_000,
    nredo: int = 1,
) -> KMeansResult:
    """Lloyd's k-means with faiss on ``(N, D)`` features; GPU when faiss has one; no empty cluster in the result.

    Args:
        features: ``(N, D)`` array or tensor (PCA-whitened and L2-normalised in DeepCluster).
        k: Number of clusters (``N >= k``).
        niter: Lloyd iterations.
        seed: Seeds faiss's centroid initialisation and the empty-cluster repair, so results are reproducible.
        use_gpu: ``None`` picks the GPU when :func:`faiss_gpu_available`.
        max_points_per_centroid: faiss subsamples beyond ``k × this``; the large default keeps every point, as
            DeepCluster does.
        nredo: Runs from different initialisations; the one with the lowest objective is kept.

    Returns:
        A :class:`KMeansResult` with ``(N,)`` labels and ``(k, D)`` centroids.
    """
    import faiss

    x = _as_float32(features)
    n, d = x.shape
    if not 1 <= k <= n:
        raise SslzooError(f"k-means needs 1 <= k <= number of samples, got k={k} for {n} samples; lower k")
    gpu = faiss_gpu_available() if use_gpu is None else use_gpu
    km = faiss.Kmeans(
        d,
        k,
        niter=niter,
        nredo=nredo,
        seed=seed,
        gpu=bool(gpu),
        verbose=False,
        min_points_per_centroid=1,
        max_points_per_centroid=max_points_per_centroid,
    )
    with _faiss_threads_for(x):
        km.train(x)
        _, assign = km.index.search(x, 1)
    labels, centroids, n_repaired = fill_empty_clusters(x, assign[:, 0], k, np.random.default_rng(seed))
    return KMeansResult(labels=labels, centroids=centroids, n_repaired=n_repaired)


def cluster_features(
    features, k: int, pca_dim: int = 256, niter: int = 20, seed: int = 0, use_gpu: bool | None = None
) -> KMeansResult:
    """One DeepCluster round: ``(N, D)`` features → PCA-whiten to ``pca_dim`` → L2-normalise → k-means.

    Returns:
        A :class:`KMeansResult`; ``labels`` are the new ``(N,)`` pseudo-labels.
    """
    return kmeans(pca_whiten(features, pca_dim), k, niter=niter, seed=seed, use_gpu=use_gpu)


def hierarchical_kmeans(
    features, n_super: int, n_sub: int, niter: int = 20, seed: int = 0, use_gpu: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """DeeperCluster's two-level clustering: ``m`` super-clusters, then ``k`` sub-clusters inside each one.

    Args:
        features: ``(N, D)`` features of the un-rotated images.
        n_super: ``m``, number of super-clusters.
        n_sub: ``k``, sub-clusters per super-cluster (fewer when a super-cluster has fewer than ``k`` points).

    Returns:
        ``(super_labels, sub_labels)``, both ``(N,)`` int64; ``sub_labels`` are in ``[0, k)`` within each
        super-cluster.
    """
    x = _as_float32(features)
    top = kmeans(x, n_super, niter=niter, seed=seed, use_gpu=use_gpu)
    sub = np.zeros(len(x), dtype=np.int64)
    for c in range(n_super):
        members = np.flatnonzero(top.labels == c)
        k_c = min(n_sub, len(members))
        sub[members] = kmeans(x[members], k_c, niter=niter, seed=seed + 1 + c, use_gpu=use_gpu).labels
    return top.labels, sub


N_ROTATIONS = 4  # 0°, 90°, 180°, 270°


def super_class_targets(clusters, rotations):
    """DeeperCluster's super-class of a (cluster, rotation) pair: ``cluster · 4 + rotation``, in ``[0, 4m)``.

    The 4m super-classes are the Cartesian product of the m super-clusters and the 4 rotations (Sec. 3.3).
    Works on numpy arrays and torch tensors alike.

    >>> super_class_targets(np.array([0, 0, 2]), np.array([0, 3, 1]))
    array([0, 3, 9])
    """
    return clusters * N_ROTATIONS + rotations


def nmi(labels_a, labels_b) -> float:
    """Normalised mutual information between two labelings of the same points (sklearn, arithmetic mean)."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(np.asarray(labels_a), np.asarray(labels_b)))


def round_nmi(new, previous=None, true_labels=None) -> dict[str, float]:
    """NMI of a new round's ``(N,)`` assignments with the previous round's and with the true labels, if given.

    DeepCluster (Fig. 2) tracks both: agreement between consecutive rounds shows the assignments stabilising,
    agreement with the classes shows them becoming semantic. Labels < 0 mean "no previous round".
    """
    new = np.asarray(new)
    scores: dict[str, float] = {}
    if previous is not None and (np.asarray(previous) >= 0).all():
        scores["nmi_prev"] = nmi(new, previous)
    if true_labels is not None and (np.asarray(true_labels) >= 0).all():  # an unlabelled collection has -1
        scores["nmi_true"] = nmi(new, true_labels)
    return scores
