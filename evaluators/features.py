"""Frozen features of a dataset split, embedded once and cached on disk.

The cache key is (encoder identity, split content, split, preprocessing): the identity names the weights (a model
name plus its Hub revision, or the sha256 of the weights file) and the content is the split's fingerprint (for a
``folder:`` dataset, every file's path, size and time, plus the folder's absolute path), so new weights, changed
images, another split or another transform never reuse old features. Entries live in ``$SSLZOO_CACHE/features`` (default ``~/.cache/sslzoo/features``), one folder
per key holding ``feats.npy`` (N, D) float32, ``labels.npy`` (N,) int64 and ``meta.json``, written atomically.

Under ``torchrun`` (an initialised ``torch.distributed`` group) each rank embeds every ``world_size``-th image and
the shards are gathered back in dataset order, so all ranks return the full features.

An encoder here is anything with ``identity`` (str), ``transform`` (or a ``preprocessing`` string) and
``embed(dataset, batch_size=..., progress=...) -> (N, D)``: a :class:`zoo.Encoder` or a baseline from
:mod:`evaluators.baselines`.

>>> from evaluators.baselines import RawPixels
>>> feats = extract_features(RawPixels(), "digits", "test")
>>> feats.feats.shape, feats.labels.shape
((360, 64), (360,))
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from zoo.atomic import atomic_folder
from zoo.errors import SslzooError
from zoo.image_errors import naming_unreadable_images

FORMAT_VERSION = 2  # 2: keyed by the split's content, not the dataset's name


class EncoderLike(Protocol):
    """What feature extraction needs from an encoder (``zoo.Encoder`` and the baselines have it)."""

    identity: str

    def embed(self, images: Any, batch_size: int = 256, progress: bool = False) -> Any: ...


@dataclass
class Features:
    """Features of one split.

    Attributes:
        feats: (N, D) float32.
        labels: (N,) int64.
        key: The cache key.
        cached: Whether they came from the cache (no embedding ran).
        seconds: Wall time to embed (0 for a cache hit).
    """

    feats: np.ndarray
    labels: np.ndarray
    key: str
    cached: bool
    seconds: float


def cache_root() -> Path:
    """``$SSLZOO_CACHE/features``, by default ``~/.cache/sslzoo/features``."""
    root = os.environ.get("SSLZOO_CACHE") or Path.home() / ".cache" / "sslzoo"
    return Path(root).expanduser() / "features"


def preprocessing_description(encoder: Any) -> str:
    """How images become inputs: the encoder's ``preprocessing`` string, else the ``repr`` of its transform."""
    text = getattr(encoder, "preprocessing", None)
    if text is None:
        transform = getattr(encoder, "transform", None)
        text = repr(transform) if transform is not None else "none"
    return " ".join(str(text).split())


def split_content(dataset: str, ds: Any) -> str:
    """What a split's features depend on besides the encoder: the split's content fingerprint (``ds._fingerprint``,
    which for ``folder:`` datasets hashes every file's path, size and time), and a folder's resolved absolute path
    (the same relative ``folder:imgs`` from two working folders is two datasets)."""
    base = dataset.split("?")[0]
    where = str(Path(base[len("folder:") :]).expanduser().resolve()) if base.startswith("folder:") else ""
    return f"{getattr(ds, '_fingerprint', '')}:{where}" if where else str(getattr(ds, "_fingerprint", ""))


