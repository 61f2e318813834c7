"""The leaderboard: records rendered as a markdown table and a PNG chart, and re-run to check they reproduce.

One table per dataset, one row per model, the columns the protocols' headline numbers::

    | model | k-NN top-1 | k-NN top-5 | linear top-1 | NMI | AMI | ARI | cluster acc | rows |

Given each record's source (:func:`evaluators.records.read_sourced_records`: the repository's committed records and
the user's own), a ``source`` column follows the model and a model recorded in both has a row for each.

:func:`reproduce` re-runs records with the parameters they store and reports each metric's difference; a row
fails when any metric moves by more than the tolerance (in percentage points, the scale of every metric) or the
model's weights are no longer the ones recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluators.records import Record
from zoo.scores import format_points, points

# (protocol, metric, column header); every value is shown in percent (zoo.scores).
COLUMNS = (
    ("knn", "top1", "k-NN top-1"),
    ("knn", "top5", "k-NN top-5"),
    ("linear", "top1", "linear top-1"),
    ("clustering", "nmi", "NMI"),
    ("clustering", "ami", "AMI"),
    ("clustering", "ari", "ARI"),
    ("clustering", "acc", "cluster acc"),
)
BASELINE_MARK = "†"


Row = tuple[str, str | None]  # (model, source): one table row


def _table(
    records: list[Record], sources: Sequence[str] | None = None
) -> dict[str, dict[Row, dict[str, Record]]]:
    """``{dataset: {(model, source): {protocol: record}}}`` in first-seen order; ``sources`` parallels ``records``
    (source ``None`` without it)."""
    if sources is not None and len(sources) != len(records):
        raise ValueError(f"{len(sources)} sources for {len(records)} records")
    out: dict[str, dict[Row, dict[str, Record]]] = {}
    for i, r in enumerate(records):
        row = (r.model, None if sources is None else sources[i])
        out.setdefault(r.dataset, {}).setdefault(row, {})[r.protocol] = r
    return out


def _sort_key(item: tuple[Row, dict[str, Record]]) -> tuple[float, str, str]:
    (model, source), by_protocol = item
    knn = by_protocol.get("knn")
    return (-(knn.metrics.get("top1", -1.0) if knn else -1.0), model, source or "")


def _describe(r: Record) -> str:
    """The protocol and its parameters in a few words, for the notes under a table."""
    p = r.params
    if r.protocol == "knn":
        return f"DINO's weighted vote, k={p.get('k')}, T={p.get('temperature')}"
    if r.protocol == "linear":
        return "fast probe: logistic regression on L2-normalised features, λ chosen on a split of train"
    if r.protocol == "linear-paper":
        return (
            f"the paper's linear evaluation ({p.get('recipe')} recipe, {p.get('features')} features, SGD on "
            "augmented images)"
        )
    if r.protocol == "clustering":
        # The implementation is the one the record says ran (evaluators.clustering.KMEANS_IMPLEMENTATION); records
        # from before it was recorded claim none.
        kmeans = r.details.get("kmeans") or "k-means"
        return f"{kmeans} on the {p.get('split', 'test')} split, mean of {p.get('seeds')} seeds"
    return ", ".join(f"{k}={v}" for k, v in p.items())


def render_markdown(records: list[Record], sources: Sequence[str] | None = None) -> str:
    """Markdown: per dataset, a table of models (best k-NN first) × headline metrics (all in %, two decimals), then
    notes; with ``sources`` (one per record: where it comes from) a ``source`` column after the model."""
    from evaluators.baselines import BASELINES

    lines = ["# sslzoo leaderboard", ""]
    if not records:
        return "\n".join([*lines, "No records yet: run `sslzoo eval MODEL DATASET`.", ""])
    for dataset, models in _table(records, sources).items():
        any_record = next(iter(next(iter(models.values())).values()))
        sizes = ", ".join(f"{n} {s}" for s, n in any_record.splits.items())
        lines += [f"## {dataset}", "", f"{sizes} images, {any_record.num_classes} classes.", ""]
        used = {r.protocol: set() for m in models.values() for r in m.values()}
        for m in models.values():
            for r in m.values():
                used[r.protocol].add(_describe(r))
        header = ["model", *(["source"] if sources is not None else []), *(c[2] for c in COLUMNS), "rows"]
        lines += [
            "| " + " | ".join(header) + " |",
            "|"
            + "|".join(["---"] * (len(header) - len(COLUMNS) - 1) + ["---:"] * len(COLUMNS) + ["---"])
            + "|",
        ]
        for (model, source), by_protocol in sorted(models.items(), key=_sort_key):
            cells = [f"`{model}`{BASELINE_MARK if _is_baseline(model) else ''}"]
            if sources is not None:
                cells.append(source)
            for protocol, metric, _ in COLUMNS:
                r = by_protocol.get(protocol)
                value = r.metrics.get(metric) if r else None
                cells.append(format_points(None if value is None else points(value)))
            cells.append(" ".join(r.id for r in by_protocol.values()))
            lines.append("| " + " | ".join(cells) + " |")
        notes = [f"{protocol}: {' | '.join(sorted(descriptions))}" for protocol, descriptions in used.items()]
        missing = [b for b in BASELINES if b not in {model for model, _ in models}]
        lines += ["", f"{BASELINE_MARK} baseline. " + "; ".join(notes) + "."]
        if missing:
            lines.append(f"Missing baseline rows: {', '.join(missing)} (run `sslzoo eval NAME {dataset}`).")
        lines.append("")
    return "\n".join(lines)


# The chart's panels: (protocol, metric, title); one column each, one row per dataset.
CHART_METRICS = (
    ("knn", "top1", "k-NN top-1 (%)"),
    ("linear", "top1", "linear top-1 (%)"),
    ("clustering", "acc", "k-means accuracy (%)"),
)
CHART_KEY = "sslzoo-leaderboard"  # PNG text chunk holding the hash of what was drawn


def _is_baseline(model: str) -> bool:
    from evaluators.baselines import BASELINES, RANDOM_PREFIX

    return model in BASELINES or model.startswith(RANDOM_PREFIX)


def chart_data(records: list[Record], sources: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """What :func:`save_chart` draws: per dataset, the models (best k-NN first) with each metric and its spread
    over seeds, in points; with ``sources``, each row's source too."""
    out = []
    for dataset, models in _table(records, sources).items():
        rows = []
        for (model, source), by_protocol in sorted(models.items(), key=_sort_key):
            values = {}
            for protocol, metric, _ in CHART_METRICS:
                r = by_protocol.get(protocol)
                if r is not None and metric in r.metrics:
                    std = r.metrics.get(f"{metric}_std")
                    values[f"{protocol}_{metric}"] = (
                        points(r.metrics[metric]),
                        None if std is None else points(std),
                    )
            row = {"model": model, "baseline": _is_baseline(model), "values": values}
            rows.append(row if sources is None else {**row, "source": source})
        out.append({"dataset": dataset, "rows": rows})
    return out


