"""Training curves: ``curves.png`` of a run, drawn from its ``metrics.jsonl`` rows.

One panel per series (loss, learning rate, the k-NN monitor, the clustering methods' NMI), all against the epoch.
Choices that keep the picture honest:

* sparse series (a few points: the k-NN monitor, one NMI per round, a 1-epoch run) get markers, so a single point
  is visible and not an invisible zero-length line;
* a noisy loss is drawn faintly, with an exponential moving average over it (TensorBoard's smoothing, debiased);
* scores are in percent and their axis spans at least :data:`MIN_SPAN_POINTS` points, so 82.0 → 82.2 stays flat
  instead of being zoomed into a peak;
* the k-NN monitor says what it is: a quick estimate on a subset of the train split, not ``sslzoo eval`` (its
  size from a ``knn_bank`` row value when the engine logs one, else ``knn_max_train`` of ``train_config.json``).

>>> rows = [{"step": 10, "epoch": 1.0, "loss": 4.2, "lr": 1e-3, "knn_acc": 0.82}]
>>> plot_curves(rows, "/tmp/sslzoo-curves-doctest.png", "simclr on digits")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MIN_SPAN_POINTS = 5.0  # smallest y-range (in percentage points) of a score panel
SPARSE = 30  # series with at most this many points get markers
SMOOTH_FROM = 20  # loss series with at least this many points get a smoothed line
TRAIN_CONFIG = "train_config.json"


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with TensorBoard's debiasing (the first values are not pulled towards 0).

    >>> [round(v, 3) for v in smooth([1.0, 0.0, 0.0], 0.5)]
    [1.0, 0.333, 0.143]
    """
    out, ema = [], 0.0
    for i, v in enumerate(values, 1):
        ema = weight * ema + (1 - weight) * v
        out.append(ema / (1 - weight**i))
    return out


def _knn_subset(run_dir: Path) -> int | None:
    """The k-NN monitor's train-bank size from the run's saved config, if it is there."""
    try:
        config = json.loads((run_dir / TRAIN_CONFIG).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    train = config.get("train", config) if isinstance(config, dict) else {}
    value = train.get("knn_max_train") if isinstance(train, dict) else None
    return int(value) if isinstance(value, int | float) else None


def _panels(knn_subset: int | None, knn_bank: int | None = None) -> dict[str, tuple[str, float]]:
    """Row key → (panel title, scale to the shown unit)."""
    # The exact size when the engine logged it, else the configured maximum.
    subset = f"{knn_bank:,}" if knn_bank else (f"up to {knn_subset:,}" if knn_subset else "a subset of the")
    return {
        "loss": ("training loss", 1.0),
        "lr": ("learning rate", 1.0),
        "knn_acc": (
            f"k-NN monitor: top-1 % on test\n(bank: {subset} train images; not `sslzoo eval`)",
            100.0,
        ),
        "nmi_true": ("pseudo-labels vs true labels: NMI %", 100.0),
    }


def plot_curves(
    rows: Sequence[dict[str, Any]], path: str | Path, title: str, *, knn_subset: int | None = None
) -> Path | None:
    """Draw ``rows`` (``metrics.jsonl`` dicts with ``step``, ``epoch`` and the series) to the PNG ``path``.

    Args:
        rows: The run's metric rows, in order.
        path: The PNG to write (atomically).
        title: The figure's title, e.g. ``"simclr on digits (sslzoo_cnn4)"``.
        knn_subset: Train images in the k-NN monitor's bank (default: read from ``train_config.json`` beside
            ``path``).

    Returns:
        ``path``, or None when no row holds a series to draw.
    """
    from zoo.atomic import save_figure_atomic

    path = Path(path)
    fig = curves_figure(
        rows, title, knn_subset=knn_subset if knn_subset is not None else _knn_subset(path.parent)
    )
    return None if fig is None else save_figure_atomic(fig, path)


def curves_figure(rows: Sequence[dict[str, Any]], title: str, *, knn_subset: int | None = None):
    """The matplotlib figure :func:`plot_curves` saves (None when no row holds a series to draw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    banks = [r["knn_bank"] for r in rows if isinstance(r.get("knn_bank"), int | float)]
    panels = _panels(knn_subset, int(banks[-1]) if banks else None)
    keys = [k for k in panels if any(k in r for r in rows)]
    if not keys:
        return None
    by_epoch = all("epoch" in r for r in rows)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        name, scale = panels[key]
        pts = [(r["epoch"] if by_epoch else r["step"], r[key] * scale) for r in rows if key in r]
        x, y = [p[0] for p in pts], [p[1] for p in pts]
        marker = "o" if len(pts) <= SPARSE else None
        if key == "loss" and len(pts) >= SMOOTH_FROM:
            ax.plot(x, y, color="C0", alpha=0.3, lw=0.8, label="logged")
            weight = min(0.9, max(0.6, 1 - 30 / len(pts)))  # memory ~1/30 of the run: smooth, little lag
            ax.plot(x, smooth(y, weight), color="C0", lw=1.8, label="smoothed (EMA)")
            ax.legend(fontsize=7, frameon=False)
        else:
            ax.plot(x, y, marker=marker, ms=4, color="C0")
        if scale == 100.0:  # a score: honest range, at least MIN_SPAN_POINTS wide, inside [0, 100]
            lo, hi = min(y), max(y)
            pad = max(0.0, MIN_SPAN_POINTS - (hi - lo)) / 2 + 0.05 * (hi - lo)
            lo, hi = max(0.0, lo - pad), min(100.0, hi + pad)
            if hi - lo < MIN_SPAN_POINTS:  # pinned at 0 or 100: widen the other way
                lo, hi = (lo, lo + MIN_SPAN_POINTS) if lo == 0.0 else (hi - MIN_SPAN_POINTS, hi)
            ax.set_ylim(lo, hi)
        elif key == "lr":
            ax.set_ylim(0, max(y) * 1.1 or 1.0)
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax.set_xlim(0, max(x) * 1.04 if max(x) > 0 else 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.set_xlabel("epoch" if by_epoch else "step")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
