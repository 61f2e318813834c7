"""Self-supervised trainers: one engine (:mod:`trainers.engine`), one file per method (:mod:`trainers.methods`).

>>> from trainers import train
>>> run_dir = train("simclr", dataset="digits", epochs=1, out="runs/demo")  # doctest: +SKIP
>>> run_dir = train(recipe="dino-vits16", dataset="folder:photos", batch_size=64)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["train"]


def train(method: str | None = None, **options: Any):
    """Train ``method`` with ``options`` (fields of ``TrainConfig`` and the method's ``Config``); see
    :func:`trainers.engine.train`.

    ``recipe="dino-vits16"`` (see :mod:`trainers.recipes`) makes a paper's settings the defaults; the other
    ``options`` override them. Without a method or a recipe, the method is ``simclr``.
    """
    from trainers.engine import train as _train
    from trainers.recipes import apply_recipe

    method, options = apply_recipe(method, options)
    return _train(method, **options)