def chart_key(records: list[Record], sources: Sequence[str] | None = None) -> str:
    """A hash of :func:`chart_data`: the chart is up to date when its PNG carries this key."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(chart_data(records, sources), sort_keys=True).encode()).hexdigest()


def read_chart_key(path: str | Path) -> str | None:
    """The key a chart PNG was drawn with (None for a missing file or one drawn elsewhere)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.text.get(CHART_KEY)
    except (OSError, AttributeError):
        return None


def _zoom(values: list[float], spreads: list[float]) -> tuple[float, float]:
    """Axis limits around ``values`` ± ``spreads``; a value far below the rest (more than three interquartile
    ranges under the first quartile) is left out, so it does not flatten the differences between the others."""
    import numpy as np

    if not values:
        return 0.0, 100.0
    q1, q3 = np.percentile(values, [25, 75])
    floor = q1 - 3 * max(q3 - q1, 1.0)
    kept = [(v, s) for v, s in zip(values, spreads) if v >= floor] or list(zip(values, spreads))
    low = min(v - s for v, s in kept)
    high = max(v + s for v, s in kept)
    pad = max(0.5, 0.08 * (high - low))
    return low - pad, high + pad


def save_chart(records: list[Record], path: str | Path, sources: Sequence[str] | None = None) -> Path:
    """A PNG: one row per dataset, one panel per headline metric, models as points with the spread over seeds.

    Each panel's axis is zoomed to its values (points, not bars, so nothing suggests lengths from 0), baselines are
    hollow grey markers with a dotted line at the best of them, and every model is labelled once, on the left (with
    its source in brackets when ``sources`` are given).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.atomic import atomic_file

    data = chart_data(records, sources)
    n_rows = max(1, len(data))
    height = sum(1.0 + 0.32 * len(d["rows"]) for d in data) or 2.0
    fig, axes = plt.subplots(n_rows, len(CHART_METRICS), figsize=(11, height + 0.6), squeeze=False)
    for row, block in zip(axes, data):
        models = block["rows"]
        y = list(range(len(models)))[::-1]  # best k-NN at the top
        for i, (ax, (protocol, metric, title)) in enumerate(zip(row, CHART_METRICS)):
            key = f"{protocol}_{metric}"
            shown = [(yy, m, m["values"][key]) for yy, m in zip(y, models) if key in m["values"]]
            lo, hi = _zoom([v for _, _, (v, _) in shown], [s or 0 for _, _, (_, s) in shown])
            for yy, m, (value, std) in shown:
                style = {"mfc": "white", "color": "0.45"} if m["baseline"] else {"color": "C0"}
                if value < lo:  # an outlier far below the rest: drawn at the edge, its value written out
                    ax.plot(lo, yy, marker="<", ms=6, clip_on=False, **style)
                    ax.annotate(
                        f"{value:.2f}", (lo, yy), xytext=(8, -2), textcoords="offset points", fontsize=6
                    )
                    continue
                ax.errorbar(value, yy, xerr=std, fmt="o", ms=5, capsize=3, **style)
                ax.annotate(
                    f"{value:.2f}",
                    (value, yy),
                    xytext=(0, 5),
                    textcoords="offset points",
                    ha="center",
                    fontsize=6,
                )
            best_baseline = [v for _, m, (v, _) in shown if m["baseline"]]
            if best_baseline:
                ax.axvline(max(best_baseline), color="0.45", ls=":", lw=1)
            if shown:
                ax.set_xlim(lo, hi)
            ax.set_ylim(-0.7, len(models) - 0.3)
            ax.set_yticks(y, [_chart_label(m) for m in models] if i == 0 else [])
            ax.tick_params(axis="y", labelsize=7)
            ax.tick_params(axis="x", labelsize=7)
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(f"{block['dataset']}: {title}" if i == 0 else title, fontsize=8)
    if not data:
        axes[0, 0].text(0.5, 0.5, "no records yet", ha="center", va="center")
    fig.text(
        0.01,
        0.005,
        "Axes are zoomed to the values (they do not start at 0); ◀ marks a value far below the others, at the "
        "edge. Hollow grey: baselines; dotted: best baseline; error bars: standard deviation over k-means seeds.",
        fontsize=6,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    try:
        with atomic_file(path) as tmp:
            fig.savefig(
                tmp,
                dpi=110,
                format="png",
                metadata={CHART_KEY: chart_key(records, sources), "Software": None},
            )
    finally:
        plt.close(fig)
    return Path(path)


def _chart_label(row: dict[str, Any]) -> str:
    """``model (baseline) [source]``: how the chart names a row."""
    source = f" [{row['source']}]" if row.get("source") else ""
    return row["model"] + (" (baseline)" if row["baseline"] else "") + source


def select_records(records: list[Record], rows: list[str]) -> list[Record]:
    """Records named by id, by model, or by ``MODEL@DATASET``; all of them when ``rows`` is empty (the same id in two
    sources names both)."""
    from zoo.errors import SslzooError

    if not rows:
        return list(records)
    chosen, unmatched = [], []
    for row in rows:
        hits = [r for r in records if row in (r.id, r.model, f"{r.model}@{r.dataset}")]
        if not hits:
            unmatched.append(row)
        chosen += [r for r in hits if not any(r is c for c in chosen)]
    if unmatched:
        raise SslzooError(
            f"no leaderboard row matches {', '.join(unmatched)}; name a row by its id (see `sslzoo leaderboard`), "
            "its model, or MODEL@DATASET."
        )
    return chosen


@dataclass
class Reproduction:
    """How one re-run compares with its record."""

    record: Record
    new: Record | None
    differences: dict[str, tuple[float, float, float]] = field(
        default_factory=dict
    )  # metric: (old, new, points)
    problems: list[str] = field(default_factory=list)
    source: str | None = None  # where the record comes from ("repository", "yours"), when known

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.record.id,
            **({"source": self.source} if self.source is not None else {}),
            "model": self.record.model,
            "dataset": self.record.dataset,
            "protocol": self.record.protocol,
            "ok": self.ok,
            "differences": {
                k: {"recorded": a, "reproduced": b, "points": d} for k, (a, b, d) in self.differences.items()
            },
            "problems": self.problems,
        }


def compare(record: Record, new: Record, tolerance: float) -> Reproduction:
    """Per-metric differences (in points) between a record and its re-run; problems beyond ``tolerance``."""
    result = Reproduction(record, new)
    if new.model_identity != record.model_identity:
        result.problems.append(f"weights changed: recorded {record.model_identity}, now {new.model_identity}")
    for name, old in record.metrics.items():
        if name not in new.metrics:
            result.problems.append(f"{name}: not produced by the re-run")
            continue
        value = new.metrics[name]
        diff = value - old
        result.differences[name] = (old, value, diff)
        if abs(diff) > tolerance:
            result.problems.append(f"{name}: recorded {old:g}, reproduced {value:g} ({diff:+.3f} points)")
    return result


def reproduce(
    records: list[Record],
    *,
    tolerance: float = 0.5,
    use_cache: bool = False,
    progress: bool = True,
    device=None,
) -> list[Reproduction]:
    """Re-run each record with its stored parameters (embedding again unless ``use_cache``) and compare.

    Records of the same (model, dataset) share one embedding pass.
    """
    from evaluators.evaluate import run_protocols

    groups: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        groups.setdefault((r.model, r.dataset), []).append(r)
    results = []
    for (model, dataset), group in groups.items():
        fresh = run_protocols(
            model,
            dataset,
            {r.protocol: r.params for r in group},
            device=device,
            use_cache=use_cache,
            progress=progress,
        )
        by_protocol = {r.protocol: r for r in fresh}
        results += [compare(r, by_protocol[r.protocol], tolerance) for r in group]
    return results
