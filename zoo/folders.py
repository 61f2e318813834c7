"""The index of an image folder: built once, cached, refreshed incrementally, read in parallel.

A 1.28 M-file ImageNet tree must not be listed and verified at every start. The index (one row per image:
relative path, size, modification time, PIL mode) lives in the sslzoo cache, keyed by the folder's resolved path,
and is refreshed like this:

1. Directories are listed in parallel (a thread pool; listing is I/O-bound). On a large tree (over
   :data:`STAT_EVERY_FILE_BELOW` images) a directory whose modification time is unchanged is taken from the cache
   without listing it: adding, removing or renaming a file changes its directory's time. Smaller trees stat every
   file, so a file rewritten in place is noticed too (``rescan=True`` forces that on any tree).
2. Only new or changed files (other size or time) are verified: their header is read in parallel (mode, size);
   unchanged files keep their cached verdict. An unreadable file (empty, not an image, too many pixels) is
   reported with its path and the index is not written.
3. The folder's fingerprint hashes every (path, size, time): the dataset built from it, and every cache keyed by
   the dataset's fingerprint (decoded arrays, features), changes when any image does.

>>> index = index_folder("photos")  # doctest: +SKIP
>>> index.paths[:2], index.verified_now  # doctest: +SKIP
(['cats/1.jpg', 'cats/2.png'], 0)
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.errors import SslzooError

__all__ = ["IMAGE_SUFFIXES", "STAT_EVERY_FILE_BELOW", "FolderIndex", "index_folder"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
STAT_EVERY_FILE_BELOW = 20_000
INDEX_VERSION = 1
MAX_DEPTH = 32  # deeper than any real dataset; stops symlink loops


@dataclass
class FolderIndex:
    """Every readable image under ``root``, sorted by relative path.

    Attributes:
        root: The folder (resolved).
        paths: Relative POSIX paths.
        sizes, mtimes: (N,) int64 bytes and modification times (ns).
        modes: PIL mode of each image (``L``, ``RGB``, ``I;16``, …) read from its header.
        verified_now: Files whose header was read in this call (0 when nothing changed).
        fingerprint: sha256 of every (path, size, time).
    """

    root: Path
    paths: list[str]
    sizes: np.ndarray
    mtimes: np.ndarray
    modes: list[str]
    verified_now: int = 0
    fingerprint: str = ""
    dir_mtimes: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)


def _cache_dir(root: Path) -> Path:
    from zoo.datasets import cache_root

    return cache_root() / "folders" / hashlib.sha256(str(root).encode()).hexdigest()[:24]


def _load_cached(root: Path) -> FolderIndex | None:
    import pyarrow.parquet as pq

    path = _cache_dir(root)
    try:
        files = pq.read_table(path / "files.parquet").to_pydict()
        dirs = pq.read_table(path / "dirs.parquet").to_pydict()
        meta = pq.read_schema(path / "files.parquet").metadata or {}
    except (OSError, ValueError):
        return None
    if meta.get(b"version") != str(INDEX_VERSION).encode() or meta.get(b"root") != str(root).encode():
        return None
    return FolderIndex(
        root=root,
        paths=files["path"],
        sizes=np.asarray(files["size"], dtype=np.int64),
        mtimes=np.asarray(files["mtime"], dtype=np.int64),
        modes=files["mode"],
        dir_mtimes=dict(zip(dirs["dir"], dirs["mtime"])),
    )


def _save(index: FolderIndex) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from zoo.atomic import atomic_file

    folder = _cache_dir(index.root)
    meta = {"version": str(INDEX_VERSION), "root": str(index.root)}
    files = pa.table(
        {"path": index.paths, "size": index.sizes, "mtime": index.mtimes, "mode": index.modes}
    ).replace_schema_metadata(meta)
    dirs = pa.table({"dir": list(index.dir_mtimes), "mtime": list(index.dir_mtimes.values())})
    # dirs first: a reader that finds files.parquet of this version finds a matching dirs.parquet.
    for name, table in (("dirs.parquet", dirs), ("files.parquet", files)):
        with atomic_file(folder / name) as tmp:
            pq.write_table(table, tmp)


def _join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name


def _list_dir(root: Path, rel_dir: str, cached: FolderIndex | None, trust: bool, subdirs_of, files_of):
    """(rel_dir, mtime, [(rel_path, size, mtime)], [rel_subdirs]) of one directory."""
    full = root / rel_dir if rel_dir else root
    mtime = os.stat(full).st_mtime_ns
    if trust and cached is not None and cached.dir_mtimes.get(rel_dir) == mtime:
        files = [
            (cached.paths[i], int(cached.sizes[i]), int(cached.mtimes[i])) for i in files_of.get(rel_dir, ())
        ]
        return rel_dir, mtime, files, subdirs_of.get(rel_dir, [])
    files, subdirs = [], []
    with os.scandir(full) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue  # .DS_Store, .ipynb_checkpoints, our own temp files
            if entry.is_dir():
                subdirs.append(_join(rel_dir, entry.name))
            elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                st = entry.stat()
                files.append((_join(rel_dir, entry.name), st.st_size, st.st_mtime_ns))
    return rel_dir, mtime, files, subdirs


def _read_mode(root: Path, rel_path: str) -> tuple[str | None, str]:
    from zoo.imaging import open_image

    try:
        with open_image(root / rel_path, what=rel_path) as image:
            return image.mode, ""
    except SslzooError as exc:
        return None, str(exc)


def index_folder(root: str | Path, rescan: bool = False, workers: int = 16) -> FolderIndex:
    """Index every image under ``root`` (any nesting), reusing the cached index for what did not change.

    Args:
        root: The folder.
        rescan: Stat every file even on a large tree (a file rewritten in place keeps its directory's time).
        workers: Threads listing directories and reading headers.

    Raises:
        SslzooError: no such folder, no image in it, or unreadable images (named).
    """
    root = Path(root).expanduser().resolve()
    source = f"folder:{root}"
    if not root.is_dir():
        raise SslzooError(f"{source}: no such folder; give a folder of images (any nesting).")
    cached = _load_cached(root)
    trust = not rescan and cached is not None and len(cached) >= STAT_EVERY_FILE_BELOW
    files_of: dict[str, list[int]] = {}
    subdirs_of: dict[str, list[str]] = {}
    if cached is not None:
        for i, p in enumerate(cached.paths):
            files_of.setdefault(p.rpartition("/")[0], []).append(i)
        for d in cached.dir_mtimes:
            if d:
                subdirs_of.setdefault(d.rpartition("/")[0], []).append(d)

    dir_mtimes: dict[str, int] = {}
    found: list[tuple[str, int, int]] = []
    with ThreadPoolExecutor(workers) as pool:
        level, depth = [""], 0
        while level and depth <= MAX_DEPTH:
            results = pool.map(lambda d: _list_dir(root, d, cached, trust, subdirs_of, files_of), level)
            level = []
            for rel_dir, mtime, files, subdirs in results:
                dir_mtimes[rel_dir] = mtime
                found += files
                level += subdirs
            depth += 1
        found.sort()
        known = {}
        if cached is not None:
            known = {
                p: (int(s), int(t), m)
                for p, s, t, m in zip(cached.paths, cached.sizes, cached.mtimes, cached.modes)
            }
        modes: list[str | None] = []
        todo = []
        for i, (path, size, mtime) in enumerate(found):
            hit = known.get(path)
            modes.append(hit[2] if hit is not None and hit[:2] == (size, mtime) else None)
            if modes[-1] is None:
                todo.append(i)
        verdicts = list(pool.map(lambda i: _read_mode(root, found[i][0]), todo))
    bad = [(found[i][0], why) for i, (mode, why) in zip(todo, verdicts) if mode is None]
    if bad:
        first = "; ".join(why for _, why in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise SslzooError(
            f"{source}: {len(bad)} file(s) are not readable images ({first}{more}); remove or replace them."
        )
    for i, (mode, _) in zip(todo, verdicts):
        modes[i] = mode
    if not found:
        raise SslzooError(
            f"{source} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); put images in it, in any "
            "nesting, or one subfolder per class for labels."
        )
    digest = hashlib.sha256()
    for path, size, mtime in found:
        digest.update(f"{path}\0{size}\0{mtime}\n".encode())
    index = FolderIndex(
        root=root,
        paths=[p for p, _, _ in found],
        sizes=np.asarray([s for _, s, _ in found], dtype=np.int64),
        mtimes=np.asarray([t for _, _, t in found], dtype=np.int64),
        modes=[str(m) for m in modes],
        verified_now=len(todo),
        fingerprint=digest.hexdigest(),
        dir_mtimes=dir_mtimes,
    )
    if cached is None or todo or dir_mtimes != cached.dir_mtimes or index.paths != cached.paths:
        _save(index)
    return index
