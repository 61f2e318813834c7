"""Frozen features of a dataset split, embedded once and cached on disk.

The cache key is (encoder identity, split content, split, preprocessing): the identity names the weights (a model
name plus its Hub revision, or the sha256 of the weights file) and the content is the split's fingerprint (for a
``folder:`` dataset and for ImageNet's flat val split, every file's path, size and modification time, plus the
folder's absolute path), so new weights, changed images, another split or another transform never reuse old
features. (A ``folder:`` tree of over ``zoo.folders.STAT_EVERY_FILE_BELOW`` files trusts its directories' times:
a file rewritten in place under the same name there is seen after ``index_folder(root, rescan=True)``.) Entries live in ``$SSLZOO_CACHE/features`` (default ``~/.cache/sslzoo/features``), one folder
per key holding ``feats.npy`` (N, D) float32, ``labels.npy`` (N,) int64 and ``meta.json``, written atomically.

Under ``torchrun`` (an initialised ``torch.distributed`` group) each rank embeds every ``world_size``-th image and
the shards are gathered back in dataset order, so all ranks return the full features. The ranks agree on a cache
hit (only where every rank finds the entry: a cache on one node's disk is embedded again by all, not waited for).

At ImageNet scale (features over ``MMAP_OVER_MB``, e.g. 1.28 M × 768 float32 = 3.9 GB) no split is held in RAM:
the encoder writes its rows straight into a memory-mapped ``feats.npy`` (the cache entry, or a temporary file when
the cache is off), each rank filling its own contiguous block of the same file, and the result is returned
memory-mapped; ``evaluators.knn_chunked`` searches it in chunks. Images are decoded and transformed in
``num_workers`` DataLoader workers. ImageNet's flat val split is read as a file list (:mod:`evaluators.sources`).

An encoder here is anything with ``identity`` (str), ``transform`` (or a ``preprocessing`` string) and
``embed(dataset, batch_size=..., progress=...) -> (N, D)``: a :class:`zoo.Encoder` or a baseline from
:mod:`evaluators.baselines`.

>>> from evaluators.baselines import RawPixels
>>> feats = extract_features(RawPixels(), "digits", "test")
>>> feats.feats.shape, feats.labels.shape
((360, 64), (360,))
"""

from __future__ import annotations

import errno
import hashlib
import inspect
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from evaluators._dist import rank_world
from zoo.atomic import atomic_folder, replace_folder
from zoo.disk_full import DiskFullError, free_bytes, is_disk_full
from zoo.errors import SslzooError
from zoo.image_errors import naming_unreadable_images

FORMAT_VERSION = 2  # 2: keyed by the split's content, not the dataset's name
# Splits whose features are larger than this are written to and read from a memory-mapped file.
MMAP_OVER_MB = float(os.environ.get("SSLZOO_MMAP_OVER_MB", 2048))


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
        big = meta.get("n", 0) * meta.get("dim", 0) * 4 > MMAP_OVER_MB * 2**20
        feats = np.load(folder / "feats.npy", mmap_mode="r" if big else None)
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
    return rank_world()


def _every_rank_has(hit: bool) -> bool:
    """Whether every rank found the cache entry: one decision for all, since a rank that misses embeds its shard
    and waits for the others' (caches on node-local disks may differ). Rank 0 writes the entry it then embeds."""
    _, world = _distributed()
    if world == 1:
        return hit
    import torch.distributed as dist

    hits: list[Any] = [None] * world
    dist.all_gather_object(hits, hit)
    return all(hits)


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _embed_kwargs(encoder: EncoderLike, num_workers: int, kind: str) -> dict[str, Any]:
    """The optional ``embed`` arguments this encoder takes (the pixel baselines take none)."""
    wanted = {"num_workers": num_workers, "kind": kind}
    accepted = inspect.signature(encoder.embed).parameters
    for name, value in wanted.items():
        if name not in accepted and value != (0 if name == "num_workers" else "default"):
            raise SslzooError(f"{type(encoder).__name__}.embed does not take {name}={value!r}.")
    return {k: v for k, v in wanted.items() if k in accepted}


