"""Self-supervised trainers: one engine (:mod:`trainers.engine`), one file per method (:mod:`trainers.methods`).

>>> from trainers import train
>>> run_dir = train("simclr", dataset="digits", epochs=1, out="runs/demo")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["train"]


def train(method: str = "simclr", **options: Any):
    """Train ``method`` with ``options`` (fields of ``TrainConfig`` and the method's ``Config``); see
    :func:`trainers.engine.train`."""
    from trainers.engine import train as _train

    return _train(method, **options)
