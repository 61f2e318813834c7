"""Input checks shared by the protocols: features and labels in, float32/int64 tensors or one-line errors out.

Labels may be any integers (class ids of 10⁹, negative ids, gaps): :func:`dense_labels` maps them to 0..C-1
for the protocols and back for the predictions, so nothing is ever sized by the largest label value.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

from zoo.errors import SslzooError

ArrayLike = np.ndarray | torch.Tensor
_EXACT_FLOAT_INTEGERS = 2.0**53  # beyond this a float label is not a trustworthy integer


def _as_array(x: Any, name: str, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError):  # ragged nested lists
        raise SslzooError(f"{name} is not a rectangular array of {what}.") from None
    if arr.dtype.kind not in "biuf":
        raise SslzooError(
            f"{name} must hold numbers ({what}), got {arr.dtype} values"
            + (" (strings: map class names to integer ids first)." if arr.dtype.kind in "USO" else ".")
        )
    if arr.dtype == np.uint64:
        arr = arr.astype(np.float64)  # torch has no general uint64; large ids are checked below
    return torch.as_tensor(arr)


def as_features(x: ArrayLike, name: str) -> torch.Tensor:
    """A float32 (N, D) tensor on the input's device, or a one-line error."""
    t = _as_array(x, name, "features")
    if t.is_complex():
        raise SslzooError(f"{name} must hold real numbers, got complex values.")
    if t.ndim != 2:
        raise SslzooError(f"{name} must be a 2-D (N, D) array of features, got shape {tuple(t.shape)}.")
    if t.shape[1] == 0:  # faiss aborts the process on D = 0
        raise SslzooError(
            f"{name} has 0 feature dimensions (shape {tuple(t.shape)}); check the encoder's output."
        )
    t = t.float()
    # One reduction instead of an elementwise pass: NaN and ±inf propagate through a sum (a full check only if the
    # sum overflowed).
    if not torch.isfinite(t.sum()) and not torch.isfinite(t).all():
        raise SslzooError(
            f"{name} contains NaN or infinite values (or values beyond float32); check the encoder."
        )
    return t


def check_same_dim(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    """One-line error unless two (N, D) feature tensors share D (they must come from the same encoder)."""
    if a.shape[1] != b.shape[1]:
        raise SslzooError(
            f"{a_name} features have D={a.shape[1]} but {b_name} features D={b.shape[1]}; "
            "embed both with the same encoder."
        )


def as_labels(y: ArrayLike, n: int, name: str) -> torch.Tensor:
    """A (N,) int64 tensor of integer labels (any values; see :func:`dense_labels`), or a one-line error."""
    t = _as_array(y, name, "integer class ids").reshape(-1)
    if t.numel() != n:
        raise SslzooError(f"{name} has {t.numel()} labels for {n} feature rows; pass one label per row.")
    if t.is_complex():
        raise SslzooError(f"{name} must hold integer class ids, got complex values.")
    if t.is_floating_point():
        t = t.double()
        if not torch.isfinite(t).all():
            raise SslzooError(f"{name} holds NaN or infinite labels; every row needs an integer class id.")
        if not torch.equal(t, t.round()):
            raise SslzooError(f"{name} must hold integer class ids, got non-integer values.")
        if n and float(t.abs().max()) >= _EXACT_FLOAT_INTEGERS:
            raise SslzooError(f"{name} holds float labels beyond 2^53; pass integer ids (int64).")
    return t.long()


def dense_labels(*labels: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Map several label tensors jointly onto 0..C-1 (C = distinct values); also return the (C,) sorted values.

    Labels already 0..C-1 map to themselves, so ``classes[dense]`` gives back the input.

    >>> (a, b), classes = dense_labels(torch.tensor([7, 10**9]), torch.tensor([10**9]))
    >>> a.tolist(), b.tolist(), classes.tolist()
    ([0, 1], [1], [7, 1000000000])
    """
    joined = torch.cat([t.reshape(-1).cpu() for t in labels])
    classes, inverse = torch.unique(joined, sorted=True, return_inverse=True)
    out, start = [], 0
    for t in labels:
        out.append(inverse[start : start + t.numel()].to(t.device))
        start += t.numel()
    return out, classes


def as_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int ≥ ``minimum`` (bools and non-integral numbers refused), or a one-line error."""
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise SslzooError(f"{name} must be a whole number of at least {minimum}, got {value!r}.")
    return int(value)


def as_positive_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (≥ 0 with ``allow_zero``), or a one-line error."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if not ok or float(value) < 0 or (float(value) == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "more than 0"
        raise SslzooError(f"{name} must be a finite number {bound}, got {value!r}.")
    return float(value)


def faiss_gpu_available() -> bool:
    """Whether the installed faiss was built with GPU support and sees a GPU (faiss-cpu never does)."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
