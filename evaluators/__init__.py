"""Embedding evaluation: k-NN, linear probe, clustering metrics and the leaderboard.

Attributes are imported on first use (PEP 562), so the CLI can read ``evaluators.cli`` without torch or faiss.

>>> import torch, evaluators
>>> feats, labels = torch.randn(100, 16), torch.arange(100) % 4
>>> sorted(evaluators.knn_classify(feats, labels, feats, labels, k=1))
['predictions', 'top1', 'top5']
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from zoo._lazy import lazy_attributes

if TYPE_CHECKING:
    from evaluators.clustering import cluster_metrics, clustering_scores, hungarian_accuracy
    from evaluators.evaluate import EvalConfig, evaluate
    from evaluators.features import Features, extract_features
    from evaluators.knn import knn_classify, search_neighbors
    from evaluators.linear import linear_probe
    from evaluators.records import Record, read_records, write_records

# Public name → the module that defines it.
_LAZY = {
    "EvalConfig": "evaluators.evaluate",
    "evaluate": "evaluators.evaluate",
    "Features": "evaluators.features",
    "extract_features": "evaluators.features",
    "Record": "evaluators.records",
    "read_records": "evaluators.records",
    "write_records": "evaluators.records",
    "cluster_metrics": "evaluators.clustering",
    "clustering_scores": "evaluators.clustering",
    "hungarian_accuracy": "evaluators.clustering",
    "knn_classify": "evaluators.knn",
    "search_neighbors": "evaluators.knn",
    "linear_probe": "evaluators.linear",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


class _Package(types.ModuleType):
    """``evaluators.evaluate`` stays the function once ``evaluators/evaluate.py`` is imported: the import system
    then sets the package's attribute of the submodule's name to the submodule, which would hide the function."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "evaluate" and isinstance(value, types.ModuleType):
            value = value.evaluate
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "EvalConfig",
    "Features",
    "Record",
    "cluster_metrics",
    "clustering_scores",
    "evaluate",
    "extract_features",
    "hungarian_accuracy",
    "knn_classify",
    "linear_probe",
    "read_records",
    "search_neighbors",
    "write_records",
]
