"""Property-based checks (hypothesis) of the evaluators' input handling.

Whatever arrays and parameters arrive, a public evaluator returns a sane result or raises one-line
:class:`SslzooError` — never another exception, never an allocation sized by a label's value. And labels are names,
not sizes: renaming the classes by any injective map of integers (10⁹, negative, gaps) changes no score and maps
the predictions the same way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluators import cluster_metrics, clustering_scores, knn_classify, linear_probe
from zoo.errors import SslzooError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

floats = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, width=32), st.sampled_from([math.nan, math.inf, -math.inf, 0.0])
)


@st.composite
def features(draw, rows=None):
    n = rows if rows is not None else draw(st.integers(0, 12))
    d = draw(st.integers(0, 4))
    kind = draw(st.sampled_from(["float", "int", "bool", "str", "3d"]))
    if kind == "str":
        return np.array([["x"] * d] * n)
    if kind == "3d":
        return np.zeros((n, d, 2), dtype=np.float32)
    values = draw(st.lists(floats, min_size=n * d, max_size=n * d))
    arr = np.array(values, dtype=np.float64).reshape(n, d)
    return np.nan_to_num(arr, posinf=1e6, neginf=-1e6).astype(kind) if kind != "float" else arr


@st.composite
def labels(draw, n):
    kind = draw(st.sampled_from(["small", "huge", "negative", "float", "nan", "str", "short"]))
    if kind == "str":
        return np.array(draw(st.lists(st.sampled_from(["cat", "dog"]), min_size=n, max_size=n)))
    if kind == "short":
        return np.zeros(max(0, n - 1), dtype=np.int64)
    if kind == "nan":
        out = np.zeros(n)
        if n:
            out[draw(st.integers(0, n - 1))] = math.nan
        return out
    values = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    arr = np.array(values, dtype=np.int64)
    return {"small": arr, "huge": arr * 10**9, "negative": -arr - 5, "float": arr + 0.5 * (arr % 2)}[kind]


def _one_line(call):
    """Run ``call``; return its result, or None after a one-line SslzooError (any other exception fails)."""
    try:
        return call()
    except SslzooError as exc:
        assert "\n" not in str(exc) and str(exc)
        return None


@SETTINGS
@given(data=st.data())
def test_knn_any_input_gives_a_sane_result_or_one_line(data):
    train = data.draw(features())
    test = data.draw(features())
    y_train = data.draw(labels(len(train)))
    y_test = data.draw(labels(len(test)))
    k = data.draw(st.one_of(st.integers(-2, 15), st.sampled_from([2.5, True])))
    temperature = data.draw(st.one_of(st.floats(allow_nan=True), st.sampled_from([0.07, 0, -1])))
    out = _one_line(lambda: knn_classify(train, y_train, test, y_test, k=k, temperature=temperature))
    if out is not None:
        assert 0 <= out["top1"] <= out["top5"] <= 100
        assert set(out["predictions"].tolist()) <= set(np.asarray(y_train).tolist())


@SETTINGS
@given(data=st.data())
def test_clustering_any_input_gives_a_sane_result_or_one_line(data):
    feats = data.draw(features())
    y = data.draw(labels(len(feats)))
    n_clusters = data.draw(st.one_of(st.none(), st.integers(-1, 6)))
    out = _one_line(lambda: cluster_metrics(feats, y, n_clusters=n_clusters, seeds=1, niter=3))
    if out is not None:
        assert 0 <= out["nmi"] <= 100 and 0 <= out["acc"] <= 100  # percent
    assignments = data.draw(labels(len(feats)))
    scores = _one_line(lambda: clustering_scores(assignments, y))
    if scores is not None:
        assert 0 <= scores["acc"] <= 100


@st.composite
def separable(draw):
    """Well-defined inputs: (N, 3) finite features, labels 0..C-1 with every class in train."""
    n = draw(st.integers(6, 24))
    c = draw(st.integers(2, 3))
    y = np.arange(n) % c
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.normal(size=(n, 3)).astype(np.float32) + 3 * np.eye(3, dtype=np.float32)[y]
    return x, y


@st.composite
def renaming(draw, c):
    """An injective map of class ids 0..C-1 to arbitrary int64 ids (huge, negative, with gaps)."""
    ids = draw(st.lists(st.integers(-(2**62), 2**62), min_size=c, max_size=c, unique=True))
    return np.array(ids, dtype=np.int64)


@SETTINGS
@given(data=st.data())
def test_knn_and_clusters_do_not_depend_on_the_names_of_the_classes(data):
    x, y = data.draw(separable())
    names = data.draw(renaming(int(y.max()) + 1))
    k = data.draw(st.integers(1, 5))
    plain = knn_classify(x, y, x, y, k=k)
    renamed = knn_classify(x, names[y], x, names[y], k=k)
    assert renamed["top1"] == plain["top1"] and renamed["top5"] == plain["top5"]
    assert np.array_equal(renamed["predictions"], names[plain["predictions"]])
    assert clustering_scores(names[y], names[y]) == pytest.approx(clustering_scores(y, y), abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_the_linear_probe_does_not_depend_on_the_names_of_the_classes(data):
    x, y = data.draw(separable())
    names = data.draw(renaming(int(y.max()) + 1))
    plain = linear_probe(x, y, x, y, weight_decays=(1e-3,), max_iter=30)
    renamed = linear_probe(x, names[y], x, names[y], weight_decays=(1e-3,), max_iter=30)
    assert renamed["top1"] == pytest.approx(plain["top1"])
    assert np.array_equal(renamed["predictions"], names[plain["predictions"]])
