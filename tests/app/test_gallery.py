"""The neighbours tab's collapse warning: when every neighbour sits at nearly one cosine, the encoder is suspect."""

from __future__ import annotations

import numpy as np

from app.gallery import COLLAPSE_SPREAD, NeighbourResult, looks_collapsed, neighbour_spread


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_neighbours_within_the_spread_look_collapsed():
    # dino-vit-fmnist's 10 nearest to a Fashion-MNIST image: 0.9981–0.9994.
    assert looks_collapsed([0.9997, 0.9994, 0.9990, 0.9988, 0.9986])
    assert looks_collapsed(np.full(10, 0.42))  # identical similarities, whatever their value


def test_neighbours_spread_over_more_than_the_threshold_do_not():
    assert not looks_collapsed([0.97, 0.95, 0.93, 0.91])
    assert not looks_collapsed(
        [0.999, 0.998, 0.999 - COLLAPSE_SPREAD - 1e-4]
    )  # just over: the spread decides


def test_one_or_two_neighbours_are_never_called_collapsed():
    assert not looks_collapsed([0.9991])
    assert not looks_collapsed([0.9991, 0.9990])


def test_a_gallery_with_wide_neighbourhoods_clears_a_tight_query():
    # Near-duplicates under a trained encoder: byol-fmnist's gallery images spread 0.013 over their 10 nearest.
    tight = [0.9991, 0.9990, 0.9989]
    assert not looks_collapsed(tight, gallery_spread=0.013)
    assert looks_collapsed(tight, gallery_spread=0.001)
    assert looks_collapsed(tight, gallery_spread=float("nan"))  # not measured: the query's rule alone


def test_the_gallery_spread_separates_collapsed_from_spread_out_features():
    rng = np.random.default_rng(0)
    spread_out = _unit(rng.normal(size=(400, 16)))
    collapsed = _unit(1.0 + 1e-3 * rng.normal(size=(400, 16)))  # every image at almost one vector
    assert neighbour_spread(spread_out) > 10 * COLLAPSE_SPREAD
    assert neighbour_spread(collapsed) < COLLAPSE_SPREAD / 100


def test_the_result_says_collapsed_from_its_rows_and_the_gallery():
    def result(sims: list[float], gallery_spread: float) -> NeighbourResult:
        rows = [
            {"rank": r, "index": r, "label": 0, "class": "0", "similarity": s} for r, s in enumerate(sims, 1)
        ]
        return NeighbourResult(
            rows, "0", {"0": 1.0}, None, "m", "g", len(rows), gallery_spread=gallery_spread
        )

    assert result([0.9997, 0.9993, 0.9986], 0.001).collapsed
    assert not result([0.9997, 0.9993, 0.9986], 0.02).collapsed
    assert not result([0.95, 0.90, 0.85], 0.001).collapsed
