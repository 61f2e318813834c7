"""The clustering building blocks: Sinkhorn-Knopp, balanced rounding, k-means repair, sampler, hierarchy, DDP."""

from __future__ import annotations

import math
import os
import socket
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from trainers.clustering import (
    UniformLabelSampler,
    balanced_assignment,
    cluster_sample_weights,
    fill_empty_clusters,
    gather_by_index,
    hierarchical_kmeans,
    kmeans,
    nmi,
    pca_whiten,
    sinkhorn_knopp,
    sinkhorn_labels,
    solve_once,
    super_class_targets,
)

# ---------------------------------------------------------------- Sinkhorn-Knopp (SeLa)


def _random_logits(n: int, k: int, scale: float, seed: int) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize(("n", "k", "scale"), [(500, 10, 1.0), (1200, 40, 1.5), (97, 5, 0.5)])
def test_sinkhorn_plan_has_uniform_marginals(n, k, scale):
    plan = sinkhorn_knopp(_random_logits(n, k, scale, seed=n), lam=25.0, n_iters=5000)
    assert plan.dtype == torch.float64
    assert (plan >= 0).all()
    assert torch.allclose(plan.sum(1) * n, torch.ones(n, dtype=torch.float64), atol=1e-4, rtol=0)
    assert torch.allclose(plan.sum(0) * k, torch.ones(k, dtype=torch.float64), atol=1e-4, rtol=0)


def test_sinkhorn_plan_is_the_scaled_kernel():
    """Eq. 8 of SeLa: Q = diag(α) P^λ diag(β), so log Q − λ log P has rank one in (row, column) offsets."""
    logits = _random_logits(60, 4, 1.0, seed=1)
    lam = 5.0
    plan = sinkhorn_knopp(logits, lam=lam)
    residual = plan.log() - lam * torch.log_softmax(logits.double(), 1)
    row, col = residual[:, :1], residual[:1, :] - residual[0, 0]
    # The kernel is stored in float32: each entry carries a relative rounding of up to 2⁻²⁴ ≈ 6e-8.
    assert torch.allclose(residual, row + col, atol=2e-7)


