"""The method registry: name → ``"module:Class"``. Adding a method is one file here, its options in
:mod:`trainers.methods.options`, and one line below.

Importing this package costs no torch: the names, options and defaults are data (``sslzoo train --help``), and a
method's module is imported when :func:`get_method` asks for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainers.methods.options import CONFIGS, DEFAULTS
from zoo._lazy import lazy_attributes
from zoo.errors import SslzooError

if TYPE_CHECKING:
    from trainers.methods.base import Batch, Method, StepInfo, momentum_update

METHODS: dict[str, str] = {
    "simclr": "trainers.methods.simclr:SimCLR",
    "moco": "trainers.methods.moco:MoCo",
    "byol": "trainers.methods.byol:BYOL",
    "dino": "trainers.methods.dino:DINO",
    "deepcluster": "trainers.methods.deepcluster:DeepCluster",
    "deepercluster": "trainers.methods.deepercluster:DeeperCluster",
    "selflabel": "trainers.methods.selflabel:SelfLabel",
}

__all__ = [
    "METHODS",
    "Batch",
    "Method",
    "StepInfo",
    "get_method",
    "method_config",
    "method_defaults",
    "method_names",
    "momentum_update",
]

__getattr__, __dir__ = lazy_attributes(
    __name__, dict.fromkeys(("Batch", "Method", "StepInfo", "momentum_update"), "trainers.methods.base")
)


def method_names() -> list[str]:
    return list(METHODS)


def _known(name: str) -> str:
    if name not in METHODS:
        raise SslzooError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}.")
    return name


def method_config(name: str) -> type:
    """The dataclass of ``name``'s own options (``get_method(name).Config``, without importing the method)."""
    return CONFIGS[_known(name)]


def method_defaults(name: str) -> dict[str, Any]:
    """``name``'s defaults of the shared options (``get_method(name).defaults``, without importing the method)."""
    return DEFAULTS[_known(name)]


def get_method(name: str) -> type[Method]:
    """The :class:`Method` subclass registered as ``name``."""
    module, cls = METHODS[_known(name)].split(":")
    return getattr(importlib.import_module(module), cls)
