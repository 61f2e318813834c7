"""DINO's weighted k-NN: a hand-worked example, its documented ties, and a plain-torch reference."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluators import knn_classify, search_neighbors
from zoo.errors import SslzooError


def dino_reference(train, train_labels, test, test_labels, k, T, num_classes):
    """facebookresearch/dino eval_knn.py ``knn_classifier``, transcribed, without its 100-chunk split.

    Only change: a stable sort, so classes with equal scores come in index order (DINO's ``sort`` leaves that
    order unspecified).
    """
    train = F.normalize(train, dim=1).t()
    test = F.normalize(test, dim=1)
    similarity = test @ train
    distances, indices = similarity.topk(k, largest=True, sorted=True)
    retrieved = torch.gather(train_labels.view(1, -1).expand(len(test), -1), 1, indices)
    one_hot = torch.zeros(len(test) * k, num_classes).scatter_(1, retrieved.view(-1, 1), 1)
    probs = (one_hot.view(len(test), -1, num_classes) * (distances / T).exp().view(len(test), -1, 1)).sum(1)
    predictions = probs.sort(dim=1, descending=True, stable=True).indices
    correct = predictions.eq(test_labels.view(-1, 1))
    top1 = correct[:, 0].sum().item() * 100.0 / len(test)
    top5 = correct[:, : min(5, k)].sum().item() * 100.0 / len(test)
    return top1, top5, predictions[:, 0]


# Hand-worked example. Unit vectors at angles; the test image is (1, 0), so each similarity is the x coordinate.
#   row  vector        label  similarity
#   0    (1, 0)        0       1.0
#   1    (0.8, 0.6)    1       0.8
#   2    (0.6, 0.8)    1       0.6
#   3    (0, 1)        2       0.0
#   4    (-0.6, -0.8)  3      -0.6
TRAIN = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0], [-0.6, -0.8]])
TRAIN_LABELS = torch.tensor([0, 1, 1, 2, 3])
TEST = torch.tensor([[1.0, 0.0]])


def test_hand_worked_votes_k1_and_k3():
    # k=1: only row 0 votes -> class 0.
    assert (
        knn_classify(TRAIN, TRAIN_LABELS, TEST, torch.tensor([0]), k=1, temperature=1.0)["predictions"][0]
        == 0
    )
    # k=3, T=1: class 0 gets e^1 = 2.718; class 1 gets e^0.8 + e^0.6 = 2.226 + 1.822 = 4.048 -> class 1 wins,
    # although the single nearest neighbour is class 0.
    assert math.exp(0.8) + math.exp(0.6) > math.exp(1.0)
    out = knn_classify(TRAIN, TRAIN_LABELS, TEST, torch.tensor([0]), k=3, temperature=1.0)
    assert out["predictions"].tolist() == [1]
    assert out["top1"] == 0.0 and out["top5"] == 100.0
    # T=0.07 sharpens the weights: e^(1/0.07) dwarfs e^(0.8/0.07) + e^(0.6/0.07) -> class 0 wins.
    assert knn_classify(TRAIN, TRAIN_LABELS, TEST, torch.tensor([0]), k=3)["predictions"].tolist() == [0]


def test_top5_counts_min_5_k_classes_and_unvoted_classes_in_index_order():
    # k=3: ranking is [1 (4.05), 0 (2.72), then the unvoted classes 2, 3 in index order]; top-5 looks at the first
    # min(5, k) = 3 -> label 2 counts (documented tie rule), label 3 does not.
    both = torch.cat([TEST, TEST])
    out = knn_classify(TRAIN, TRAIN_LABELS, both, torch.tensor([2, 3]), k=3, temperature=1.0)
    assert out["top1"] == 0.0
    assert out["top5"] == 50.0
    # k=1: top-5 is top-1.
    out = knn_classify(TRAIN, TRAIN_LABELS, TEST, torch.tensor([1]), k=1, temperature=1.0)
    assert out["top5"] == 0.0


def test_equal_votes_go_to_the_lower_class_index():
    # Two neighbours with exactly the same similarity 0.8 and different labels: equal scores, class 0 wins.
    train = torch.tensor([[0.8, 0.6], [0.8, -0.6], [-1.0, 0.0]])
    out = knn_classify(train, torch.tensor([1, 0, 2]), TEST, torch.tensor([0]), k=2)
    assert out["predictions"].tolist() == [0]


def test_features_are_l2_normalised_first():
    scaled = TRAIN * torch.tensor([[5.0], [0.1], [3.0], [2.0], [7.0]])
    a = knn_classify(TRAIN, TRAIN_LABELS, TEST, torch.tensor([1]), k=3, temperature=1.0)
    b = knn_classify(
        scaled.numpy(), TRAIN_LABELS.numpy(), 4 * TEST.numpy(), np.array([1]), k=3, temperature=1.0
    )
    assert a["top1"] == b["top1"] == 100.0


@pytest.mark.parametrize("n_test", [1, 7, 99, 250])
def test_matches_dino_reference_for_any_test_size(n_test):
    g = torch.Generator().manual_seed(n_test)
    centers = torch.randn(10, 32, generator=g)
    train_labels = torch.randint(0, 10, (1500,), generator=g)
    test_labels = torch.randint(0, 10, (n_test,), generator=g)
    train = centers[train_labels] + 1.5 * torch.randn(1500, 32, generator=g)
    test = centers[test_labels] + 1.5 * torch.randn(n_test, 32, generator=g)
    results = knn_classify(train, train_labels, test, test_labels, k=(1, 3, 20, 200), temperature=0.07)
    for k, out in results.items():
        top1, top5, predictions = dino_reference(train, train_labels, test, test_labels, k, 0.07, 10)
        assert torch.equal(torch.from_numpy(out["predictions"]), predictions), k
        assert out["top1"] == pytest.approx(top1) and out["top5"] == pytest.approx(top5), k


def test_faiss_and_torch_backends_agree():
    g = torch.Generator().manual_seed(5)
    train, test = torch.randn(800, 24, generator=g), torch.randn(150, 24, generator=g)
    yt, ye = torch.randint(0, 6, (800,), generator=g), torch.randint(0, 6, (150,), generator=g)
    a = knn_classify(train, yt, test, ye, k=(5, 20), backend="torch")
    b = knn_classify(train, yt, test, ye, k=(5, 20), backend="faiss", memory_mb=0.01)
    for k in (5, 20):
        assert np.array_equal(a[k]["predictions"], b[k]["predictions"]) and a[k]["top5"] == b[k]["top5"]
    with pytest.raises(SslzooError, match="unknown k-NN search backend"):
        knn_classify(train, yt, test, ye, backend="annoy")


def test_auto_backend_is_measured_once_per_machine_and_size_then_read_from_the_cache(tmp_path, monkeypatch):
    import evaluators.knn as knn

    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path))
    monkeypatch.setattr(knn, "PROBE_MIN_WORK", 0)  # measure even this small search
    g = torch.Generator().manual_seed(7)
    train, test = torch.randn(700, 16, generator=g), torch.randn(300, 16, generator=g)
    yt, ye = torch.randint(0, 5, (700,), generator=g), torch.randint(0, 5, (300,), generator=g)
    reference = dino_reference(train, yt, test, ye, 20, 0.07, 5)[2]

    first = knn_classify(
        train, yt, test, ye, k=20
    )  # the probe's queries plus the rest: still the exact answer
    assert torch.equal(torch.from_numpy(first["predictions"]), reference)
    cache = json.loads(knn.backend_cache_path().read_text())
    assert knn.backend_cache_path().parent == tmp_path and len(cache) == 1
    (entry,) = cache.values()
    assert entry["backend"] in ("torch", "faiss") and entry["torch_s"] > 0 and entry["faiss_s"] > 0
    assert entry["backend"] == min(("torch", "faiss"), key=lambda b: entry[f"{b}_s"])

    def no_second_probe(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(knn, "_measure_and_search", no_second_probe)
    second = knn_classify(train, yt, test, ye, k=20)
    assert np.array_equal(second["predictions"], first["predictions"])
    # Another size bucket is a new measurement.
    with pytest.raises(AssertionError, match="measured again"):
        knn_classify(train, yt, torch.cat([test] * 4), torch.cat([ye] * 4), k=20)


def test_chunking_to_a_tiny_memory_budget_changes_nothing():
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(400, 16, generator=g), torch.randn(123, 16, generator=g)
    yt, ye = torch.randint(0, 5, (400,), generator=g), torch.randint(0, 5, (123,), generator=g)
    whole = knn_classify(train, yt, test, ye, k=10)
    chunked = knn_classify(train, yt, test, ye, k=10, memory_mb=0.001)  # one test image per chunk
    assert np.array_equal(whole["predictions"], chunked["predictions"])
    assert whole["top1"] == chunked["top1"] and whole["top5"] == chunked["top5"]


def test_search_neighbors_sorted_most_similar_first():
    db = F.normalize(torch.randn(300, 8, generator=torch.Generator().manual_seed(1)), dim=1)
    sims, idx = search_neighbors(db, db[:5], k=4)
    assert idx[:, 0].tolist() == [0, 1, 2, 3, 4]  # each point is its own nearest neighbour
    assert torch.all(sims[:, :-1] >= sims[:, 1:])
    assert torch.allclose(sims, torch.gather(db[:5] @ db.T, 1, idx), atol=1e-6)


def test_number_of_classes_comes_from_the_data():
    # Labels up to 1999: DINO's hard-wired 1000 classes would fail here.
    train = torch.eye(4)
    out = knn_classify(train, torch.tensor([3, 1999, 5, 7]), train[:2], torch.tensor([3, 1999]), k=1)
    assert out["top1"] == 100.0 and out["predictions"].tolist() == [3, 1999]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 6}, "between 1 and the number of train images"),
        ({"test_feats": torch.zeros(0, 2), "test_labels": torch.zeros(0)}, "at least one test image"),
        ({"test_feats": torch.ones(1, 3)}, "D=2 but test features D=3"),
        ({"train_feats": torch.full((5, 2), float("nan"))}, "NaN"),
        ({"train_labels": torch.tensor([0, 1])}, "2 labels for 5 feature rows"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs, message):
    args = {
        "train_feats": TRAIN,
        "train_labels": TRAIN_LABELS,
        "test_feats": TEST,
        "test_labels": torch.tensor([0]),
        "k": 3,
        **kwargs,
    }
    with pytest.raises(SslzooError, match=message):
        knn_classify(**args)


def test_search_with_queries_of_another_dimension_is_one_clear_error():
    with pytest.raises(SslzooError, match="database features have D=3 but query features D=4"):
        search_neighbors(torch.eye(3), torch.ones(1, 4), k=1)


def test_the_probe_times_searches_not_the_building_of_an_index(tmp_path, monkeypatch):
    """faiss copies the database into its index once per call: that cost must not decide the backend."""
    import time

    import evaluators.knn as knn

    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path))
    monkeypatch.setattr(knn, "PROBE_MIN_WORK", 0)
    build = knn._searcher

    def slow_build(db, k, memory_mb, device, backend):
        time.sleep(0.5)  # a slow index build, for either backend
        return build(db, k, memory_mb, device, backend)

    monkeypatch.setattr(knn, "_searcher", slow_build)
    g = torch.Generator().manual_seed(3)
    train, test = torch.randn(700, 16, generator=g), torch.randn(300, 16, generator=g)
    knn_classify(train, torch.randint(0, 5, (700,), generator=g), test, torch.randint(0, 5, (300,)), k=20)
    (entry,) = json.loads(knn.backend_cache_path().read_text()).values()
    assert entry["torch_s"] < 0.4 and entry["faiss_s"] < 0.4


def test_faiss_scores_small_query_blocks_as_large_ones_and_leaves_its_setting():
    import faiss

    g = torch.Generator().manual_seed(4)
    db, q = torch.randn(3000, 384, generator=g), torch.randn(40, 384, generator=g)
    before = faiss.cvar.distance_compute_blas_threshold
    small = search_neighbors(db, q, k=5, backend="faiss")
    reference = search_neighbors(db, q, k=5, backend="torch")
    assert torch.equal(small[1], reference[1])
    assert faiss.cvar.distance_compute_blas_threshold == before