def _greedy_balanced(logp: np.ndarray) -> np.ndarray:
    """The baseline: most confident points first, each takes its best class that still has room."""
    n, k = logp.shape
    room = np.full(k, n // k)
    room[: n % k] += 1
    labels = np.empty(n, dtype=np.int64)
    for i in np.argsort(-logp.max(1), kind="stable"):
        for j in np.argsort(-logp[i], kind="stable"):
            if room[j] > 0:
                room[j] -= 1
                labels[i] = j
                break
    return labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sinkhorn_beats_greedy_and_stays_below_the_optimum(seed):
    n, k = 400, 8
    logits = _random_logits(n, k, 2.0, seed)
    logp = torch.log_softmax(logits.double(), 1)
    plan = sinkhorn_knopp(logits, lam=25.0)
    labels = balanced_assignment(plan)

    plan_objective = float((plan * logp).sum())  # ⟨Q, log P⟩, Q has total mass 1
    hard_objective = float(logp[torch.arange(n), labels].mean())
    greedy_objective = float(logp.numpy()[np.arange(n), _greedy_balanced(logp.numpy())].mean())
    # Exact equipartitioned assignment: Hungarian on N points × (K classes repeated N/K times).
    cost = -np.repeat(logp.numpy(), n // k, axis=1)
    rows, cols = linear_sum_assignment(cost)
    optimum = float(-cost[rows, cols].mean())

    assert plan_objective >= greedy_objective
    assert hard_objective >= greedy_objective
    assert optimum >= hard_objective - 1e-12
    assert optimum >= plan_objective - 1e-12


@pytest.mark.filterwarnings(
    "ignore::trainers.clustering.sinkhorn.SinkhornWarning"
)  # 200 rescalings: rows off
def test_sinkhorn_does_not_overflow_with_sharp_scores_or_a_dead_class():
    n, k = 20_000, 16
    logits = _random_logits(n, k, 40.0, seed=3)  # exp(λ · logits) overflows float64 by hundreds of orders
    logits[:, 5] = -1e4  # a class no point wants: exp(λ log p) underflows to exactly 0 in float64
    plan = sinkhorn_knopp(logits, lam=25.0, n_iters=200)
    assert torch.isfinite(plan).all()
    assert torch.allclose(plan.sum(0) * k, torch.ones(k, dtype=torch.float64), atol=1e-6)
    assert float(plan[:, 5].sum()) == pytest.approx(1 / k)


def test_sinkhorn_warns_when_its_rows_miss_the_tolerance_and_iterates_until_they_do():
    from trainers.clustering.sinkhorn import SinkhornWarning

    logits = _random_logits(600, 10, 4.0, seed=0)  # peaked scores: slow to balance at λ = 25
    with pytest.warns(SinkhornWarning, match=r"stopped after 50 rescalings with a row sum off 1/N by 0\.\d+"):
        early = sinkhorn_knopp(logits, lam=25.0, n_iters=50)
    assert float((early.sum(1) * 600 - 1).abs().max()) > 0.01  # the warning is true: rows are > 1% off
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reaching the tolerance is silent
        plan = sinkhorn_knopp(logits, lam=25.0, n_iters=100_000, tol=1e-6)
        fixed = sinkhorn_knopp(logits, lam=25.0, n_iters=50, tol=0.0)  # tol 0: exactly n_iters, no check
    assert float((plan.sum(1) * 600 - 1).abs().max()) < 1e-6
    torch.testing.assert_close(fixed, early, rtol=0, atol=0)


@pytest.mark.parametrize(("n", "k"), [(1000, 10), (1003, 10), (257, 16), (50, 7)])
def test_hard_labels_are_balanced_within_one(n, k):
    labels = sinkhorn_labels(_random_logits(n, k, 2.0, seed=k), lam=25.0, n_iters=5000)
    counts = torch.bincount(labels, minlength=k)
    assert labels.shape == (n,)
    assert int(counts.sum()) == n
    assert int(counts.min()) >= math.floor(n / k)
    assert int(counts.max()) <= math.ceil(n / k)


def test_balanced_assignment_keeps_the_argmax_when_it_is_already_balanced():
    plan = torch.full((6, 3), 0.01, dtype=torch.float64)
    best = torch.tensor([2, 0, 1, 1, 0, 2])
    plan[torch.arange(6), best] = 0.5
    assert balanced_assignment(plan).tolist() == best.tolist()


def test_balanced_assignment_moves_the_least_confident_point_of_a_full_class():
    # Three points want class 0 (capacity 2): the weakest one (point 1) goes to its second choice.
    plan = torch.tensor([[0.9, 0.1, 0.0], [0.5, 0.3, 0.2], [0.8, 0.0, 0.2], [0.0, 0.1, 0.9], [0.1, 0.8, 0.1],
                         [0.0, 0.2, 0.8]], dtype=torch.float64)  # fmt: skip
    assert balanced_assignment(plan).tolist() == [0, 1, 0, 2, 1, 2]


# ---------------------------------------------------------------- DeepCluster: PCA, k-means, empty clusters


def test_pca_whiten_matches_an_eigendecomposition():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))).astype(np.float32) + 3.0
    z = pca_whiten(x, dim=5, eps=0.0)

    centred = x.astype(np.float64) - x.mean(0)
    eigval, eigvec = np.linalg.eigh(centred.T @ centred / len(x))
    top = np.argsort(eigval)[::-1][:5]
    expected = centred @ eigvec[:, top] / np.sqrt(eigval[top])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    signs = np.sign((z * expected).sum(0))  # eigenvectors are defined up to sign
    assert z.shape == (400, 5)
    np.testing.assert_allclose(z * signs, expected, atol=2e-3)


def test_fill_empty_clusters_splits_a_non_empty_cluster():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    labels = np.array([0] * 20 + [2] * 10)  # clusters 1 and 3 are empty
    fixed, centroids, n_repaired = fill_empty_clusters(x, labels, k=4, rng=np.random.default_rng(1))

    counts = np.bincount(fixed, minlength=4)
    assert n_repaired == 2
    assert (counts > 0).all()
    assert counts.sum() == 30
    # Every point moved out of a source cluster into a previously empty one; nothing else changed.
    moved = fixed != labels
    assert set(fixed[moved]) <= {1, 3}
    for e in (1, 3):
        sources = set(labels[fixed == e])
        assert len(sources) == 1 and sources <= {0, 2}
    np.testing.assert_allclose(centroids, [x[fixed == c].mean(0) for c in range(4)], atol=1e-6)


def test_fill_empty_clusters_halves_a_cluster_of_identical_points():
    x = np.ones((8, 3), dtype=np.float32)  # no hyperplane separates identical points
    fixed, _, _ = fill_empty_clusters(x, np.zeros(8, dtype=np.int64), k=2, rng=np.random.default_rng(0))
    assert np.bincount(fixed).tolist() == [4, 4]


def test_kmeans_leaves_no_empty_cluster_and_is_reproducible():
    rng = np.random.default_rng(0)
    # 3 distinct points repeated: k-means with k=6 must produce empty clusters that the repair refills.
    x = np.repeat(rng.normal(size=(3, 8)).astype(np.float32), 40, axis=0)
    result = kmeans(x, k=6, niter=10, seed=0)
    assert (np.bincount(result.labels, minlength=6) > 0).all()
    assert result.n_repaired > 0
    blobs = np.repeat(np.eye(5, dtype=np.float32) * 10, 30, axis=0) + rng.normal(size=(150, 5)).astype(
        np.float32
    )
    first, second = kmeans(blobs, k=5, seed=3, nredo=5), kmeans(blobs, k=5, seed=3, nredo=5)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert nmi(first.labels, np.repeat(np.arange(5), 30)) == pytest.approx(1.0)


