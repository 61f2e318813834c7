"""The method registry: name → ``"module:Class"``. Adding a method is one file here and one line below."""

from __future__ import annotations

import importlib

from trainers.methods.base import Batch, Method, StepInfo, momentum_update
from zoo.errors import SslzooError

METHODS: dict[str, str] = {
    "simclr": "trainers.methods.simclr:SimCLR",
    "moco": "trainers.methods.moco:MoCo",
    "byol": "trainers.methods.byol:BYOL",
    "dino": "trainers.methods.dino:DINO",
    "deepcluster": "trainers.methods.deepcluster:DeepCluster",
    "deepercluster": "trainers.methods.deepercluster:DeeperCluster",
    "selflabel": "trainers.methods.selflabel:SelfLabel",
}

__all__ = ["METHODS", "Batch", "Method", "StepInfo", "get_method", "method_names", "momentum_update"]


def method_names() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> type[Method]:
    """The :class:`Method` subclass registered as ``name``."""
    if name not in METHODS:
        raise SslzooError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}.")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)
