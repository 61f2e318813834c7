"""Self-Labelling's pseudo-labels: equipartitioned optimal transport solved by Sinkhorn-Knopp.

Asano et al., "Self-labelling via simultaneous clustering and representation learning" (ICLR 2020), Sec. 3:
find ``Q`` in the transport polytope ``U(r, c) = {Q ≥ 0 : Q 1 = 1/N, Qᵀ 1 = 1/K}`` maximising
``⟨Q, log P⟩ + (1/λ) H(Q)`` (Eq. 7); the solution is ``Q = diag(α) P^λ diag(β)`` (Eq. 8), found by alternately
rescaling rows and columns.

>>> import torch
>>> logits = torch.randn(600, 6, generator=torch.Generator().manual_seed(0))
>>> plan = sinkhorn_knopp(logits, lam=10.0)
>>> bool(torch.allclose(plan.sum(1), torch.full((600,), 1 / 600, dtype=torch.float64), rtol=1e-4))
True
>>> labels = balanced_assignment(plan)
>>> torch.bincount(labels).tolist()
[100, 100, 100, 100, 100, 100]
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator

import torch

#: Absorb the scaling vectors into the kernel once they leave [1/BOUND, BOUND], so float64 never overflows.
_ABSORB_BOUND = 1e100
#: Below this many kernel entries a matrix-vector product is too small to share between threads.
_SINGLE_THREAD_NUMEL = 1 << 20


@contextlib.contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    """Temporarily set torch's intra-op threads: tiny threaded BLAS calls stall when the cores are busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def sinkhorn_knopp(
    logits: torch.Tensor, lam: float = 25.0, n_iters: int = 1000, tol: float = 1e-6
) -> torch.Tensor:
    """Transport plan with uniform marginals for scores ``P = softmax(logits)`` raised to ``λ`` (SeLa, Eq. 8).

    Stable for any ``N`` and ``λ``: the kernel ``P^λ`` is built in log space and normalised once by a log-domain
    row and column step (a class whose scores all underflow in ``exp`` still gets its ``1/K``), then rows and
    columns are rescaled in float64 by matrix-vector products; scalings that grow beyond ``1e100`` are absorbed
    into the kernel (Schmitzer's stabilisation).

    Args:
        logits: ``(N, K)`` classifier outputs.
        lam: ``λ``, the inverse entropic regularisation (SeLa uses 25); larger is sharper and slower.
        n_iters: Maximum number of row+column rescalings.
        tol: Stop when every row sum is within a relative ``tol`` of ``1/N`` (column sums are exact after
            each column step). When ``n_iters`` rescalings do not get there, a :class:`SinkhornWarning` says
            how far off the rows still are. ``0`` runs exactly ``n_iters`` rescalings, without the check.

    Returns:
        ``(N, K)`` float64 plan ``Q`` with column sums ``1/K`` and row sums ``1/N`` (to ``tol``).
    """
    n, k = logits.shape
    log_r, log_c = -math.log(n), -math.log(k)
    # log P^λ, then one log-domain Sinkhorn step, all in place to keep one (N, K) float64 buffer at a time.
    kernel = torch.log_softmax(logits.detach().to(torch.float64), dim=1).mul_(lam)
    kernel.sub_(torch.logsumexp(kernel, dim=1, keepdim=True)).add_(log_r)
    kernel.sub_(torch.logsumexp(kernel, dim=0, keepdim=True)).add_(log_c)
    kernel.exp_()
    small = kernel.numel() < _SINGLE_THREAD_NUMEL and kernel.device.type == "cpu"
    with _intra_op_threads(1) if small else contextlib.nullcontext():
        plan, row_error = _scale_to_marginals(kernel, n_iters, tol)
    if tol > 0 and not row_error < tol:
        warnings.warn(
            f"Sinkhorn-Knopp stopped after {n_iters} rescalings with a row sum off 1/N by {row_error:.2g} "
            f"(relative; tolerance {tol:g}): the plan is not yet equipartitioned. Raise n_iters "
            "(selflabel: --sinkhorn-iters) or lower λ (--lam).",
            SinkhornWarning,
            stacklevel=2,
        )
    return plan


