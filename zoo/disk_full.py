"""A full disk, said in one line: which file could not be written, how much it needs, how much is free.

Every writer (checkpoints, exports, feature caches, leaderboard records, the app's tiles) writes through
:mod:`zoo.atomic`, which keeps the previous version in place when a write fails and turns the failure into a
:class:`DiskFullError` here. The writers' libraries report a full disk in several ways — Python's
``OSError(ENOSPC)``, safetensors' ``SafetensorError("… No space left on device (os error 28)")``, ``torch.save``'s
``RuntimeError`` with the ``OSError`` as its context — so :func:`is_disk_full` looks through the exception chain.

>>> import errno
>>> is_disk_full(RuntimeError("write failed")), is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
(False, True)
>>> print(DiskFullError("runs/a/checkpoints/last.pt", needed=3 * 2**20, free=2**19, at_least=True))
no space left on device writing runs/a/checkpoints/last.pt: it needs more than 3.0 MB and 512.0 kB are free; the previous version is unchanged. Free some space and run the command again.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from zoo.errors import SslzooError

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# How Rust (safetensors) and C++ (torch) writers spell the same errors once they have become text.
FULL_TEXTS = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it was raised from or during, is a full disk or an exceeded quota."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFullError):
            return True
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if any(text in str(exc).lower() for text in FULL_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def format_size(n: int) -> str:
    """``n`` bytes in B, kB, MB or GB (powers of 1024), one decimal.

    >>> format_size(0), format_size(1536), format_size(5 * 2**30)
    ('0 B', '1.5 kB', '5.0 GB')
    """
    if n < 1024:
        return f"{n} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1024
        if n < 1024 or unit == "TB":
            break
    return f"{n:.1f} {unit}"


def free_bytes(path: str | Path) -> int | None:
    """The bytes an unprivileged writer may still use on ``path``'s file system (its nearest existing folder)."""
    path = Path(path)
    for folder in (path, *path.parents):
        try:
            st = os.statvfs(folder)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def disk_usage(path: str | Path) -> int:
    """Bytes held by the file ``path`` or by every file under the folder ``path`` (0 if it does not exist)."""
    path = Path(path)
    try:
        if path.is_file():
            return path.stat().st_size
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    except OSError:
        pass
    return 0


class DiskFullError(SslzooError):
    """A write that did not fit: the path it was for, the space it needs, the space free; nothing was replaced."""

    def __init__(
        self,
        path: str | Path,
        needed: int = 0,
        free: int | None = None,
        at_least: bool = False,
        advice: str = "Free some space and run the command again.",
    ) -> None:
        self.path, self.needed, self.free, self.at_least, self.advice = (
            Path(path),
            needed,
            free,
            at_least,
            advice,
        )
        free_text = "" if free is None else f" and {format_size(free)} are free"
        if needed:
            need = f"it needs {'more than' if at_least else 'about'} {format_size(needed)}{free_text}"
        else:
            need = f"{format_size(free)} are free" if free is not None else "the disk is full"
        super().__init__(
            f"no space left on device writing {path}: {need}; the previous version is unchanged. {advice}"
        )

    def with_advice(self, advice: str) -> DiskFullError:
        """The same error with another last sentence (e.g. how to continue a run)."""
        return DiskFullError(self.path, self.needed, self.free, self.at_least, advice)


def disk_full_error(path: str | Path, written: int, previous: int) -> DiskFullError:
    """The error for ``path`` after a write that filled the disk with ``written`` bytes of it (now removed).

    What it needs is at least what was written when the disk filled; where an earlier version exists, about as
    much as that one (a checkpoint or an export of the same model is about the same size each time).
    """
    free = free_bytes(path)
    if previous > written:
        return DiskFullError(path, needed=previous, free=free)
    return DiskFullError(path, needed=written, free=free, at_least=True)


def raw_disk_full(exc: BaseException, advice: str | None = None) -> DiskFullError:
    """A :class:`DiskFullError` for a full disk met outside :mod:`zoo.atomic` (an append, a download): the file
    the ``OSError`` names, and the space free there."""
    if isinstance(exc, DiskFullError):
        return exc if advice is None else exc.with_advice(advice)
    path = getattr(exc, "filename", None) or "a file"
    extra = {} if advice is None else {"advice": advice}
    return DiskFullError(path, free=free_bytes(path) if path != "a file" else None, **extra)
