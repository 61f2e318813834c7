"""Clustering: ``evaluators.cluster_metrics`` (batched coarse-to-fine k-means) vs scikit-learn's KMeans, same features and seeds.

Both cluster the same L2-normalised features with k = number of classes, once per seed (one k-means++ / random
init each, scikit-learn's ``n_init=1``), and average NMI, ARI and Hungarian accuracy over seeds. Prints the wall-time
ratio (sklearn / ours; > 1 means ours is faster) and the scores, twice: for k-means alone (the assignments of every
seed) and for the whole ``cluster_metrics`` (k-means plus the scores, NMI, AMI, ARI and Hungarian accuracy, which
both sides compute the same way).

    .venv/bin/python benchmarks/bench_clustering.py                 # 10k x 384, 10 classes (a test split)
    .venv/bin/python benchmarks/bench_clustering.py --n 60000
    .venv/bin/python benchmarks/bench_clustering.py --threads 1    # steadier on a shared, busy machine
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from evaluators import cluster_metrics, clustering_scores
from evaluators.clustering import kmeans_batched


def features(n, dim, classes, seed=0, noise=4.0):
    """A Gaussian mixture with overlapping classes."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + noise * torch.randn(n, dim, generator=g), y


def sklearn_metrics(x, y, seeds):
    from sklearn.cluster import KMeans

    xn = F.normalize(torch.as_tensor(x), dim=1).numpy()
    k = len(np.unique(y))
    runs = [clustering_scores(KMeans(k, n_init=1, random_state=s).fit_predict(xn), y) for s in range(seeds)]
    return {name: float(np.mean([r[name] for r in runs])) for name in runs[0]}


def sklearn_assignments(x, k, seeds):
    from sklearn.cluster import KMeans

    xn = F.normalize(torch.as_tensor(x), dim=1).numpy()
    return [KMeans(k, n_init=1, random_state=s).fit_predict(xn) for s in range(seeds)]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both (default: all)")
    args = parser.parse_args()
    if args.threads:
        # Both sides on the same thread budget: torch's intra-op pool and every BLAS/OpenMP pool sklearn uses.
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    x, y = features(args.n, args.dim, args.classes)
    y = y.numpy()
    # Warm-up: imports and first-call set-up are not what we measure.
    cluster_metrics(x[:200], y[:200], seeds=1)
    sklearn_metrics(x[:200], y[:200], 1)
    print(
        f"{args.n} points, {args.dim} dims, {args.classes} classes, {args.seeds} seeds, {torch.get_num_threads()} threads"
    )
    k = len(np.unique(y))
    _, t_ours = timed(lambda: kmeans_batched(F.normalize(x, dim=1), k, list(range(args.seeds))))
    _, t_sk = timed(lambda: sklearn_assignments(x, k, args.seeds))
    print(f"k-means alone        sklearn {t_sk:6.2f} s   ours {t_ours:6.2f} s   ratio {t_sk / t_ours:5.2f}x")
    ours, t_ours = timed(lambda: cluster_metrics(x, y, seeds=args.seeds))
    theirs, t_sk = timed(lambda: sklearn_metrics(x, y, args.seeds))
    print(f"with the scores      sklearn {t_sk:6.2f} s   ours {t_ours:6.2f} s   ratio {t_sk / t_ours:5.2f}x")
    for name in ("nmi", "ari", "acc"):
        print(
            f"  {name}: sklearn {theirs[name]:.4f}  ours {ours[name]:.4f}  diff {ours[name] - theirs[name]:+.4f}"
        )


if __name__ == "__main__":
    main()