class SinkhornWarning(RuntimeWarning):
    """Sinkhorn-Knopp ran out of iterations before its marginals reached the tolerance."""


def _scale_to_marginals(kernel: torch.Tensor, n_iters: int, tol: float) -> tuple[torch.Tensor, float]:
    """Alternate row and column rescaling of a positive ``(N, K)`` kernel, in place (Sinkhorn-Knopp).

    Returns the plan and its largest relative row-sum error (column sums are exact).
    """
    n, k = kernel.shape
    v = torch.ones(k, dtype=torch.float64, device=kernel.device)
    kv = kernel @ v
    row_error = math.inf
    for _ in range(n_iters):
        u = (1.0 / n) / kv
        # uᵀK as a (1, N) @ (N, K) product: BLAS's transposed matrix-vector kernel stalls on busy cores.
        v = (1.0 / k) / (u[None, :] @ kernel)[0]
        kv = kernel @ v
        row_error = float((u * kv * n - 1).abs().max()) if tol > 0 else math.nan
        if row_error < tol:
            break
        if max(u.max(), v.max(), 1 / u.min(), 1 / v.min()) > _ABSORB_BOUND:
            kernel.mul_(u[:, None]).mul_(v[None, :])
            v = torch.ones_like(v)
            kv = kernel @ v
    return kernel.mul_(u[:, None]).mul_(v[None, :]), row_error


@torch.no_grad()
def balanced_assignment(plan: torch.Tensor) -> torch.Tensor:
    """Round an ``(N, K)`` transport plan to hard labels, each class receiving ``⌊N/K⌋`` or ``⌈N/K⌉`` points.

    Greedy rounding in rounds: every unassigned point proposes its best class that still has room; each class
    keeps its strongest proposers up to its capacity. The ``N mod K`` larger capacities go to the classes most
    points prefer. Each round fills at least one class, so it ends within ``K`` rounds (usually a few).

    Returns:
        ``(N,)`` int64 labels.
    """
    n, k = plan.shape
    base, extra = divmod(n, k)
    capacity = torch.full((k,), base, dtype=torch.long, device=plan.device)
    first_choice = plan.argmax(dim=1)
    if extra:
        demand = torch.bincount(first_choice, minlength=k)
        capacity[torch.argsort(demand, descending=True, stable=True)[:extra]] += 1
    labels = torch.full((n,), -1, dtype=torch.long, device=plan.device)
    todo = torch.arange(n, device=plan.device)
    choice, value = first_choice, plan.gather(1, first_choice[:, None])[:, 0]
    while len(todo):
        # Order proposals by class, strongest first within a class; rank within class decides acceptance.
        order = torch.argsort(value, descending=True, stable=True)
        order = order[torch.argsort(choice[order], stable=True)]
        cls = choice[order]
        counts = torch.bincount(cls, minlength=k)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(order), device=plan.device) - starts[cls]
        accepted = rank < capacity[cls]
        labels[todo[order[accepted]]] = cls[accepted]
        capacity -= torch.bincount(cls[accepted], minlength=k)
        todo = todo[order[~accepted]]
        if len(todo):
            scores = plan[todo].clone()
            scores[:, capacity == 0] = -math.inf
            value, choice = scores.max(dim=1)
    return labels


def sinkhorn_labels(
    logits: torch.Tensor, lam: float = 25.0, n_iters: int = 1000, tol: float = 1e-6
) -> torch.Tensor:
    """SeLa's pseudo-labels: ``(N, K)`` logits → ``(N,)`` equipartitioned hard labels from the transport plan."""
    return balanced_assignment(sinkhorn_knopp(logits, lam=lam, n_iters=n_iters, tol=tol))
