"""The index of an image folder: built once, cached, refreshed incrementally, read in parallel.

A 1.28 M-file ImageNet tree must not be listed and verified at every start. The index (one row per image:
relative path, size, modification time, PIL mode) lives in the sslzoo cache, keyed by the folder's resolved path,
and is refreshed like this:

1. Directories are listed in parallel (a thread pool; listing is I/O-bound). On a large tree (over
   :data:`STAT_EVERY_FILE_BELOW` images) a directory whose modification time is unchanged is taken from the cache
   without listing it: adding, removing or renaming a file changes its directory's time. Smaller trees stat every
   file, so a file rewritten in place is noticed too (``rescan=True`` forces that on any tree).
2. Only new or changed files (other size or time) are verified, in parallel: opened (mode, size) and decoded
   once (a JPEG at 1/8 scale: every byte is read, few pixels are made), so a truncated file is found here, not
   hours into training. Unchanged files keep their cached verdict, readable or not.
3. Unreadable files (empty, not an image, truncated, too many pixels) are left out of the index and listed with
   their reasons (:attr:`FolderIndex.unreadable`, kept in the cache and in ``skipped_files.txt`` beside it). A
   folder where no file is readable, or more than :data:`MAX_UNREADABLE_SHARE` (10%) is not, is an error: that
   is a wrong folder or a broken copy, not a few bad files.
4. The folder's fingerprint hashes every readable (path, size, time): the dataset built from it, and every cache
   keyed by the dataset's fingerprint (decoded arrays, features), changes when any image does.

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

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_UNREADABLE_SHARE",
    "STAT_EVERY_FILE_BELOW",
    "FolderIndex",
    "UnreadableFiles",
    "index_folder",
    "unreadable_summary",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
STAT_EVERY_FILE_BELOW = 20_000
INDEX_VERSION = 2  # 2: unreadable files are kept in the index, with their reason
# Above this share of unreadable files a folder is refused outright (a wrong folder, a broken copy); below it the
# unreadable ones are left out and listed. ``--strict-images`` refuses any.
MAX_UNREADABLE_SHARE = 0.10
SKIPPED_LIST = "skipped_files.txt"
MAX_DEPTH = 32  # deeper than any real dataset; stops symlink loops


@dataclass
class FolderIndex:
    """Every readable image under ``root``, sorted by relative path.

    Attributes:
        root: The folder (resolved).
        paths: Relative POSIX paths.
        sizes, mtimes: (N,) int64 bytes and modification times (ns).
        modes: PIL mode of each image (``L``, ``RGB``, ``I;16``, …) read from its header.
        verified_now: Files verified (opened and decoded) in this call (0 when nothing changed).
        fingerprint: sha256 of every readable (path, size, time).
        unreadable: ``(relative path, what is wrong)`` of every image file left out, sorted by path.
        skipped_list: The cached text list of ``unreadable`` (``path<TAB>reason`` lines), when there are any.
    """

    root: Path
    paths: list[str]
    sizes: np.ndarray
    mtimes: np.ndarray
    modes: list[str]
    verified_now: int = 0
    fingerprint: str = ""
    dir_mtimes: dict[str, int] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    skipped_list: Path | None = None

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class UnreadableFiles:
    """The image files a ``folder:`` dataset leaves out, for messages, run folders and records.

    Attributes:
        source: ``folder:ROOT``.
        files: ``(relative path, what is wrong)``, sorted by path.
        total: Image files found, readable or not.
        listed: The cached text list (``skipped_files.txt`` beside the index), when there are any.
    """

    source: str
    files: list[tuple[str, str]]
    total: int
    listed: Path | None = None

    def __len__(self) -> int:
        return len(self.files)

    def lines(self) -> list[str]:
        """The text of a ``skipped_files.txt``."""
        return skipped_lines(self.source, self.files)

    def note(self, listed: str | Path | None = None) -> str:
        """One line for stderr: how many were left out, where they are listed, how to refuse them instead."""
        where = listed or self.listed
        return (
            f"sslzoo: left out {len(self)} of the {self.total} image files of {self.source} that are not "
            f"readable ({unreadable_summary(self.files, 1)}); all are listed in {where}; --strict-images "
            "refuses them instead"
        )

    def refusal(self) -> str:
        """The one-line error of ``--strict-images``."""
        return (
            f"{self.source}: {len(self)} of its {self.total} image files are not readable "
            f"({unreadable_summary(self.files)}); remove or replace them, or drop --strict-images to leave "
            "them out."
        )


def _cache_dir(root: Path) -> Path:
    from zoo.datasets import cache_root

    return cache_root() / "folders" / hashlib.sha256(str(root).encode()).hexdigest()[:24]


@dataclass
class _Table:
    """Every image file found, readable or not (``mode`` is empty and ``problem`` says why for the unreadable)."""

    paths: list[str]
    sizes: list[int]
    mtimes: list[int]
    modes: list[str]
    problems: list[str]
    dir_mtimes: dict[str, int]

    def __len__(self) -> int:
        return len(self.paths)


def _load_cached(root: Path) -> _Table | None:
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
    return _Table(
        files["path"],
        [int(v) for v in files["size"]],
        [int(v) for v in files["mtime"]],
        files["mode"],
        files["problem"],
        dict(zip(dirs["dir"], dirs["mtime"])),
    )


def _save(root: Path, table: _Table, unreadable: list[tuple[str, str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from zoo.atomic import atomic_file, write_lines_atomic

    folder = _cache_dir(root)
    meta = {"version": str(INDEX_VERSION), "root": str(root)}
    files = pa.table(
        {
            "path": table.paths,
            "size": pa.array(table.sizes, pa.int64()),
            "mtime": pa.array(table.mtimes, pa.int64()),
            "mode": table.modes,
            "problem": table.problems,
        }
    ).replace_schema_metadata(meta)
    dirs = pa.table({"dir": list(table.dir_mtimes), "mtime": list(table.dir_mtimes.values())})
    # dirs first: a reader that finds files.parquet of this version finds a matching dirs.parquet.
    for name, data in (("dirs.parquet", dirs), ("files.parquet", files)):
        with atomic_file(folder / name) as tmp:
            pq.write_table(data, tmp)
    if unreadable:
        write_lines_atomic(folder / SKIPPED_LIST, skipped_lines(f"folder:{root}", unreadable))
    else:
        (folder / SKIPPED_LIST).unlink(missing_ok=True)


def skipped_lines(source: str, unreadable: list[tuple[str, str]]) -> list[str]:
    """The text of a ``skipped_files.txt``: a ``#`` line saying what it is, then ``path<TAB>reason`` lines."""
    head = f"# {len(unreadable)} image file(s) of {source} are not readable; left out (path, reason)\n"
    return [head, *(f"{path}\t{why}\n" for path, why in unreadable)]