def feature_key(identity: str, content: str, split: str, preprocessing: str) -> str:
    """A stable 32-hex-digit key for (identity, split content, split, preprocessing); see :func:`split_content`."""
    blob = json.dumps([FORMAT_VERSION, identity, content, split, preprocessing])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _read_entry(folder: Path, key_fields: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if any(meta.get(k) != v for k, v in key_fields.items()):
            return None
        feats = np.load(folder / "feats.npy")
        labels = np.load(folder / "labels.npy")
    except (OSError, ValueError):  # missing or damaged entry: embed again
        return None
    if feats.ndim != 2 or len(feats) != len(labels) or len(feats) != meta.get("n"):
        return None
    return feats, labels


def _write_entry(folder: Path, feats: np.ndarray, labels: np.ndarray, meta: dict[str, Any]) -> None:
    """Write an entry into a temporary folder and rename it into place, so readers never see half of one."""
    with atomic_folder(folder) as tmp:
        np.save(tmp / "feats.npy", feats)
        np.save(tmp / "labels.npy", labels)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def _distributed() -> tuple[int, int]:
    """(rank, world size) of an initialised ``torch.distributed`` group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def embed_split(encoder: EncoderLike, ds: Any, *, batch_size: int = 256, progress: bool = True) -> np.ndarray:
    """Embed a ``datasets.Dataset`` split: (N, D) float32, sharded across ranks under ``torchrun``."""
    rank, world = _distributed()
    if world == 1:
        return _as_numpy(encoder.embed(ds, batch_size=batch_size, progress=progress))
    import torch.distributed as dist

    n = len(ds)
    shard = _as_numpy(
        encoder.embed(
            ds.select(range(rank, n, world)), batch_size=batch_size, progress=progress and rank == 0
        )
    )
    shards: list[Any] = [None] * world
    dist.all_gather_object(shards, shard)
    out = np.empty((n, shards[0].shape[1]), dtype=np.float32)
    for r, part in enumerate(shards):
        out[r::world] = part  # rank r embedded rows r, r + world, r + 2·world, …
    return out


def extract_features(
    encoder: EncoderLike,
    dataset: str,
    split: str,
    *,
    batch_size: int = 256,
    use_cache: bool = True,
    refresh: bool = False,
    progress: bool = True,
    cache_dir: str | Path | None = None,
) -> Features:
    """Features and labels of ``dataset``'s ``split``, from the cache when possible.

    Args:
        encoder: A ``zoo.Encoder`` or a baseline (see the module docstring).
        dataset: A name for :func:`zoo.load_dataset`.
        split: ``"train"`` or ``"test"``.
        batch_size: Images per forward pass.
        use_cache: Read and write the on-disk cache. Encoders with ``cacheable = False`` (raw pixels) skip it.
        refresh: Embed again even when cached (and overwrite the entry).
        progress: Show the encoder's progress bar.
        cache_dir: Cache folder (default: :func:`cache_root`).

    Returns:
        :class:`Features`.
    """
    import zoo

    identity = getattr(encoder, "identity", None)
    if not identity:
        raise SslzooError(
            f"{type(encoder).__name__} has no identity; pass a zoo.Encoder (or set .identity to a weights hash)."
        )
    preprocessing = preprocessing_description(encoder)
    with naming_unreadable_images(dataset):
        ds = zoo.load_dataset(dataset, split=split)  # memory-mapped (or a cached folder index): cheap
    content = split_content(dataset, ds)
    key = feature_key(identity, content, split, preprocessing)
    fields = {
        "identity": identity,
        "dataset": dataset,
        "content": content,
        "split": split,
        "preprocessing": preprocessing,
    }
    use_cache = use_cache and getattr(encoder, "cacheable", True)
    folder = Path(cache_dir or cache_root()) / key
    if use_cache and not refresh:
        hit = _read_entry(folder, fields)
        if hit is not None:
            return Features(hit[0], hit[1], key, cached=True, seconds=0.0)

    labels = np.asarray(ds["label"], dtype=np.int64)
    start = time.perf_counter()
    with naming_unreadable_images(dataset, ds):
        feats = embed_split(encoder, ds, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - start
    if feats.ndim != 2 or len(feats) != len(labels):
        raise SslzooError(
            f"{identity} returned features of shape {feats.shape} for {len(labels)} images; "
            "embed() must return one (D,) vector per image."
        )
    if use_cache and _distributed()[0] == 0:
        _write_entry(folder, feats, labels, {**fields, "n": len(feats), "dim": int(feats.shape[1])})
    return Features(feats, labels, key, cached=False, seconds=seconds)
