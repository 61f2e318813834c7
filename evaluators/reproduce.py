"""``sslzoo reproduce NAME --dataset folder:/data/imagenet``: the registry's published ImageNet numbers, re-measured.

For a registry entry this runs every protocol the registry has a published number for, with the paper's settings:

* ``imagenet_knn`` → ``knn``: DINO's weighted k-NN (k = 20, T = 0.07, ``eval_knn.py``; DINOv2's ``eval/knn.py``
  uses the same vote) on the entry's embedding, over the 1.28 M-image bank (chunked when memory-mapped);
* ``imagenet_linear`` → ``linear-paper``: the entry's :class:`~zoo.registry.LinearRecipe` on its
  ``linear_features`` (see :mod:`evaluators.paper_linear`),

then prints measured vs published with the accepted tolerance and writes the leaderboard records. A run is
*comparable* only on ImageNet-1k (1,000 classes, the 50,000-image val split) with the recipe as published; a short
run (``--paper-epochs``) or another folder is reported but not judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evaluators.evaluate import EvalConfig, evaluate
from evaluators.records import Record
from evaluators.sources import class_names, imagenet_root, imagenet_splits
from zoo.errors import SslzooError
from zoo.registry import LINEAR_RECIPES, get_entry

# DINO's k-NN is deterministic given the features; what moves it is preprocessing and numerics (float32 vs the
# papers' half precision on GPUs), a few tenths of a point at most.
KNN_TOLERANCE = 0.5
IMAGENET_CLASSES = 1000
IMAGENET_VAL = 50_000
# Published metric → the protocol that measures it.
PROTOCOL_OF = {"imagenet_knn": "knn", "imagenet_linear": "linear-paper"}


@dataclass
class Comparison:
    """One published number next to its re-measurement."""

    metric: str
    protocol: str
    published: float
    measured: float
    tolerance: float
    comparable: bool
    record: Record

    @property
    def delta(self) -> float:
        return self.measured - self.published

    @property
    def ok(self) -> bool:
        return abs(self.delta) <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "protocol": self.protocol,
            "published": self.published,
            "measured": self.measured,
            "delta": round(self.delta, 4),
            "tolerance": self.tolerance,
            "comparable": self.comparable,
            "ok": self.ok,
            "record": self.record.id,
        }


def plan(name: str) -> dict[str, str]:
    """``{published metric: protocol}`` for the entry's published numbers that sslzoo can measure."""
    entry = get_entry(name)
    todo = {m: p for m, p in PROTOCOL_OF.items() if m in entry.published}
    if "imagenet_linear" in todo and entry.linear_recipe is None:
        del todo["imagenet_linear"]  # no official recipe known (e.g. Self-Label): say so rather than guess
    if not todo:
        raise SslzooError(
            f"{name} has no published ImageNet number with a known protocol; see `sslzoo models {name}`."
        )
    return todo


def reproduce(
    name: str,
    dataset: str | None,
    config: EvalConfig | None = None,
    *,
    progress: bool = True,
    command: str = "",
) -> tuple[list[Comparison], list[Record], list[str]]:
    """Measure ``name``'s published numbers on ``dataset`` (an ImageNet-layout ``folder:``).

    Args:
        name: A registry name with published numbers.
        dataset: ``folder:PATH`` (``train/`` + ``val/``).
        config: Run options (workers, batch, device; ``paper_epochs`` etc. make a short, non-comparable run).
            Its protocol choice is replaced by the plan.
        progress: Progress bars.
        command: The command line, stored in the records.

    Returns:
        ``(comparisons, records, notes)``: notes say why a run is not comparable.
    """
    root = imagenet_root(dataset)
    entry = get_entry(name)
    todo = plan(name)
    config = config or EvalConfig()
    config.protocols = ",".join(dict.fromkeys(todo.values()))
    config.k, config.temperature = 20, 0.07
    splits = imagenet_splits(root)
    notes = []
    classes, n_val = len(class_names(splits["train"])), len(splits["test"])
    is_imagenet = (classes, n_val) == (IMAGENET_CLASSES, IMAGENET_VAL)
    if not is_imagenet:
        notes.append(
            f"{root} has {classes} classes and {n_val} val images, not ImageNet-1k's {IMAGENET_CLASSES} and "
            f"{IMAGENET_VAL}: the published numbers do not apply"
        )
    if "imagenet_linear" in entry.published and entry.linear_recipe is None:
        notes.append(
            f"{name}'s linear number ({entry.published['imagenet_linear']}) has no known recipe: skipped"
        )
    short = {
        k: v
        for k, v in (
            ("epochs", config.paper_epochs),
            ("batch_size", config.paper_batch_size),
            ("steps_per_epoch", config.paper_steps_per_epoch),
        )
        if v is not None
    }
    if short and "linear-paper" in todo.values():
        notes.append(f"linear-paper ran with {short} instead of the recipe's: not the published protocol")
    records = evaluate(name, dataset, config, progress=progress, command=command)
    by_protocol = {r.protocol: r for r in records}
    comparisons = []
    for metric, protocol in todo.items():
        record = by_protocol[protocol]
        tolerance = (
            LINEAR_RECIPES[entry.linear_recipe].tolerance if protocol == "linear-paper" else KNN_TOLERANCE
        )
        comparable = is_imagenet and not (protocol == "linear-paper" and short)
        comparisons.append(
            Comparison(
                metric,
                protocol,
                entry.published[metric],
                record.metrics["top1"],
                tolerance,
                comparable,
                record,
            )
        )
    return comparisons, records, notes
