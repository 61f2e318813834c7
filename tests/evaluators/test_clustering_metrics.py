"""Clustering scores against hand-worked contingency tables and scikit-learn; k-means on separable blobs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn import metrics

from evaluators import cluster_metrics, clustering_scores, hungarian_accuracy
from evaluators.clustering import contingency_table, kmeans_batched
from zoo.errors import SslzooError

# 9 points, 3 classes, 3 clusters. Contingency table (rows = clusters, columns = classes):
#            class 0  class 1  class 2
# cluster 0     1        3        0
# cluster 1     2        0        0
# cluster 2     0        0        3
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
ASSIGN = np.array([1, 1, 0, 0, 0, 0, 2, 2, 2])
TABLE = np.array([[1, 3, 0], [2, 0, 0], [0, 0, 3]])


def test_contingency_table():
    assert np.array_equal(contingency_table(ASSIGN, LABELS), TABLE)


def test_hungarian_accuracy_hand_worked():
    # Best one-to-one matching: cluster 0 -> class 1 (3), cluster 1 -> class 0 (2), cluster 2 -> class 2 (3).
    assert hungarian_accuracy(ASSIGN, LABELS) == pytest.approx(100 * 8 / 9)  # in percent, like k-NN


def _entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return -(p * np.log(p)).sum()


def test_nmi_and_ari_from_the_table_by_hand():
    n = TABLE.sum()
    p = TABLE / n
    pa, py = p.sum(1), p.sum(0)
    mi = sum(p[i, j] * math.log(p[i, j] / (pa[i] * py[j])) for i in range(3) for j in range(3) if p[i, j] > 0)
    nmi = mi / ((_entropy(TABLE.sum(1)) + _entropy(TABLE.sum(0))) / 2)  # arithmetic-mean normalisation

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    index, a, b, total = pairs(TABLE), pairs(TABLE.sum(1)), pairs(TABLE.sum(0)), n * (n - 1) / 2
    expected = a * b / total
    ari = (index - expected) / ((a + b) / 2 - expected)  # Hubert & Arabie (1985)
    scores = clustering_scores(ASSIGN, LABELS)
    assert scores["nmi"] == pytest.approx(100 * nmi)  # every score in percent
    assert scores["ari"] == pytest.approx(100 * ari)
    assert 0 < scores["ami"] < scores["nmi"]  # chance correction lowers it


def test_matches_scikit_learn_on_random_partitions():
    rng = np.random.default_rng(0)
    labels, assign = rng.integers(0, 7, 500), rng.integers(0, 9, 500)
    scores = clustering_scores(assign, labels)
    assert scores["nmi"] == pytest.approx(100 * metrics.normalized_mutual_info_score(labels, assign))
    assert scores["ami"] == pytest.approx(100 * metrics.adjusted_mutual_info_score(labels, assign))
    assert scores["ari"] == pytest.approx(100 * metrics.adjusted_rand_score(labels, assign))


def test_hungarian_accuracy_against_brute_force():
    rng = np.random.default_rng(1)
    labels, assign = rng.integers(0, 4, 60), rng.integers(0, 4, 60)
    best = max(np.mean(np.array(perm)[assign] == labels) for perm in itertools.permutations(range(4)))
    assert hungarian_accuracy(assign, labels) == pytest.approx(100 * best)


def test_a_permuted_labelling_scores_perfectly():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, 300)
    assign = rng.permutation(10)[labels] + 100  # other names, same partition
    assert clustering_scores(assign, labels) == pytest.approx(
        {"nmi": 100.0, "ami": 100.0, "ari": 100.0, "acc": 100.0}
    )


def test_extra_clusters_count_as_errors():
    # 4 clusters for 2 classes: only two clusters can be matched, the other two points are errors.
    assert hungarian_accuracy(np.array([0, 0, 1, 2, 2, 3]), np.array([0, 0, 0, 1, 1, 1])) == pytest.approx(
        100 * 4 / 6
    )


def test_cluster_metrics_on_separable_blobs():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 50)
    directions = np.eye(8)[:4] * 10
    feats = directions[labels] + rng.normal(size=(200, 8))
    out = cluster_metrics(feats, labels, seeds=2)
    assert out["n_clusters"] == 4  # default: the number of classes
    assert out["acc"] == 100.0 and out["nmi"] == pytest.approx(100.0) and out["acc_std"] == 0.0


def test_cluster_metrics_on_a_hand_worked_partition_is_in_percent():
    # Six points on three far-apart spots, labelled so that k-means (3 clusters) must put points 0-1, 2-3 and 4-5
    # together while the labels say (0, 0), (0, 1), (1, 1): the best matching gets 5 of 6 right.
    spots = np.repeat(np.eye(3) * 10, 2, axis=0) + 1e-3 * np.arange(6)[:, None]
    labels = np.array([0, 0, 0, 1, 1, 1])
    out = cluster_metrics(spots, labels, n_clusters=3, seeds=2)
    # Contingency (clusters × classes): [[2, 0], [1, 1], [0, 2]] → Hungarian matches 2 + 2 = 4 of 6 (3 clusters
    # for 2 classes: the middle cluster's points are errors).
    assert out["acc"] == pytest.approx(100 * 4 / 6)
    expected_nmi = 100 * metrics.normalized_mutual_info_score(labels, [0, 0, 1, 1, 2, 2])
    assert out["nmi"] == pytest.approx(expected_nmi) and 1 < out["nmi"] < 100  # percent, not a fraction
    assert out["acc_std"] == 0.0 and out["n_clusters"] == 3


def test_cluster_metrics_averages_over_seeds():
    rng = np.random.default_rng(4)
    feats, labels = rng.normal(size=(300, 6)), rng.integers(0, 5, 300)
    avg = cluster_metrics(feats, labels, n_clusters=5, seeds=[0, 1, 2])
    singles = [cluster_metrics(feats, labels, n_clusters=5, seeds=[s]) for s in (0, 1, 2)]
    for name in ("nmi", "ami", "ari", "acc"):
        assert avg[name] == pytest.approx(np.mean([s[name] for s in singles]))
        assert avg[f"{name}_std"] == pytest.approx(np.std([s[name] for s in singles]))


def _mixture(n, d, classes, seed, noise):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    feats = rng.normal(size=(classes, d))[labels] + noise * rng.normal(size=(n, d))
    return feats / np.linalg.norm(feats, axis=1, keepdims=True), labels


def test_kmeans_reaches_scikit_learns_nmi_and_a_lloyd_fixed_point():
    from sklearn.cluster import KMeans

    # Overlapping classes (NMI well below 1), and a sample of 150 points per cluster for the coarse stage.
    feats, labels = _mixture(3000, 32, 5, seed=5, noise=2.0)
    runs = kmeans_batched(torch.from_numpy(feats).float(), 5, [0, 1, 2], sample_per_cluster=150)
    ours = [metrics.normalized_mutual_info_score(labels, a) for a in runs]
    theirs = [
        metrics.normalized_mutual_info_score(labels, KMeans(5, n_init=1, random_state=s).fit_predict(feats))
        for s in range(3)
    ]
    assert 0.5 < np.mean(theirs) < 0.95
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.01
    for assignment in runs:  # converged: (nearly) every point is nearest to the centroid of its own cluster
        centroids = np.stack([feats[assignment == c].mean(axis=0) for c in range(5)])
        nearest = ((feats[:, None] - centroids[None]) ** 2).sum(axis=2).argmin(axis=1)
        assert (nearest != assignment).mean() < 0.005


def test_bad_input():
    with pytest.raises(SslzooError, match="3 cluster assignments for 2 labels"):
        clustering_scores([0, 1, 2], [0, 1])
    with pytest.raises(SslzooError, match="n_clusters=50"):
        cluster_metrics(np.random.rand(10, 3), np.zeros(10), n_clusters=50)
