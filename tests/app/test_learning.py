"""A quick row's margin over random init and its paired noise, on hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.learning import paired_difference, verdict


def test_paired_difference_counts_the_discordant_images():
    # 10 images: both right on 6, only a on 3, only b on 1 → Δ = (3 − 1)/10, se = √(4 − 4/10)/10.
    a = np.array([1] * 6 + [1, 1, 1] + [0], bool)
    b = np.array([1] * 6 + [0, 0, 0] + [1], bool)
    diff, se = paired_difference(a, b)
    assert diff == pytest.approx(20.0)
    assert se == pytest.approx(100 * math.sqrt(4 - 0.4) / 10)
    assert paired_difference(a, a) == (0.0, 0.0)  # identical predictions: no difference, no noise


def test_verdict_calls_learning_only_outside_two_standard_errors():
    n = 10_000
    rng = np.random.default_rng(0)
    random = rng.random(n) < 0.8
    better = random.copy()
    better[np.flatnonzero(~random)[:300]] = True  # 300 more right, none lost: +3 points, se ≈ 0.17
    noisy = random.copy()
    noisy[np.flatnonzero(~random)[:160]] = True  # 160 gained, 150 lost: +0.1 points, se ≈ 0.18
    noisy[np.flatnonzero(random)[:150]] = False
    result = verdict({"knn": better, "linear": noisy}, {"knn": random, "linear": random})
    assert result["learned"] == {"knn": True, "linear": False}
    assert result["knn"][0] == pytest.approx(3.0) and result["linear"][0] == pytest.approx(0.1)
    assert result["text"].startswith("above random init except on linear at this budget (k-NN +3.0 ± 0.2")
    none = verdict({"knn": random, "linear": random}, {"knn": random, "linear": random})
    assert none["text"].startswith("NOT above random init at this budget")
