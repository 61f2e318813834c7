"""Atomic writes: readers see the old file or folder or the whole new one, never half of one.

Every package writes results, caches and checkpoints through these, so a killed process loses nothing it had
finished and leaves nothing half-written behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_folder(target: str | Path, replace_existing: bool = True) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; on success it becomes ``target`` in one rename.

    Args:
        target: The folder to (re)create.
        replace_existing: If False and ``target`` appeared meanwhile (another process finished first), keep that
            one and discard ours.

    >>> with atomic_folder("/tmp/sslzoo-doctest-folder") as tmp:
    ...     _ = (tmp / "a.txt").write_text("done")
    >>> (Path("/tmp/sslzoo-doctest-folder") / "a.txt").read_text()
    'done'
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            if not replace_existing:
                shutil.rmtree(tmp, ignore_errors=True)
                return
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success it replaces ``path`` in one rename.

    >>> with atomic_file("/tmp/sslzoo-doctest.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> Path("/tmp/sslzoo-doctest.txt").read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure_atomic(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG to ``path`` atomically, close it, and return the path."""
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (non-JSON values are written with ``str``)."""
    with atomic_file(path) as tmp, tmp.open("w") as f:
        json.dump(data, f, indent=2, sort_keys=False, default=str)
        f.write("\n")


def write_lines_atomic(path: str | Path, lines: Iterable[str]) -> None:
    """Write text ``lines`` (each ending in a newline) to ``path`` atomically."""
    with atomic_file(path) as tmp, tmp.open("w") as f:
        f.writelines(lines)


def save_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` to ``path`` atomically."""
    with atomic_file(path) as tmp, tmp.open("wb") as f:
        np.save(f, array)
