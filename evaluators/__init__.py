"""Embedding evaluation: k-NN, linear probe, clustering metrics and the leaderboard.

>>> import torch, evaluators
>>> feats, labels = torch.randn(100, 16), torch.arange(100) % 4
>>> sorted(evaluators.knn_classify(feats, labels, feats, labels, k=1))
['predictions', 'top1', 'top5']
"""

from evaluators.clustering import cluster_metrics, clustering_scores, hungarian_accuracy
from evaluators.evaluate import EvalConfig, evaluate
from evaluators.features import Features, extract_features
from evaluators.knn import knn_classify, search_neighbors
from evaluators.linear import linear_probe
from evaluators.records import Record, read_records, write_records

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
