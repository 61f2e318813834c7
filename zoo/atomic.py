"""Atomic writes: readers see the old file or folder or the whole new one, never half of one.

Every package writes results, caches and checkpoints through these, so a killed process loses nothing it had
finished and leaves nothing half-written behind. Three promises beyond atomicity:

* **The umask is honoured.** ``mkstemp``/``mkdtemp`` create 0600/0700 entries whatever the umask; the result gets
  the mode an ordinary ``open``/``mkdir`` would have given (a replaced file keeps its mode), so weights, records
  and caches can be shared the way the user's umask says.
* **Temporary names carry the writer's process id** (``.NAME-PID-XXXXXXXX``), so the next writer of the same
  target removes what a killed writer left (its process is gone) without touching a live writer's files.
* **A full disk keeps the old version** and is one line: whatever way the writing library reports it
  (:func:`zoo.disk_full.is_disk_full`), the temporary is removed and a :class:`~zoo.disk_full.DiskFullError` names
  the target, the space it needs and the space free.
* **A replaced folder is swapped, not deleted first**: one ``renameat2(RENAME_EXCHANGE)`` puts the new folder in
  place and the old one where the new one was, then the old one is removed. Where the file system cannot exchange,
  the old folder is moved aside and the new one renamed in; a kill between the two is undone by the next writer
  (:func:`clean_stale` puts the old folder back).

Whether a folder *may* be replaced is the caller's decision (see :func:`zoo.export.check_destination`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoo.disk_full import disk_full_error, disk_usage, is_disk_full

_OLD = "old"  # marks a folder moved aside while its replacement is renamed in


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: read by setting (not thread-safe for that instant) and restore
    os.umask(mask)
    return mask


def _temp_prefix(name: str) -> str:
    return f".{name}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale(target: str | Path, suffix: str = "") -> list[Path]:
    """Remove the temporaries a killed writer of ``target`` left beside it; restore a folder it had moved aside.

    Only names this module makes (``.NAME-PID-XXXXXXXX[SUFFIX]``, ``.NAME-PID-old``) of processes that no longer
    exist are touched. Returns what was removed or restored.
    """
    target = Path(target)
    parent = target.parent
    stem = target.name[: -len(suffix)] if suffix and target.name.endswith(suffix) else target.name
    pattern = re.compile(rf"^\.{re.escape(stem)}-(\d+)-(?:([a-z0-9_]{{8}}){re.escape(suffix)}|({_OLD}))$")
    if not parent.is_dir():
        return []
    touched = []
    for path in parent.glob(f".{stem}-*"):
        match = pattern.match(path.name)
        if not match or _pid_alive(int(match.group(1))):
            continue
        if match.group(3) and not target.exists():
            os.replace(path, target)  # killed between the two renames: the old folder is still the good one
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        touched.append(path)
    return touched


def _renameat2():
    """libc's ``renameat2`` (Linux ≥ 3.15, glibc ≥ 2.28), or None."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.renameat2
    except (OSError, AttributeError):
        return None


def _publish(src: Path, dst: Path, exchange: bool = False) -> bool:
    """The one rename that makes a write visible: ``src`` replaces ``dst``.

    With ``exchange``, swap the two atomically (``RENAME_EXCHANGE``) so readers never see ``dst`` missing, and
    return True; return False where the system cannot (the caller then moves ``dst`` aside first).
    """
    if not exchange:
        os.replace(src, dst)
        return True
    rename = _renameat2() if os.name == "posix" else None
    if rename is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    # Non-zero (EINVAL/ENOSYS): a file system without exchange.
    return rename(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_exchange) == 0


def _apply_umask(folder: Path) -> None:
    """Give what the writers put in ``folder`` the modes the umask says (safetensors, for one, writes 0600)."""
    umask = current_umask()
    for path in folder.rglob("*"):
        if path.is_symlink():
            continue
        executable = path.is_dir() or path.stat().st_mode & 0o111
        os.chmod(path, (0o777 if executable else 0o666) & ~umask)


def replace_folder(tmp: Path, target: Path) -> None:
    """Put the finished folder ``tmp`` (beside ``target``) in place of ``target``: the last step of
    :func:`atomic_folder`, for writers that must make their temporary folder themselves (one shared by ranks)."""
    _apply_umask(tmp)
    if not (target.exists() or target.is_symlink()):
        _publish(tmp, target)
        return
    if _publish(tmp, target, exchange=True):  # one atomic swap: tmp now holds the old folder
        shutil.rmtree(tmp, ignore_errors=True)
        return
    aside = target.parent / f"{_temp_prefix(target.name)}{_OLD}"
    os.replace(target, aside)
    _publish(tmp, target)
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(target: str | Path, replace_existing: bool = True) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; on success it becomes ``target`` in one rename.

    Args:
        target: The folder to (re)create. An existing one is replaced: moved aside, the new one renamed in, then
            the old one removed. Check first that it is yours to replace.
        replace_existing: If False and ``target`` appeared meanwhile (another process finished first), keep that
            one and discard ours.

    >>> with atomic_folder("/tmp/sslzoo-doctest-folder") as tmp:
    ...     _ = (tmp / "a.txt").write_text("done")
    >>> (Path("/tmp/sslzoo-doctest-folder") / "a.txt").read_text()
    'done'
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target.name), dir=target.parent))
    os.chmod(tmp, 0o777 & ~current_umask())
    try:
        yield tmp
        if not replace_existing and (target.exists() or target.is_symlink()):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        replace_folder(tmp, target)
    except BaseException as exc:
        written = disk_usage(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):
            raise disk_full_error(target, written, disk_usage(target)) from None
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success it replaces ``path`` in one rename.

    >>> with atomic_file("/tmp/sslzoo-doctest.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> Path("/tmp/sslzoo-doctest.txt").read_text()
    'done'
    """
    path = check_file_destination(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path, suffix=path.suffix)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.stem), suffix=path.suffix, dir=path.parent)
    try:
        # A replaced file keeps its mode; a new one gets what open() would give under the umask.
        mode = path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~current_umask()
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    try:
        yield Path(tmp)
        _publish(Path(tmp), path)
    except BaseException as exc:
        written = disk_usage(tmp)
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full_error(path, written, disk_usage(path)) from None
        raise


def check_file_destination(path: str | Path, option: str = "the output") -> Path:
    """``path`` as a Path, or a one-line error when it names an existing folder (a file is written there)."""
    from zoo.errors import SslzooError

    path = Path(path).expanduser()
    if path.is_dir():
        raise SslzooError(
            f"{option} {path} is a folder; give a file path (e.g. {path / 'out'}{path.suffix})."
        )
    existing = next((p for p in path.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise SslzooError(f"{option} {path}: {existing} is a file, not a folder; give another path.")
    return path


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is a hidden (dot) file, as every temporary of this module is: readers skip these."""
    return Path(path).name.startswith(".")


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
