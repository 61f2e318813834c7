"""Device names users give (``--device cuda``) checked once, with a one-line error where they do not exist."""

from __future__ import annotations

import torch

from zoo.errors import SslzooError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a :class:`torch.device` that exists here (``None`` or ``"auto"``: CUDA when available, else CPU).

    Raises:
        SslzooError: not a device name, or CUDA (or that GPU index) asked for where there is none.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise SslzooError(f"{device!r} is not a device; use cpu, cuda or cuda:N.") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SslzooError(
                f"--device {device} asks for CUDA, but none is available here; use --device cpu."
            )
        if resolved.index is not None and resolved.index >= count:
            raise SslzooError(f"--device {device}: this machine has {count} CUDA device(s) (cuda:0…).")
    elif resolved.type not in ("cpu", "mps", "xpu"):
        raise SslzooError(f"--device {device} is not supported here; use cpu or cuda.")
    return resolved
