"""sslzoo's foundation: datasets, model registry, loading and Hub I/O shared by every other package.

>>> import zoo
>>> ds = zoo.load_dataset("digits", split="train")
>>> len(ds), ds.features["label"].num_classes
(1437, 10)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from zoo import architectures, dino_vit, sobel  # noqa: F401  (register sslzoo_* models with timm)
from zoo._loader import load
from zoo.datasets import dataset_names, describe_dataset, load_dataset, to_arrays
from zoo.encoder import Encoder
from zoo.errors import SslzooError
from zoo.export import save_encoder
from zoo.registry import ModelEntry, list_models

try:
    __version__ = version("sslzoo")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

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
