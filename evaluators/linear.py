"""Linear probe: multinomial logistic regression on frozen, L2-normalised features.

The classifier minimises the mean cross-entropy plus an L2 penalty on the weights (the bias is not penalised),

    L(W, b) = 1/N Σ_i CE(W x_i + b, y_i) + λ/2 ‖W‖²,

with full-batch L-BFGS in torch (strong-Wolfe line search) — the same convex problem scikit-learn's
``LogisticRegression(C=1/(λN))`` solves, on the cached features, in float32, on the GPU when one is there.

λ is chosen on a validation split carved from train (stratified, seeded), never on test: fit on the rest of
train for every λ in the grid (largest first, each fit warm-started from the previous), keep the λ with the best
validation accuracy (ties to the larger λ), then refit on all of train and score the test split once.

>>> import torch
>>> x = torch.randn(200, 8); y = (x[:, 0] > 0).long()
>>> linear_probe(x, y, x, y)["top1"] > 95
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evaluators._inputs import (
    ArrayLike,
    as_features,
    as_int,
    as_labels,
    as_positive_float,
    check_same_dim,
    dense_labels,
)
from zoo.devices import resolve_device
from zoo.errors import SslzooError

DEFAULT_WEIGHT_DECAYS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
SMALL_PROBLEM = 2**20  # feature entries below which one CPU thread is fastest


def fit_logistic_regression(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    weight_decay: float,
    *,
    max_iter: int = 200,
    tolerance_grad: float = 1e-5,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``mean CE(x W + b, y) + weight_decay/2 ‖W‖²`` with full-batch L-BFGS.

    Args:
        x: (N, D) float features on the device to fit on.
        y: (N,) int64 labels on the same device.
        num_classes: C.
        weight_decay: λ ≥ 0.
        max_iter: L-BFGS iterations.
        tolerance_grad: Stop when every gradient entry is below this (scikit-learn's ``tol`` plays this role).
        init: Optional ``(W (D, C), b (C,))`` to warm-start from.

    Returns:
        ``(W, b)``, detached.
    """
    if init is None:
        weight = torch.zeros(x.shape[1], num_classes, device=x.device, dtype=x.dtype)
        bias = torch.zeros(num_classes, device=x.device, dtype=x.dtype)
    else:
        weight, bias = (t.detach().clone() for t in init)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=tolerance_grad,
        tolerance_change=1e-8,
        line_search_fn="strong_wolfe",
    )
    rows = torch.arange(len(y), device=x.device)

    def closure() -> torch.Tensor:
        # Loss and its gradient in closed form (softmax minus one-hot), cheaper than autograd for this model:
        # ∂L/∂W = Xᵀ(P − Y)/N + λW,  ∂L/∂b = Σ_i (P − Y)_i / N.
        with torch.no_grad():
            log_p = torch.log_softmax(x @ weight + bias, dim=1)
            loss = -log_p[rows, y].mean() + 0.5 * weight_decay * weight.pow(2).sum()
            residual = log_p.exp_()
            residual[rows, y] -= 1.0
            residual /= len(y)
            weight.grad = torch.addmm(weight, x.T, residual, beta=weight_decay)
            bias.grad = residual.sum(dim=0)
        return loss

    # Small problems on CPU: thread start-up and sync cost more than the matmuls (and hurt badly on busy machines).
    threads = torch.get_num_threads()
    if x.device.type == "cpu" and x.numel() < SMALL_PROBLEM:
        torch.set_num_threads(1)
    try:
        opt.step(closure)
    finally:
        torch.set_num_threads(threads)
    return weight.detach(), bias.detach()


