"""Input checks shared by the protocols: features and labels in, float32/int64 tensors or one-line errors out."""

from __future__ import annotations

import numpy as np
import torch

from zoo.errors import SslzooError

ArrayLike = np.ndarray | torch.Tensor


def as_features(x: ArrayLike, name: str) -> torch.Tensor:
    """A float32 (N, D) tensor on the input's device, or a one-line error."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise SslzooError(f"{name} must be a 2-D (N, D) array of features, got shape {tuple(t.shape)}.")
    t = t.detach().float()
    # One reduction instead of an elementwise pass: NaN and ±inf propagate through a sum (a full check only if the
    # sum overflowed).
    if not torch.isfinite(t.sum()) and not torch.isfinite(t).all():
        raise SslzooError(f"{name} contains NaN or infinite values; check the encoder's output.")
    return t


def check_same_dim(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    """One-line error unless two (N, D) feature tensors share D (they must come from the same encoder)."""
    if a.shape[1] != b.shape[1]:
        raise SslzooError(
            f"{a_name} features have D={a.shape[1]} but {b_name} features D={b.shape[1]}; "
            "embed both with the same encoder."
        )


def as_labels(y: ArrayLike, n: int, name: str) -> torch.Tensor:
    """A (N,) int64 tensor of class indices 0..C-1, or a one-line error."""
    t = (y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))).detach().reshape(-1)
    if t.numel() != n:
        raise SslzooError(f"{name} has {t.numel()} labels for {n} feature rows; pass one label per row.")
    if t.is_floating_point() and not torch.equal(t, t.round()):
        raise SslzooError(f"{name} must hold integer class indices, got non-integer values.")
    t = t.long()
    if n and int(t.min()) < 0:
        raise SslzooError(f"{name} holds negative labels; class indices must be 0..C-1.")
    return t


def faiss_gpu_available() -> bool:
    """Whether the installed faiss was built with GPU support and sees a GPU (faiss-cpu never does)."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