def embed_split(
    encoder: EncoderLike,
    ds: Any,
    *,
    batch_size: int = 256,
    progress: bool = True,
    num_workers: int = 0,
    kind: str = "default",
) -> np.ndarray:
    """Embed a split (``datasets.Dataset`` or :class:`~evaluators.sources.FileSplit`): (N, D) float32, sharded
    across ranks under ``torchrun``."""
    from evaluators.sources import images_of

    rank, world = _distributed()
    extra = _embed_kwargs(encoder, num_workers, kind)
    if world == 1:
        return _as_numpy(encoder.embed(images_of(ds), batch_size=batch_size, progress=progress, **extra))
    import torch.distributed as dist

    n = len(ds)
    shard = _as_numpy(
        encoder.embed(
            images_of(ds.select(range(rank, n, world))),
            batch_size=batch_size,
            progress=progress and rank == 0,
            **extra,
        )
    )
    shards: list[Any] = [None] * world
    dist.all_gather_object(shards, shard)
    out = np.empty((n, shards[0].shape[1]), dtype=np.float32)
    for r, part in enumerate(shards):
        out[r::world] = part  # rank r embedded rows r, r + world, r + 2·world, …
    return out


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of a contiguous shard: rank r embeds one block of the memory-mapped file."""
    return n * rank // world, n * (rank + 1) // world


def embed_split_to_file(
    encoder: EncoderLike,
    ds: Any,
    path: Path,
    dim: int,
    *,
    batch_size: int = 256,
    progress: bool = True,
    num_workers: int = 0,
    kind: str = "default",
) -> None:
    """Embed a split into the ``.npy`` file ``path`` ((N, dim) float32), never holding it in RAM.

    Under ``torchrun`` rank 0 creates the file, every rank writes its contiguous block through a memory map, and
    all ranks return once the file is complete (ranks must share ``path``'s file system: one node).
    """
    from evaluators.sources import images_of

    rank, world = _distributed()
    n = len(ds)
    if rank == 0:
        np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim)).flush()
        reserve(path)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    start, stop = shard_bounds(n, rank, world)
    feats = np.lib.format.open_memmap(path, mode="r+")
    if stop > start:
        encoder.embed(
            images_of(ds.select(range(start, stop)) if world > 1 else ds),
            batch_size=batch_size,
            progress=progress and rank == 0,
            out=feats[start:stop],
            **_embed_kwargs(encoder, num_workers, kind),
        )
    feats.flush()
    del feats
    if world > 1:
        dist.barrier()


def reserve(path: Path) -> None:
    """Allocate every block of the (sparse) file ``path`` now: a full disk is then ``OSError(ENOSPC)`` here, not a
    ``SIGBUS`` that kills the process when a write through the memory map finds no block."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):  # a file system without it: as before
            return
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(fd)


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
    num_workers: int = 0,
    kind: str = "default",
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
        num_workers: DataLoader workers decoding and transforming images.
        kind: Which features of a ``zoo.Encoder`` (``zoo.encoder.FEATURE_KINDS``); part of the cache key.

    Returns:
        :class:`Features` (``feats`` memory-mapped when larger than ``MMAP_OVER_MB``).
    """
    from evaluators.sources import open_split, split_labels

    identity = getattr(encoder, "identity", None)
    if not identity:
        raise SslzooError(
            f"{type(encoder).__name__} has no identity; pass a zoo.Encoder (or set .identity to a weights hash)."
        )
    preprocessing = preprocessing_description(encoder)
    if (
        kind != "default"
    ):  # other features of the same images: their own entry (default keys stay as they were)
        preprocessing += f" | features={kind}"
    with naming_unreadable_images(dataset):
        ds = open_split(dataset, split)  # memory-mapped (or a cached folder index): cheap
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
        if _every_rank_has(hit is not None):
            return Features(hit[0], hit[1], key, cached=True, seconds=0.0)

    labels = split_labels(ds)
    dim = _feature_dim(encoder, kind)
    if (
        dim
        and len(labels) * dim * 4 > MMAP_OVER_MB * 2**20
        and "out" in inspect.signature(encoder.embed).parameters
    ):
        with naming_unreadable_images(dataset, ds):
            return _extract_to_file(
                encoder,
                ds,
                labels,
                dim,
                folder,
                fields,
                key,
                use_cache,
                batch_size,
                progress,
                num_workers,
                kind,
            )
    start = time.perf_counter()
    with naming_unreadable_images(dataset, ds):
        feats = embed_split(
            encoder, ds, batch_size=batch_size, progress=progress, num_workers=num_workers, kind=kind
        )
    seconds = time.perf_counter() - start
    if feats.ndim != 2 or len(feats) != len(labels):
        raise SslzooError(
            f"{identity} returned features of shape {feats.shape} for {len(labels)} images; "
            "embed() must return one (D,) vector per image."
        )
    if use_cache and _distributed()[0] == 0:
        _write_entry(folder, feats, labels, {**fields, "n": len(feats), "dim": int(feats.shape[1])})
    return Features(feats, labels, key, cached=False, seconds=seconds)


def _feature_dim(encoder: Any, kind: str) -> int:
    width = getattr(encoder, "feature_dim", None)
    return int(width(kind)) if callable(width) else 0


def _extract_to_file(
    encoder: Any,
    ds: Any,
    labels: np.ndarray,
    dim: int,
    folder: Path,
    fields: dict[str, Any],
    key: str,
    use_cache: bool,
    batch_size: int,
    progress: bool,
    num_workers: int,
    kind: str,
) -> Features:
    """The large-split path: features written into a memory-mapped file (the cache entry), returned mapped."""
    import torch.distributed as dist

    rank, world = _distributed()
    # Rank 0 picks the temporary folder (beside the cache entry, or in the cache root when not caching).
    tmp = [tempfile.mkdtemp(prefix=f".{key}-", dir=_mkdir(folder.parent)) if rank == 0 else None]
    if world > 1:
        dist.broadcast_object_list(tmp, src=0)
    tmp_dir = Path(tmp[0])
    start = time.perf_counter()
    try:
        embed_split_to_file(
            encoder,
            ds,
            tmp_dir / "feats.npy",
            dim,
            batch_size=batch_size,
            progress=progress,
            num_workers=num_workers,
            kind=kind,
        )
        seconds = time.perf_counter() - start
        if rank == 0:
            np.save(tmp_dir / "labels.npy", labels)
            (tmp_dir / "meta.json").write_text(
                json.dumps({**fields, "n": len(labels), "dim": dim}, indent=2) + "\n"
            )
            if use_cache:
                replace_folder(tmp_dir, folder)  # the old entry stays whole until the new one is
    except BaseException as exc:
        if rank == 0 and tmp_dir.exists():
            import shutil

            # What a full disk needs: the whole entry, known before it is written (the file was sized first).
            needed = len(labels) * dim * 4 + len(labels) * 8
            shutil.rmtree(tmp_dir, ignore_errors=True)
            if is_disk_full(exc):
                raise DiskFullError(folder, needed=needed, free=free_bytes(folder.parent)) from None
        raise
    if world > 1:
        dist.barrier()
    where = folder if use_cache else tmp_dir
    feats = np.load(where / "feats.npy", mmap_mode="r")
    if not use_cache:
        if world > 1:
            dist.barrier()  # every rank has mapped the file before rank 0 unlinks it (the mapping stays valid)
        if rank == 0:
            import shutil

            shutil.rmtree(tmp_dir, ignore_errors=True)
    return Features(feats, labels, key, cached=False, seconds=seconds)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
