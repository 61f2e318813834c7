"""sslzoo's foundation: datasets, model registry, loading and Hub I/O shared by every other package.

Attributes are imported on first use (PEP 562), so ``import zoo`` — and every ``sslzoo`` command's ``--help`` —
costs no torch or timm import; so does the registry (``zoo.registry``: data). The sslzoo_* architectures are
registered with timm when ``zoo.load`` is first used, or explicitly with ``import zoo.architectures``.

>>> import zoo
>>> ds = zoo.load_dataset("digits", split="train")
>>> len(ds), ds.features["label"].num_classes
(1437, 10)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from zoo._lazy import lazy_attributes
from zoo._torch_pair import check_torch_pair
from zoo.errors import SslzooError

if TYPE_CHECKING:  # the names below, for type checkers and readers; at run time they load on first use
    from zoo._loader import load
    from zoo.datasets import dataset_names, describe_dataset, load_dataset, to_arrays
    from zoo.encoder import Encoder
    from zoo.export import save_encoder
    from zoo.registry import ModelEntry, list_models

# Before anything imports torch: a torchvision built for another torch is one line here, not a traceback from
# deep inside `import timm` (zoo/_torch_pair.py). Reads installed metadata only.
check_torch_pair()

try:
    __version__ = version("sslzoo")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

# Public name → the module that defines it.
_LAZY = {
    "load": "zoo._loader",
    "dataset_names": "zoo.datasets",
    "describe_dataset": "zoo.datasets",
    "load_dataset": "zoo.datasets",
    "to_arrays": "zoo.datasets",
    "Encoder": "zoo.encoder",
    "save_encoder": "zoo.export",
    "ModelEntry": "zoo.registry",
    "list_models": "zoo.registry",
}

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "Encoder",
    "ModelEntry",
    "SslzooError",
    "__version__",
    "dataset_names",
    "describe_dataset",
    "list_models",
    "load",
    "load_dataset",
    "save_encoder",
    "to_arrays",
]
