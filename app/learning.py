"""Did a quick-budget run learn? Its k-NN and linear accuracy against the random init of its architecture, paired.

Both encoders are scored on the same test images, so the noise of their difference is the paired one (McNemar): with
``b`` images only the trained encoder gets right and ``c`` only the random one does, out of ``n``, the difference
is ``(b − c) / n`` and its standard error ``√(b + c − (b − c)² / n) / n``. A row has learned on a protocol when
the difference exceeds :data:`Z` standard errors — far smaller than the two accuracies' own binomial errors, which
mostly cancel (most images are right, or wrong, for both).

>>> import numpy as np
>>> a, b = np.array([1, 1, 1, 0, 1, 0], bool), np.array([1, 0, 1, 0, 0, 0], bool)
>>> [round(v, 2) for v in paired_difference(a, b)]
[33.33, 19.25]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["Z", "paired_difference", "predictions", "verdict"]

Z = 2.0  # standard errors a margin must exceed (one-sided false alarm ≈ 2%)


def paired_difference(right_a: np.ndarray, right_b: np.ndarray) -> tuple[float, float]:
    """``(accuracy of a − accuracy of b, its paired standard error)`` in points, from per-image correctness."""
    right_a, right_b = np.asarray(right_a, bool), np.asarray(right_b, bool)
    n = right_a.size
    b = int((right_a & ~right_b).sum())
    c = int((~right_a & right_b).sum())
    diff = (b - c) / n
    se = math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n
    return 100 * diff, 100 * se


def predictions(model: str, dataset: str, params: dict[str, dict[str, Any]], device: str | None = None):
    """Per-image correctness of ``model`` on ``dataset``'s test split for the ``knn`` and ``linear`` protocols,
    with the evaluators' own code and parameters (features come from the evaluation's cache)."""
    from evaluators.baselines import resolve_encoder
    from evaluators.evaluate import knn_outcome, linear_outcome
    from evaluators.features import extract_features

    encoder = resolve_encoder(model, dataset, device=device)
    train = extract_features(encoder, dataset, "train", progress=False)
    test = extract_features(encoder, dataset, "test", progress=False)
    knn = knn_outcome(train, test, params["knn"], device)
    if "predictions" not in knn:
        from zoo.errors import SslzooError

        raise SslzooError(
            f"{dataset}'s features are streamed from disk: no per-image k-NN predictions to pair."
        )
    probe = linear_outcome(train, test, params["linear"], device)
    labels = np.asarray(test.labels)
    return {"knn": knn["predictions"] == labels, "linear": probe["predictions"] == labels}


def verdict(trained: dict[str, np.ndarray], random: dict[str, np.ndarray]) -> dict[str, Any]:
    """``{"knn": (Δ, se), "linear": (Δ, se), "learned": {protocol: bool}, "text": one line}`` for a table."""
    out: dict[str, Any] = {"learned": {}}
    parts = []
    for protocol, label in (("knn", "k-NN"), ("linear", "linear")):
        diff, se = paired_difference(trained[protocol], random[protocol])
        out[protocol] = (round(diff, 2), round(se, 2))
        out["learned"][protocol] = diff > Z * se
        parts.append(f"{label} {diff:+.1f} ± {se:.1f}")
    learned = out["learned"]
    if all(learned.values()):
        head = "above random init"
    elif not any(learned.values()):
        head = "NOT above random init at this budget"
    else:
        missing = [name for name, key in (("k-NN", "knn"), ("linear", "linear")) if not learned[key]]
        head = f"above random init except on {' and '.join(missing)} at this budget"
    out["text"] = f"{head} ({', '.join(parts)})"
    return out
