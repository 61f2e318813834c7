"""Pseudo-label steps of the clustering methods on CPU: a DeepCluster round and SeLa's Sinkhorn-Knopp.

1. A clustering round (DeepCluster, Sec. 3.2): (N, D) features → PCA-whitening to d → L2 → faiss k-means with
   empty-cluster repair → the uniform-over-clusters sample order of the next epoch. Baseline in the same
   process: scikit-learn's ``PCA(whiten=True)`` + ``KMeans(n_init=1)`` with the same iterations.
2. Sinkhorn-Knopp (SeLa, Eq. 8) on (N, K) logits with λ = 25: ours (log-domain normalisation, then float64
   matrix-vector rescaling) against a log-domain baseline (two ``logsumexp`` over (N, K) per iteration), both for
   the same fixed number of iterations; then ours to a 1e-4 tolerance, and the balanced rounding to hard labels.

    .venv/bin/python benchmarks/bench_pseudo_labels.py                      # N=100k, K=1000, D=512 → d=256
    .venv/bin/python benchmarks/bench_pseudo_labels.py --n 20000 --skip-sklearn
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from trainers.clustering import (
    UniformLabelSampler,
    balanced_assignment,
    kmeans,
    nmi,
    pca_whiten,
    sinkhorn_knopp,
)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def mixture(n: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features of ``classes`` overlapping Gaussian blobs, as a backbone would give."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    y = rng.integers(classes, size=n)
    return centres[y] + 2.0 * rng.normal(size=(n, dim)).astype(np.float32), y


def clustering_round(x: np.ndarray, k: int, pca_dim: int, niter: int) -> tuple[np.ndarray, dict[str, float]]:
    z, t_pca = timed(lambda: pca_whiten(x, pca_dim))
    result, t_km = timed(lambda: kmeans(z, k, niter=niter, seed=0))
    order, t_order = timed(lambda: UniformLabelSampler(result.labels, seed=0).global_indices())
    assert len(order) == len(x)
    return result.labels, {"pca": t_pca, "kmeans": t_km, "sampler": t_order}


def sklearn_round(x: np.ndarray, k: int, pca_dim: int, niter: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    z = PCA(pca_dim, whiten=True, random_state=0).fit_transform(x)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    return KMeans(k, n_init=1, max_iter=niter, tol=0.0, random_state=0).fit_predict(z)


@torch.no_grad()
def sinkhorn_log_domain(logits: torch.Tensor, lam: float, n_iters: int) -> torch.Tensor:
    """The textbook stable variant: every row and column step is a logsumexp over the whole (N, K) matrix."""
    n, k = logits.shape
    log_p = torch.log_softmax(logits.double(), 1).mul_(lam)
    f = torch.zeros(n, 1, dtype=torch.float64)
    g = torch.zeros(1, k, dtype=torch.float64)
    for _ in range(n_iters):
        f = -math.log(n) - torch.logsumexp(log_p + g, dim=1, keepdim=True)
        g = -math.log(k) - torch.logsumexp(log_p + f, dim=0, keepdim=True)
    return (log_p + f + g).exp_()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=1000, help="clusters of the round and classes of Sinkhorn")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--pca-dim", type=int, default=256)
    parser.add_argument("--niter", type=int, default=20, help="k-means iterations")
    parser.add_argument("--sinkhorn-iters", type=int, default=10, help="fixed iterations of the comparison")
    parser.add_argument("--skip-sklearn", action="store_true")
    parser.add_argument("--skip-round", action="store_true", help="only time Sinkhorn-Knopp")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"N={args.n}, K={args.k}, D={args.dim}→{args.pca_dim}, {torch.get_num_threads()} threads, load {load:.1f}"
    )

    # Warm-up: imports and first-call set-up are not what we measure.
    small, _ = mixture(2000, args.dim, 10)
    clustering_round(small, 10, 16, 2)
    sinkhorn_knopp(torch.randn(500, 10), n_iters=2)

    if not args.skip_round:
        time_clustering_round(args)
    time_sinkhorn(args)


def time_clustering_round(args: argparse.Namespace) -> None:
    x, y = mixture(args.n, args.dim, classes=100)
    labels, parts = clustering_round(x, args.k, args.pca_dim, args.niter)
    total = sum(parts.values())
    detail = ", ".join(f"{name} {t:.2f} s" for name, t in parts.items())
    print(f"clustering round (ours): {total:.2f} s  ({detail}); NMI with the blobs {nmi(labels, y):.3f}")
    if not args.skip_sklearn:
        sk_labels, t_sk = timed(lambda: sklearn_round(x, args.k, args.pca_dim, args.niter))
        print(
            f"clustering round (sklearn PCA + KMeans): {t_sk:.2f} s; ratio {t_sk / total:.1f}x; "
            f"NMI with the blobs {nmi(sk_labels, y):.3f}"
        )


def time_sinkhorn(args: argparse.Namespace) -> None:
    logits = torch.randn(args.n, args.k, generator=torch.Generator().manual_seed(0))
    m = args.sinkhorn_iters

    def per_iteration(solver) -> tuple[float, float]:
        """(set-up, one iteration) in seconds, from runs of 1 and 1 + m iterations."""
        _, t1 = timed(lambda: solver(logits, lam=25.0, n_iters=1))
        _, tm = timed(lambda: solver(logits, lam=25.0, n_iters=1 + m))
        step = (tm - t1) / m
        return t1 - step, step

    ours = per_iteration(lambda *a, **kw: sinkhorn_knopp(*a, tol=0.0, **kw))
    log_domain = per_iteration(sinkhorn_log_domain)
    print(
        f"Sinkhorn-Knopp per iteration: ours {1e3 * ours[1]:.0f} ms (set-up {ours[0]:.1f} s), "
        f"log-domain {1e3 * log_domain[1]:.0f} ms (set-up {log_domain[0]:.1f} s); ratio {log_domain[1] / ours[1]:.1f}x"
    )
    plan, t_tol = timed(lambda: sinkhorn_knopp(logits, lam=25.0, n_iters=1000, tol=1e-4))
    row_err = float((plan.sum(1) * args.n - 1).abs().max())
    hard, t_round = timed(lambda: balanced_assignment(plan))
    counts = torch.bincount(hard, minlength=args.k)
    iterations = max(1, round((t_tol - ours[0]) / ours[1]))
    print(
        f"Sinkhorn-Knopp to relative marginal error 1e-4: {t_tol:.2f} s (≈{iterations} iterations, "
        f"max row error {row_err:.1e}); balanced rounding {t_round:.2f} s, "
        f"class sizes {int(counts.min())}–{int(counts.max())}"
    )


if __name__ == "__main__":
    main()