def unreadable_summary(unreadable: list[tuple[str, str]], most: int = 3) -> str:
    """``"a.jpg: empty file; b.jpg: …; and 4 more"``: the first few unreadable files for a one-line message."""
    first = "; ".join(f"{path}: {why}" for path, why in unreadable[:most])
    return first + (f"; and {len(unreadable) - most} more" if len(unreadable) > most else "")


def _join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name


def _list_dir(root: Path, rel_dir: str, cached: _Table | None, trust: bool, subdirs_of, files_of):
    """(rel_dir, mtime, [(rel_path, size, mtime)], [rel_subdirs]) of one directory."""
    full = root / rel_dir if rel_dir else root
    mtime = os.stat(full).st_mtime_ns
    if trust and cached is not None and cached.dir_mtimes.get(rel_dir) == mtime:
        files = [(cached.paths[i], cached.sizes[i], cached.mtimes[i]) for i in files_of.get(rel_dir, ())]
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


def _verify(root: Path, rel_path: str, size: int) -> tuple[str | None, str]:
    """``(PIL mode, "")`` of a readable image, ``(None, what is wrong)`` of any other file."""
    from zoo.imaging import open_image

    if size == 0:
        return None, "empty file (0 bytes)"
    try:
        with open_image(root / rel_path, what=rel_path) as image:
            mode = image.mode
            if image.format == "JPEG":
                image.draft(None, (1, 1))  # decode at 1/8 scale: every byte read, a 64th of the pixels made
            image.load()
    except SslzooError as exc:
        with open(root / rel_path, "rb") as f:
            if f.read(64).lstrip().startswith(b"<"):
                return None, "a text (HTML/XML) file, not an image"  # a saved web page or an error page
        why = str(exc).rstrip(".")
        why = why[len(rel_path) + 1 :] if why.startswith(f"{rel_path} ") else why
        return None, why[3:] if why.startswith("is ") else why
    except Exception as exc:  # a corrupt file can make any decoder fail in its own way; each is "unreadable"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"cannot be decoded ({text})"
    return mode, ""