def test_nmi_hand_worked():
    assert nmi([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(1.0)  # same partition, renamed
    assert nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)  # independent
    # H(A) = ln 2, H(B) = 1.5 ln 2 (entropy of (1/2, 1/4, 1/4)), I = ln 2 → NMI = 2 I / (H(A) + H(B)) = 0.8.
    assert nmi([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(0.8)


# ---------------------------------------------------------------- uniform sampling over pseudo-labels


def test_uniform_sampler_gives_each_cluster_the_same_expected_count():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1 + [3] * 30)
    sampler = UniformLabelSampler(labels, num_samples=130, seed=0)
    totals = np.zeros(4)
    for epoch in range(200):
        sampler.set_epoch(epoch)
        counts = np.bincount(labels[list(sampler)], minlength=4)
        assert counts.sum() == 130
        assert counts.max() - counts.min() <= 1  # 130 = 4 × 32 + 2
        totals += counts
    np.testing.assert_allclose(totals / 200, 32.5, atol=0.5)


def test_uniform_sampler_weights_are_inverse_cluster_size():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 4)
    weights = cluster_sample_weights(labels)
    per_cluster = np.bincount(labels, weights=weights)
    np.testing.assert_allclose(per_cluster, [1 / 3] * 3)
    np.testing.assert_allclose(weights[labels == 1], 1 / 6)


def test_uniform_sampler_shards_one_global_order_across_ranks():
    labels = np.arange(101) % 7
    ranks = [UniformLabelSampler(labels, seed=5, num_replicas=2, rank=r) for r in range(2)]
    for s in ranks:
        s.set_epoch(3)
    shards = [list(s) for s in ranks]
    assert len(shards[0]) == len(shards[1]) == 51
    interleaved = [i for pair in zip(*shards) for i in pair]
    assert interleaved[:101] == ranks[0].global_indices().tolist()


# ---------------------------------------------------------------- DeeperCluster hierarchy


def test_super_class_targets_hand_made():
    clusters = torch.tensor([0, 0, 0, 0, 1, 2, 2])
    rotations = torch.tensor([0, 1, 2, 3, 0, 1, 3])  # 0°, 90°, 180°, 270°
    assert super_class_targets(clusters, rotations).tolist() == [0, 1, 2, 3, 4, 9, 11]


def test_hierarchical_kmeans_finds_groups_then_blobs():
    rng = np.random.default_rng(0)
    # 2 far-apart groups, each made of 3 nearby blobs of 20 points.
    group_centres = np.array([[100.0, 0, 0, 0], [-100.0, 0, 0, 0]])
    blob_offsets = np.array([[0, 10.0, 0, 0], [0, 0, 10.0, 0], [0, 0, 0, 10.0]])
    points, group, blob = [], [], []
    for g in range(2):
        for b in range(3):
            points.append(group_centres[g] + blob_offsets[b] + rng.normal(size=(20, 4)))
            group += [g] * 20
            blob += [b] * 20
    x = np.concatenate(points).astype(np.float32)
    group, blob = np.array(group), np.array(blob)

    super_labels, sub_labels = hierarchical_kmeans(x, n_super=2, n_sub=3, seed=0)
    assert nmi(super_labels, group) == pytest.approx(1.0)
    for g in range(2):
        assert nmi(sub_labels[group == g], blob[group == g]) == pytest.approx(1.0)
    assert set(sub_labels.tolist()) == {0, 1, 2}


# ---------------------------------------------------------------- distributed: gather, solve once, broadcast


def test_gather_by_index_without_distributed_reorders_rows():
    local = torch.tensor([[2.0], [0.0], [1.0]])
    assert gather_by_index(local, torch.tensor([2, 0, 1]), total=3).flatten().tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(Exception, match="got no features"):
        gather_by_index(local, torch.tensor([0, 0, 1]), total=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_rank_labels(rank: int, world: int, port: int, x: np.ndarray, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        # A distributed sampler's shard: every world-th sample, padded with a duplicate.
        indices = torch.arange(rank, len(x) + 1, world) % len(x)
        full = gather_by_index(torch.from_numpy(x)[indices], indices, total=len(x))
        labels = solve_once(lambda: kmeans(pca_whiten(full.numpy(), 4), k=6, seed=0).labels)
        np.save(f"{out}/rank{rank}.npy", labels)
    finally:
        dist.destroy_process_group()


def test_two_processes_assign_the_same_labels_as_one(tmp_path):
    x = np.random.default_rng(0).normal(size=(301, 10)).astype(np.float32)
    single = kmeans(pca_whiten(x, 4), k=6, seed=0).labels
    torch.multiprocessing.spawn(_two_rank_labels, args=(2, _free_port(), x, str(tmp_path)), nprocs=2)
    for rank in range(2):
        np.testing.assert_array_equal(np.load(tmp_path / f"rank{rank}.npy"), single)
