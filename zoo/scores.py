"""One scale for every score a reader sees: percent, with :data:`DECIMALS` decimals.

Evaluation records store accuracies in percent and the clustering scores (NMI, AMI, ARI, Hungarian accuracy) as
fractions in [0, 1], as the libraries return them. Everything shown — leaderboard tables, the README table, model
cards and their model-index, chart labels, ``sslzoo models`` — goes through :func:`points` and
:func:`format_points`, so one number reads the same everywhere (54.62, never 0.5462 or 54.6).

>>> points("nmi", 0.546168), points("top1", 87.849998)
(54.62, 87.85)
>>> format_points(points("nmi", 0.709099)), format_points(None)
('70.91', '–')
"""

from __future__ import annotations

# Scores stored as fractions in [0, 1] (and their spreads over seeds); every other metric is a percentage.
FRACTION_METRICS = frozenset({"nmi", "ami", "ari", "acc", "nmi_std", "ami_std", "ari_std", "acc_std"})
DECIMALS = 2


def metric_in_points(name: str, value: float) -> float:
    """A metric on the percentage-point scale (fractions × 100), unrounded, so one tolerance fits all."""
    return value * 100.0 if name in FRACTION_METRICS else value


def points(name: str, value: float) -> float:
    """The metric ``name`` as shown: in percent, rounded to :data:`DECIMALS` decimals (float32 noise gone)."""
    return round(metric_in_points(name, float(value)), DECIMALS)


def format_points(value: float | None) -> str:
    """A value already in points as table text; ``–`` when missing."""
    return "–" if value is None else f"{value:.{DECIMALS}f}"
