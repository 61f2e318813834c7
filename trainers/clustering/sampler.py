"""DeepCluster's sampler: uniform over pseudo-labels, so large clusters do not dominate training.

"Trivial parametrization" (DeepCluster, Sec. 3.3): sampling images based on a uniform distribution over the
classes (pseudo-labels) weights each input by the inverse of its cluster's size.

>>> import numpy as np
>>> labels = np.array([0] * 90 + [1] * 10)
>>> sampler = UniformLabelSampler(labels, num_samples=100, seed=0)
>>> np.bincount(labels[list(sampler)]).tolist()
[50, 50]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def cluster_sample_weights(labels) -> np.ndarray:
    """Per-sample weight ``1 / |cluster(i)|``, normalised to sum to 1: ``(N,)`` labels → ``(N,)`` float64."""
    labels = np.asarray(labels, dtype=np.int64)
    sizes = np.bincount(labels)
    weights = 1.0 / sizes[labels]
    return weights / weights.sum()


class UniformLabelSampler(Sampler[int]):
    """Indices such that every non-empty cluster contributes (almost) equally to an epoch.

    Each epoch draws ``num_samples`` indices: every cluster gets ``⌊num_samples / C⌋`` slots (``C`` non-empty
    clusters) and the remainder goes to randomly chosen clusters, so per-epoch counts differ by at most one and
    their expectation is equal; a cluster samples without replacement when it is large enough. Under DDP each
    rank takes every ``num_replicas``-th index of the same global order (the seed and epoch fix it), padded so
    all ranks get the same count.

    Args:
        labels: ``(N,)`` pseudo-label of each sample.
        num_samples: Indices per epoch over all ranks (default ``N``).
        seed: Base seed; the order of epoch ``e`` depends on ``seed`` and ``e`` only.
        num_replicas: World size.
        rank: This process's rank.
    """

    def __init__(
        self, labels, num_samples: int | None = None, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_samples = len(self.labels) if num_samples is None else int(num_samples)
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._members = [np.flatnonzero(self.labels == c) for c in np.unique(self.labels)]

    def set_epoch(self, epoch: int) -> None:
        """Change the draw, as ``DistributedSampler.set_epoch`` does."""
        self.epoch = epoch

    def global_indices(self) -> np.ndarray:
        """The epoch's ``num_samples`` indices over all ranks, before sharding."""
        rng = np.random.default_rng([self.seed, self.epoch])
        n_clusters = len(self._members)
        base, extra = divmod(self.num_samples, n_clusters)
        quota = np.full(n_clusters, base)
        quota[rng.choice(n_clusters, size=extra, replace=False)] += 1
        picks = [
            rng.choice(members, size=q, replace=len(members) < q)
            for members, q in zip(self._members, quota)
            if q > 0
        ]
        indices = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
        return rng.permutation(indices)

    def __iter__(self) -> Iterator[int]:
        indices = self.global_indices()
        per_rank = len(self)
        total = per_rank * self.num_replicas
        if total > len(indices):  # pad by wrapping around, as DistributedSampler does
            indices = np.concatenate([indices, indices[: total - len(indices)]])
        return iter(torch.from_numpy(indices[self.rank : total : self.num_replicas]).tolist())

    def __len__(self) -> int:
        return -(-self.num_samples // self.num_replicas)
