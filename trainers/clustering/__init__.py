"""Building blocks of the clustering methods (DeepCluster, DeeperCluster, Self-Label): pure functions, tested alone.

* :mod:`.kmeans` — PCA-whitening, faiss k-means with DeepCluster's empty-cluster repair, DeeperCluster's hierarchy.
* :mod:`.sinkhorn` — SeLa's equipartitioned optimal transport and its rounding to hard labels.
* :mod:`.sampler` — sampling uniform over pseudo-labels.
* :mod:`.distributed` — gather the features of all ranks, solve once, broadcast.
"""

from trainers.clustering.distributed import gather_by_index, is_distributed, solve_once
from trainers.clustering.kmeans import (
    N_ROTATIONS,
    KMeansResult,
    cluster_features,
    faiss_gpu_available,
    fill_empty_clusters,
    hierarchical_kmeans,
    kmeans,
    l2_normalize,
    nmi,
    pca_whiten,
    round_nmi,
    super_class_targets,
)
from trainers.clustering.sampler import UniformLabelSampler, cluster_sample_weights
from trainers.clustering.sinkhorn import balanced_assignment, sinkhorn_knopp, sinkhorn_labels

__all__ = [
    "N_ROTATIONS",
    "KMeansResult",
    "UniformLabelSampler",
    "balanced_assignment",
    "cluster_features",
    "cluster_sample_weights",
    "faiss_gpu_available",
    "fill_empty_clusters",
    "gather_by_index",
    "hierarchical_kmeans",
    "is_distributed",
    "kmeans",
    "l2_normalize",
    "nmi",
    "pca_whiten",
    "round_nmi",
    "sinkhorn_knopp",
    "sinkhorn_labels",
    "solve_once",
    "super_class_targets",
]