def index_folder(root: str | Path, rescan: bool = False, workers: int = 16) -> FolderIndex:
    """Index every image under ``root`` (any nesting), reusing the cached index for what did not change.

    Args:
        root: The folder.
        rescan: Stat every file even on a large tree (a file rewritten in place keeps its directory's time).
        workers: Threads listing directories and verifying files.

    Returns:
        The readable images; the unreadable ones are in :attr:`FolderIndex.unreadable`.

    Raises:
        SslzooError: no such folder, no image in it, no readable image, or more than
            :data:`MAX_UNREADABLE_SHARE` of them unreadable (named).
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
                p: (s, t, m, why)
                for p, s, t, m, why in zip(
                    cached.paths, cached.sizes, cached.mtimes, cached.modes, cached.problems
                )
            }
        verdicts: list[tuple[str | None, str]] = []
        todo = []
        for i, (path, size, mtime) in enumerate(found):
            hit = known.get(path)
            if hit is not None and hit[:2] == (size, mtime):
                verdicts.append((hit[2] or None, hit[3]))
            else:
                verdicts.append((None, ""))
                todo.append(i)
        for i, verdict in zip(todo, pool.map(lambda i: _verify(root, found[i][0], found[i][1]), todo)):
            verdicts[i] = verdict
    if not found:
        raise SslzooError(
            f"{source} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); put images in it, in any "
            "nesting, or one subfolder per class for labels."
        )
    table = _Table(
        [p for p, _, _ in found],
        [s for _, s, _ in found],
        [t for _, _, t in found],
        [m or "" for m, _ in verdicts],
        [why for _, why in verdicts],
        dir_mtimes,
    )
    unreadable = [(p, why) for p, (mode, why) in zip(table.paths, verdicts) if mode is None]
    if cached is None or todo or dir_mtimes != cached.dir_mtimes or table.paths != cached.paths:
        _save(root, table, unreadable)  # verdicts are kept even when the folder is refused below
    if len(unreadable) == len(found):
        raise SslzooError(
            f"{source}: none of its {len(found)} image file(s) is readable ({unreadable_summary(unreadable)}); "
            "check that it is the right folder, or remove or replace the files."
        )
    if len(unreadable) > MAX_UNREADABLE_SHARE * len(found):
        raise SslzooError(
            f"{source}: {len(unreadable)} of its {len(found)} image files are not readable "
            f"({unreadable_summary(unreadable)}), more than the {MAX_UNREADABLE_SHARE:.0%} sslzoo leaves out; "
            "remove or replace them."
        )
    readable = [i for i, (mode, _) in enumerate(verdicts) if mode is not None]
    digest = hashlib.sha256()
    for i in readable:
        path, size, mtime = found[i]
        digest.update(f"{path}\0{size}\0{mtime}\n".encode())
    return FolderIndex(
        root=root,
        paths=[found[i][0] for i in readable],
        sizes=np.asarray([found[i][1] for i in readable], dtype=np.int64),
        mtimes=np.asarray([found[i][2] for i in readable], dtype=np.int64),
        modes=[str(verdicts[i][0]) for i in readable],
        verified_now=len(todo),
        fingerprint=digest.hexdigest(),
        dir_mtimes=dir_mtimes,
        unreadable=unreadable,
        skipped_list=_cache_dir(root) / SKIPPED_LIST if unreadable else None,
    )
