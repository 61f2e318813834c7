"""Training curves read right: markers where points are few, an epoch axis, honest score ranges, a smoothed
loss, readable titles and a k-NN monitor that says it is measured on a subset."""

from __future__ import annotations

import itertools
import json

import matplotlib.pyplot as plt
import pytest

from trainers.curves import MIN_SPAN_POINTS, curves_figure, plot_curves, smooth


def _panel(fig, word: str):
    return next(ax for ax in fig.axes if word in ax.get_title())


def test_smooth_is_the_debiased_exponential_moving_average():
    values, weight = [4.0, 2.0, 3.0], 0.5
    ema, expected = 0.0, []
    for i, v in enumerate(values, 1):  # TensorBoard: ema_i = w·ema_{i-1} + (1-w)·v_i, divided by 1 - w^i
        ema = weight * ema + (1 - weight) * v
        expected.append(ema / (1 - weight**i))
    assert smooth(values, weight) == pytest.approx(expected)
    assert smooth([7.0] * 5, 0.9) == pytest.approx([7.0] * 5)  # a constant stays itself from the first point


def test_one_epoch_run_draws_visible_points_on_an_epoch_axis():
    rows = [
        {"step": 10, "epoch": 0.83, "loss": 4.1, "lr": 1e-3},
        {"step": 12, "epoch": 1.0, "loss": 3.9, "lr": 1e-3},
        {"step": 12, "epoch": 1.0, "knn_acc": 0.8213},
    ]
    fig = curves_figure(rows, "simclr on digits", knn_subset=1437)
    for ax in fig.axes:
        (line,) = ax.get_lines()
        assert line.get_marker() == "o", ax.get_title()  # a single point is a dot, not an empty line
        assert ax.get_xlabel() == "epoch" and ax.get_xlim()[0] == 0
    knn = _panel(fig, "k-NN")
    assert "1,437 train images" in knn.get_title() and "not `sslzoo eval`" in knn.get_title()
    assert list(knn.get_lines()[0].get_ydata()) == [pytest.approx(82.13)]  # in percent
    plt.close(fig)


def test_a_flat_score_is_not_zoomed_into_a_peak():
    rows = [{"step": s, "epoch": float(s), "knn_acc": a} for s, a in ((1, 0.820), (2, 0.822), (3, 0.821))]
    fig = curves_figure(rows, "t")
    lo, hi = _panel(fig, "k-NN").get_ylim()
    assert hi - lo >= MIN_SPAN_POINTS and lo <= 82.0 and hi >= 82.2
    plt.close(fig)


def test_a_long_noisy_loss_gets_a_smoothed_line_and_no_markers(tmp_path):
    rows = [
        {"step": s, "epoch": s / 10, "loss": 5.0 - s / 100 + (0.3 if s % 2 else -0.3)} for s in range(1, 201)
    ]
    (tmp_path / "train_config.json").write_text(json.dumps({"train": {"knn_max_train": 500}}))
    rows.append({"step": 200, "epoch": 20.0, "knn_acc": 0.5})
    path = plot_curves(rows, tmp_path / "curves.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = curves_figure(rows, "t")
    raw, smoothed = _panel(fig, "loss").get_lines()
    assert raw.get_marker() in ("None", None, "") and smoothed.get_label() == "smoothed (EMA)"

    # the smoothed line removes the ±0.3 zig-zag: its step-to-step changes are far smaller than the raw ones
    def jumps(ys) -> float:
        return max(abs(a - b) for a, b in itertools.pairwise(list(ys)[50:]))

    assert jumps(smoothed.get_ydata()) < jumps(raw.get_ydata()) / 3
    plt.close(fig)
