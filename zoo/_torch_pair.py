"""torch and torchvision must be a matching pair; `import zoo` checks it from the installed versions alone.

A torchvision built for another torch fails late and obscurely: at its first C++ operator ("operator
torchvision::nms does not exist"), or with undefined symbols, deep in `import timm`. Each torchvision release is built
for one torch minor: torchvision 0.N+15 for torch 2.N (0.29 ↔ 2.14, 0.24 ↔ 2.9). The check reads both versions
from the installed metadata (no torch import: ``import zoo`` stays cheap) and names what to install in one line.
A same-numbered pair can still be two builds (a ``+cpu`` torch beside PyPI's CUDA torchvision): that shows as the
operator error at torchvision's import, which :func:`torchvision_import_error` turns into the same kind of line.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

from zoo.errors import SslzooError

__all__ = ["check_torch_pair", "torchvision_for", "torchvision_import_error"]

#: torchvision's minor version is torch's plus this, for torch 2.x.
_MINOR_OFFSET = 15


def _major_minor(text: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def torchvision_for(torch_version: str) -> str | None:
    """The torchvision minor series built for ``torch_version`` (``"2.14.1+cu128"`` → ``"0.29"``); None if unknown.

    >>> torchvision_for("2.9.1")
    '0.24'
    """
    parsed = _major_minor(torch_version)
    if parsed is None or parsed[0] != 2:  # torch 3 will have its own numbering: no guess
        return None
    return f"0.{parsed[1] + _MINOR_OFFSET}"


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def check_torch_pair() -> None:
    """Raise :class:`SslzooError` when the installed torch and torchvision are not built for each other.

    Silent when either is missing (their own import error says so) or a version is not of the known form.
    """
    torch_version, vision_version = _installed("torch"), _installed("torchvision")
    if torch_version is None or vision_version is None:
        return
    expected = torchvision_for(torch_version)
    vision = _major_minor(vision_version)
    if expected is None or vision is None or f"{vision[0]}.{vision[1]}" == expected:
        return
    wanted_torch = f"2.{vision[1] - _MINOR_OFFSET}" if vision[0] == 0 and vision[1] > _MINOR_OFFSET else "?"
    raise SslzooError(
        f"torch {torch_version} and torchvision {vision_version} are not a pair (torchvision {vision[0]}.{vision[1]}"
        f" is built for torch {wanted_torch}): install the torchvision for your torch,"
        f" pip install 'torchvision=={expected}.*' (from the index your torch came from)"
    )


def torchvision_import_error(exc: BaseException) -> SslzooError | None:
    """The one-line error for torchvision's failed import when its C++ operators are not of this torch's build.

    None for any other exception, which then propagates as it is.
    """
    if not isinstance(exc, RuntimeError) or "operator torchvision::" not in str(exc):
        return None
    torch_version, vision_version = _installed("torch") or "?", _installed("torchvision") or "?"
    return SslzooError(
        f"torchvision {vision_version} does not load beside torch {torch_version} ({exc}): they are different builds"
        f" (a CPU torch with a CUDA torchvision, say); install torchvision from the index your torch came from,"
        f" pip install 'torchvision=={torchvision_for(torch_version) or vision_version}.*'"
    )