def _split_validation(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (fit, validation) rows: stratified when every class has at least two rows."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    n_val = max(1, round(val_fraction * len(y)))
    if stratify is not None and n_val < np.count_nonzero(counts):  # stratifying needs one row per class
        n_val = np.count_nonzero(counts)
    fit_idx, val_idx = train_test_split(idx, test_size=n_val, stratify=stratify, random_state=seed)
    return np.sort(fit_idx), np.sort(val_idx)


def _accuracy(
    x: torch.Tensor, y: torch.Tensor, params: tuple[torch.Tensor, torch.Tensor], topk: int = 1
) -> float:
    logits = x @ params[0] + params[1]
    ranking = logits.topk(min(topk, logits.shape[1]), dim=1).indices
    return 100.0 * ranking.eq(y.view(-1, 1)).any(dim=1).float().mean().item()


def _sequence(values: Any) -> list[Any]:
    try:
        return list(values)
    except TypeError:
        raise SslzooError(f"weight_decays must be a sequence of numbers, got {values!r}.") from None


def linear_probe(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    test_feats: ArrayLike,
    test_labels: ArrayLike,
    *,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
    val_fraction: float = 0.2,
    max_iter: int = 200,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Linear-probe accuracy of frozen features, with λ chosen on a validation split carved from train.

    Args:
        train_feats: (N, D) train features (L2-normalised here).
        train_labels: (N,) integer labels.
        test_feats: (M, D) test features.
        test_labels: (M,) integer labels.
        weight_decays: Grid of λ (L2 penalty on the weights, per the mean loss) tried on the validation split.
        val_fraction: Share of train held out to choose λ.
        max_iter: L-BFGS iterations per fit.
        seed: Seed of the validation split.
        device: Where to fit (default: CUDA when available, else CPU).

    Returns:
        ``{"top1": %, "top5": %, "weight_decay": chosen λ, "val_top1": % at that λ,
        "predictions": (M,) int64 ndarray}``.
    """
    weight_decays = [
        as_positive_float(wd, "weight decay", allow_zero=True) for wd in _sequence(weight_decays)
    ]
    if not weight_decays:
        raise SslzooError("give at least one weight decay for the linear probe's grid.")
    if not as_positive_float(val_fraction, "val_fraction") < 1:
        raise SslzooError(f"val_fraction must be between 0 and 1, got {val_fraction}.")
    max_iter = as_int(max_iter, "max_iter", 1)
    seed = as_int(seed, "seed", 0)
    train = as_features(train_feats, "train_feats")
    test = as_features(test_feats, "test_feats")
    check_same_dim(train, "train", test, "test")
    if test.shape[0] == 0 or train.shape[0] < 2:
        raise SslzooError("the linear probe needs at least two train rows and one test row.")
    y_train = as_labels(train_labels, train.shape[0], "train_labels").cpu()
    y_test = as_labels(test_labels, test.shape[0], "test_labels").cpu()
    # Any integer ids (10⁹, negative, with gaps) become 0..C-1 here; predictions are mapped back below.
    (y_train, y_test), classes = dense_labels(y_train, y_test)
    num_classes = len(classes)
    device = resolve_device(device)

    x_train = F.normalize(train, dim=1).to(device)
    x_test = F.normalize(test, dim=1).to(device)
    # Centring is free preconditioning: the unpenalised bias absorbs any constant shift (W(x - μ) + b =
    # Wx + b - Wμ), so the optimum's predictions are unchanged, but L-BFGS converges faster on centred inputs.
    shift = x_train.mean(dim=0)
    x_train, x_test = x_train - shift, x_test - shift
    y_train, y_test = y_train.to(device), y_test.to(device)

    fit_idx, val_idx = (
        torch.from_numpy(i).to(device) for i in _split_validation(y_train.cpu().numpy(), val_fraction, seed)
    )
    x_fit, y_fit, x_val, y_val = x_train[fit_idx], y_train[fit_idx], x_train[val_idx], y_train[val_idx]

    # Regularisation path: strongest penalty first, each fit warm-started from the previous solution.
    best: tuple[float, float, tuple[torch.Tensor, torch.Tensor]] | None = None
    params = None
    for wd in sorted(weight_decays, reverse=True):
        params = fit_logistic_regression(x_fit, y_fit, num_classes, wd, max_iter=max_iter, init=params)
        val_top1 = _accuracy(x_val, y_val, params)
        if best is None or val_top1 > best[1]:
            best = (wd, val_top1, params)
    assert best is not None
    wd, val_top1, params = best
    params = fit_logistic_regression(x_train, y_train, num_classes, wd, max_iter=max_iter, init=params)
    logits = x_test @ params[0] + params[1]
    return {
        "top1": _accuracy(x_test, y_test, params),
        "top5": _accuracy(x_test, y_test, params, topk=5),
        "weight_decay": wd,
        "val_top1": val_top1,
        "predictions": classes[logits.argmax(dim=1).cpu()].numpy(),
    }
