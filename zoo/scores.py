"""One scale for every score: percent, stored and shown, with :data:`DECIMALS` decimals when shown.

Every score sslzoo computes, records and shows is in percent: k-NN and linear top-1/top-5, and the clustering
scores (NMI, AMI, ARI, Hungarian accuracy and their spreads over seeds). Tables, the README, model cards and their
model-index, chart labels and ``sslzoo models`` show them through :func:`points` and :func:`format_points`, so one
number reads the same everywhere (54.62, never 0.5462 or 54.6).

Records carry a ``schema`` number (:data:`RECORD_SCHEMA`). The rule for older ones, applied on every read
(:func:`metrics_in_percent`):

* schema 2 (current): every metric in percent;
* schema 1 (no ``schema`` key; records before 2026-12): the clustering scores (:data:`CLUSTERING_METRICS`) were
  fractions in [0, 1] and are multiplied by 100; accuracies were already in percent.

>>> metrics_in_percent({"top1": 87.85, "nmi": 0.546168}, schema=1)
{'top1': 87.85, 'nmi': 54.6168}
>>> points(54.6168), format_points(points(87.849998)), format_points(None)
(54.62, '87.85', '–')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The clustering scores (and their spreads over seeds): fractions in schema-1 records, percent since.
CLUSTERING_METRICS = frozenset({"nmi", "ami", "ari", "acc", "nmi_std", "ami_std", "ari_std", "acc_std"})
RECORD_SCHEMA = 2  # the records' version: 2 = every metric in percent
DECIMALS = 2
STORED_DECIMALS = 4  # a record's resolution: 0.0001 points, and no float32 noise (87.849998 → 87.85)


def record_schema(record: Mapping[str, Any]) -> int:
    """A record's schema: its ``schema`` key, else 1 (records from before the key existed)."""
    schema = record.get("schema", 1)
    return schema if isinstance(schema, int) and not isinstance(schema, bool) else 1


def metrics_in_percent(metrics: Mapping[str, Any], schema: int) -> dict[str, Any]:
    """A record's metrics on today's scale (see the module's rule): schema-1 clustering fractions × 100.

    Nested per-setting tables (``{"k=20": {"top1": 91.2}}``) are converted the same way; non-numbers pass through.
    """

    def convert(name: str, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: convert(str(k), v) for k, v in value.items()}
        if schema < 2 and name in CLUSTERING_METRICS and isinstance(value, int | float):
            return round(float(value) * 100.0, STORED_DECIMALS)
        return value

    return {name: convert(name, value) for name, value in metrics.items()}


def points(value: float) -> float:
    """A score (already in percent) as shown: rounded to :data:`DECIMALS` decimals (float32 noise gone)."""
    return round(float(value), DECIMALS)


def format_points(value: float | None) -> str:
    """A value in points as table text; ``–`` when missing."""
    return "–" if value is None else f"{value:.{DECIMALS}f}"
