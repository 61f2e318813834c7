"""The leaderboard: records rendered as a markdown table and a PNG chart, and re-run to check they reproduce.

One table per dataset, one row per model, the columns the protocols' headline numbers::

    | model | k-NN top-1 | k-NN top-5 | linear top-1 | NMI | AMI | ARI | cluster acc | rows |

:func:`reproduce` re-runs records with the parameters they store and reports each metric's difference; a row
fails when any metric moves by more than the tolerance (in percentage points; clustering scores × 100) or the
model's weights are no longer the ones recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluators.records import Record, metric_in_points
from zoo.atomic import save_figure_atomic

# (protocol, metric, column header, scale for display)
COLUMNS = (
    ("knn", "top1", "k-NN top-1", 1.0),
    ("knn", "top5", "k-NN top-5", 1.0),
    ("linear", "top1", "linear top-1", 1.0),
    ("clustering", "nmi", "NMI", 100.0),
    ("clustering", "ami", "AMI", 100.0),
    ("clustering", "ari", "ARI", 100.0),
    ("clustering", "acc", "cluster acc", 100.0),
)
BASELINE_MARK = "†"


def _table(records: list[Record]) -> dict[str, dict[str, dict[str, Record]]]:
    """``{dataset: {model: {protocol: record}}}`` in first-seen order."""
    out: dict[str, dict[str, dict[str, Record]]] = {}
    for r in records:
        out.setdefault(r.dataset, {}).setdefault(r.model, {})[r.protocol] = r
    return out


def _sort_key(item: tuple[str, dict[str, Record]]) -> tuple[float, str]:
    model, by_protocol = item
    knn = by_protocol.get("knn")
    return (-(knn.metrics.get("top1", -1.0) if knn else -1.0), model)


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
        return f"faiss k-means on the {p.get('split', 'test')} split, mean of {p.get('seeds')} seeds"
    return ", ".join(f"{k}={v}" for k, v in p.items())


def render_markdown(records: list[Record]) -> str:
    """Markdown: per dataset, a table of models (best k-NN first) × headline metrics (all in %), then notes."""
    from evaluators.baselines import BASELINES, RANDOM_PREFIX

    lines = ["# sslzoo leaderboard", ""]
    if not records:
        return "\n".join([*lines, "No records yet: run `sslzoo eval MODEL DATASET`.", ""])
    for dataset, models in _table(records).items():
        any_record = next(iter(next(iter(models.values())).values()))
        sizes = ", ".join(f"{n} {s}" for s, n in any_record.splits.items())
        lines += [f"## {dataset}", "", f"{sizes} images, {any_record.num_classes} classes.", ""]
        used = {r.protocol: set() for m in models.values() for r in m.values()}
        for m in models.values():
            for r in m.values():
                used[r.protocol].add(_describe(r))
        header = ["model", *(c[2] for c in COLUMNS), "rows"]
        lines += [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] + ["---:"] * len(COLUMNS) + ["---"]) + "|",
        ]
        for model, by_protocol in sorted(models.items(), key=_sort_key):
            is_baseline = model in BASELINES or model.startswith(RANDOM_PREFIX)
            cells = [f"`{model}`{BASELINE_MARK if is_baseline else ''}"]
            for protocol, metric, _, scale in COLUMNS:
                r = by_protocol.get(protocol)
                value = r.metrics.get(metric) if r else None
                cells.append("–" if value is None else f"{value * scale:.1f}")
            cells.append(" ".join(r.id for r in by_protocol.values()))
            lines.append("| " + " | ".join(cells) + " |")
        notes = [f"{protocol}: {' | '.join(sorted(descriptions))}" for protocol, descriptions in used.items()]
        missing = [b for b in BASELINES if b not in models]
        lines += ["", f"{BASELINE_MARK} baseline. " + "; ".join(notes) + "."]
        if missing:
            lines.append(f"Missing baseline rows: {', '.join(missing)} (run `sslzoo eval NAME {dataset}`).")
        lines.append("")
    return "\n".join(lines)


def save_chart(records: list[Record], path: str | Path) -> Path:
    """A PNG with one panel per dataset: grouped bars of k-NN top-1, linear top-1 and cluster acc per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table = _table(records)
    shown = [c for c in COLUMNS if c[1] in ("top1",) or c[2] == "cluster acc"]
    n = max(1, len(table))
    fig, axes = plt.subplots(n, 1, figsize=(9, 3.2 * n), squeeze=False)
    for ax, (dataset, models) in zip(axes[:, 0], table.items()):
        items = sorted(models.items(), key=_sort_key)
        x = np.arange(len(items))
        width = 0.8 / len(shown)
        for i, (protocol, metric, label, scale) in enumerate(shown):
            values = [
                (m[protocol].metrics.get(metric, np.nan) * scale if protocol in m else np.nan)
                for _, m in items
            ]
            bars = ax.bar(x + (i - (len(shown) - 1) / 2) * width, values, width, label=label)
            ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
        ax.set_xticks(x, [name for name, _ in items], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("%")
        ax.set_ylim(0, 119)  # headroom for the legend above the bars
        ax.set_yticks(range(0, 101, 20))
        ax.set_title(dataset, fontsize=10)
        ax.legend(fontsize=7, loc="upper center", ncol=len(shown), frameon=False)
    if not table:
        axes[0, 0].text(0.5, 0.5, "no records yet", ha="center", va="center")
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def select_records(records: list[Record], rows: list[str]) -> list[Record]:
    """Records named by id, by model, or by ``MODEL@DATASET``; all of them when ``rows`` is empty."""
    from zoo.errors import SslzooError

    if not rows:
        return list(records)
    chosen, unmatched = [], []
    for row in rows:
        hits = [r for r in records if row in (r.id, r.model, f"{r.model}@{r.dataset}")]
        if not hits:
            unmatched.append(row)
        chosen += [r for r in hits if r not in chosen]
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

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.record.id,
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
        diff = metric_in_points(name, value) - metric_in_points(name, old)
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
