"""The online k-NN monitor: weighted k-NN accuracy on embeddings, as in Wu et al. 2018 and DINO's ``eval_knn``.

>>> import torch
>>> train = torch.eye(3)
>>> knn_accuracy(train, torch.tensor([0, 1, 2]), train, torch.tensor([0, 1, 2]), k=1)
1.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["knn_accuracy"]


@torch.no_grad()
def knn_accuracy(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> float:
    """Top-1 accuracy of a cosine-similarity k-NN vote weighted by ``exp(sim / temperature)``.

    Args:
        train_feats: (N, D) embeddings of the labelled bank.
        train_labels: (N,) int64 labels.
        test_feats: (M, D) embeddings to classify.
        test_labels: (M,) int64 labels.
        k: Neighbours (capped at N).
        temperature: Softness of the vote.
    """
    train = F.normalize(train_feats.float(), dim=1)
    test = F.normalize(test_feats.float(), dim=1)
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, train.shape[0])
    correct = 0
    for start in range(0, test.shape[0], chunk):
        sims = test[start : start + chunk] @ train.T
        top, idx = sims.topk(k, dim=1)
        votes = torch.zeros(top.shape[0], num_classes, device=top.device)
        votes.scatter_add_(1, train_labels.to(top.device)[idx], (top / temperature).exp())
        correct += int((votes.argmax(1) == test_labels[start : start + chunk].to(top.device)).sum())
    return correct / max(1, test.shape[0])
