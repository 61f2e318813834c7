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
from dataclasses import dataclass

import torch
import torch.distributed as dist

from trainers.clustering.distributed import all_gather_rows, all_reduce_, is_distributed

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
    logits: torch.Tensor, lam: float = 25.0, n_iters: int = 1000, tol: float = 1e-6, distributed: bool = False
) -> torch.Tensor:
    """Transport plan with uniform marginals for scores ``P = softmax(logits)`` raised to ``λ`` (SeLa, Eq. 8).

    Stable for any ``N`` and ``λ``: the kernel ``P^λ`` is built in log space and normalised once by a log-domain
    row and column step (a class whose scores all underflow in ``exp`` still gets its ``1/K``), then rows and
    columns are rescaled by matrix-vector products summed in float64; scalings that grow beyond ``1e100`` are
    absorbed into the kernel (Schmitzer's stabilisation). The kernel itself is kept in float32 (half the memory;
    a relative rounding of 2⁻²⁴ per entry) and read in float64 blocks of at most 64 MB.

    Args:
        logits: ``(N, K)`` classifier outputs; with ``distributed``, this rank's rows of the ``N`` (any split).
        lam: ``λ``, the inverse entropic regularisation (SeLa uses 25); larger is sharper and slower.
        n_iters: Maximum number of row+column rescalings.
        tol: Stop when every row sum is within a relative ``tol`` of ``1/N`` (column sums are exact after
            each column step). When ``n_iters`` rescalings do not get there, a :class:`SinkhornWarning` says
            how far off the rows still are. ``0`` runs exactly ``n_iters`` rescalings, without the check.
        distributed: Under ``torch.distributed``, solve one problem over all ranks' rows (only K-length sums
            and a few scalars cross ranks; see :func:`sinkhorn_labels`). Call it on every rank.

    Returns:
        ``(N, K)`` float64 plan ``Q`` with column sums ``1/K`` and row sums ``1/N`` (to ``tol``): this rank's rows.
    """
    return _solve(logits, lam, n_iters, tol, distributed).dense()


class SinkhornWarning(RuntimeWarning):
    """Sinkhorn-Knopp ran out of iterations before its marginals reached the tolerance."""


#: Rows of a kernel block converted to float64 at a time: at most 64 MB of float64 per block.
_BLOCK_BYTES = 64 << 20


def _blocks(n: int, k: int) -> Iterator[slice]:
    step = max(1, _BLOCK_BYTES // (8 * max(k, 1)))
    return (slice(start, min(start + step, n)) for start in range(0, n, step))


@dataclass
class _Plan:
    """``Q = diag(u) K diag(v)`` of this rank's rows, never formed: ``kernel`` (n, K), ``u`` (n,), ``v`` (K,).

    ``kernel`` is float32 (or a float64 plan given to :func:`balanced_assignment`), the scalings float64.
    """

    kernel: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor

    def dense(self) -> torch.Tensor:
        return self.kernel.double().mul_(self.u[:, None]).mul_(self.v[None, :])

    def best(
        self, rows: torch.Tensor, allowed: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(value, class) of each row's largest plan entry among the ``allowed`` (K,) classes: float64, int64."""
        value = torch.empty(len(rows), dtype=torch.float64, device=self.kernel.device)
        choice = torch.empty(len(rows), dtype=torch.long, device=self.kernel.device)
        for b in _blocks(len(rows), self.kernel.shape[1]):
            block = self.kernel[rows[b]].double().mul_(self.v[None, :])
            if allowed is not None:
                block.masked_fill_(~allowed[None, :], -math.inf)
            value[b], choice[b] = block.max(dim=1)
        return value.mul_(self.u[rows]), choice


def _kernel_times(kernel: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``K v`` of this rank's rows, in float64: (n,)."""
    out = torch.empty(kernel.shape[0], dtype=torch.float64, device=kernel.device)
    for b in _blocks(*kernel.shape):
        out[b] = kernel[b].double() @ v
    return out


def _times_kernel(u: torch.Tensor, kernel: torch.Tensor, distributed: bool) -> torch.Tensor:
    """``uᵀ K`` over all ranks' rows, in float64: (K,) — the one K-length sum a rescaling sends."""
    out = torch.zeros(kernel.shape[1], dtype=torch.float64, device=kernel.device)
    for b in _blocks(*kernel.shape):
        # A (1, n) @ (n, K) product: BLAS's transposed matrix-vector kernel stalls on busy cores.
        out += (u[None, b] @ kernel[b].double())[0]
    return all_reduce_(out) if distributed else out


def _log_kernel(logits: torch.Tensor, b: slice, lam: float, log_r: float) -> torch.Tensor:
    """log P^λ of rows ``b``, each row normalised to total mass 1/N (the log-domain row step), float64."""
    z = torch.log_softmax(logits[b].detach().to(torch.float64), dim=1).mul_(lam)
    return z.sub_(torch.logsumexp(z, dim=1, keepdim=True)).add_(log_r)


def _normalised_kernel(logits: torch.Tensor, lam: float, n_total: int, distributed: bool) -> torch.Tensor:
    """P^λ after one log-domain row and column step, as float32 (n, K); the column step's sums span all ranks."""
    n, k = logits.shape
    log_r, log_c = -math.log(n_total), -math.log(k)
    col_lse = torch.full((k,), -math.inf, dtype=torch.float64, device=logits.device)
    for b in _blocks(n, k):
        col_lse = torch.logaddexp(col_lse, torch.logsumexp(_log_kernel(logits, b, lam, log_r), dim=0))
    if distributed:  # log Σ_ranks exp(lse_r), as a max and a sum of K numbers
        top = all_reduce_(col_lse.clone(), "max")
        col_lse = top + all_reduce_((col_lse - top).exp_()).log_()
    kernel = torch.empty(n, k, dtype=torch.float32, device=logits.device)
    for b in _blocks(n, k):
        kernel[b] = _log_kernel(logits, b, lam, log_r).sub_(col_lse).add_(log_c).exp_()
    return kernel


def _solve(logits: torch.Tensor, lam: float, n_iters: int, tol: float, distributed: bool) -> _Plan:
    distributed = distributed and is_distributed()
    n_local = n = logits.shape[0]
    if distributed:
        n = int(all_reduce_(torch.tensor([n_local], dtype=torch.long, device=logits.device)).item())
    kernel = _normalised_kernel(logits, lam, n, distributed)
    small = kernel.numel() < _SINGLE_THREAD_NUMEL and kernel.device.type == "cpu"
    with _intra_op_threads(1) if small else contextlib.nullcontext():
        plan, row_error = _scale_to_marginals(kernel, n, n_iters, tol, distributed)
    if tol > 0 and not row_error < tol:
        warnings.warn(
            f"Sinkhorn-Knopp stopped after {n_iters} rescalings with a row sum off 1/N by {row_error:.2g} "
            f"(relative; tolerance {tol:g}): the plan is not yet equipartitioned. Raise n_iters "
            "(selflabel: --sinkhorn-iters) or lower λ (--lam).",
            SinkhornWarning,
            stacklevel=3,
        )
    return plan


def _scale_to_marginals(
    kernel: torch.Tensor, n: int, n_iters: int, tol: float, distributed: bool
) -> tuple[_Plan, float]:
    """Alternate row and column rescaling of a positive ``(n, K)`` kernel (Sinkhorn-Knopp); ``n`` rows in all.

    Row scalings ``u`` stay on their rank; the column scalings ``v`` need ``uᵀK`` summed over all ranks, and the
    stopping and absorbing decisions one max over ranks, so every rank takes the same branch.
    Returns the plan and its largest relative row-sum error (column sums are exact).
    """
    k = kernel.shape[1]
    v = torch.ones(k, dtype=torch.float64, device=kernel.device)
    kv = _kernel_times(kernel, v)
    u = (1.0 / n) / kv
    row_error = math.inf
    for _ in range(n_iters):
        u = (1.0 / n) / kv
        v = (1.0 / k) / _times_kernel(u, kernel, distributed)
        kv = _kernel_times(kernel, v)
        # [row error, max u, max 1/u] of this rank's rows, then the max over ranks.
        local = torch.zeros(3, dtype=torch.float64, device=kernel.device)
        if len(u):
            local[0] = (u * kv * n - 1).abs().max() if tol > 0 else 0.0
            local[1], local[2] = u.max(), 1 / u.min()
        stats = (all_reduce_(local, "max") if distributed else local).tolist()
        row_error = stats[0] if tol > 0 else math.nan
        if row_error < tol:
            break
        if max(stats[1], stats[2], float(v.max()), float(1 / v.min())) > _ABSORB_BOUND:
            for b in _blocks(*kernel.shape):
                kernel[b] = kernel[b].double().mul_(u[b, None]).mul_(v[None, :])
            v = torch.ones_like(v)
            kv = _kernel_times(kernel, v)
    return _Plan(kernel, u, v), row_error


@torch.no_grad()
def balanced_assignment(plan: torch.Tensor) -> torch.Tensor:
    """Round an ``(N, K)`` transport plan to hard labels, each class receiving ``⌊N/K⌋`` or ``⌈N/K⌉`` points.

    Greedy rounding in rounds: every unassigned point proposes its best class that still has room; each class
    keeps its strongest proposers up to its capacity (ties: the lower row first). The ``N mod K`` larger
    capacities go to the classes most points prefer. Each round fills at least one class, so it ends within ``K``
    rounds (usually a few).

    Returns:
        ``(N,)`` int64 labels.
    """
    ones = torch.ones(plan.shape[0], dtype=torch.float64, device=plan.device)
    return _round(
        _Plan(plan, ones, torch.ones(plan.shape[1], dtype=torch.float64, device=plan.device)), False
    )


def _round(plan: _Plan, distributed: bool) -> torch.Tensor:
    """:func:`balanced_assignment` of a plan whose rows may be spread over ranks: this rank's (n,) labels.

    Across ranks go the K-length class demands and, each round, three numbers per still unassigned point (its
    proposed class, the plan's value there and its global row) — never a row of K plan entries.
    """
    n_local, k = plan.kernel.shape
    device = plan.kernel.device
    sizes = [n_local]
    if distributed:
        sizes = [int(t.item()) for t in all_gather_rows(torch.tensor([n_local], device=device))]
    offset = sum(sizes[: _rank(distributed)])
    n = sum(sizes)
    base, extra = divmod(n, k)
    capacity = torch.full((k,), base, dtype=torch.long, device=device)
    todo = torch.arange(n_local, device=device)
    value, choice = plan.best(todo)
    if extra:
        demand = torch.bincount(choice, minlength=k)
        demand = all_reduce_(demand) if distributed else demand
        capacity[torch.argsort(demand, descending=True, stable=True)[:extra]] += 1
    labels = torch.full((n_local,), -1, dtype=torch.long, device=device)
    while True:
        rows = todo + offset
        if distributed:
            parts = all_gather_rows(torch.stack([choice.double(), value, rows.double()], dim=1))
            mine = sum(len(p) for p in parts[: _rank(True)])
            gathered = torch.cat(parts)
            all_choice, all_value, all_rows = gathered[:, 0].long(), gathered[:, 1], gathered[:, 2].long()
        else:
            mine, all_choice, all_value, all_rows = 0, choice, value, rows
        if not len(all_rows):
            break
        # Order proposals by class, strongest first within a class, lower row first among equals.
        order = torch.argsort(all_rows, stable=True)
        order = order[torch.argsort(all_value[order], descending=True, stable=True)]
        order = order[torch.argsort(all_choice[order], stable=True)]
        cls = all_choice[order]
        counts = torch.bincount(cls, minlength=k)
        starts = torch.cumsum(counts, 0) - counts
        place = torch.arange(len(order), device=device) - starts[cls]
        accepted = torch.zeros(len(order), dtype=torch.bool, device=device)
        accepted[order] = place < capacity[cls]
        capacity -= torch.bincount(all_choice[accepted], minlength=k)
        if bool(accepted.all()):
            labels[todo] = choice
            break
        took = accepted[mine : mine + len(todo)]
        labels[todo[took]] = choice[took]
        todo = todo[~took]
        value, choice = plan.best(todo, allowed=capacity > 0)
    return labels


def _rank(distributed: bool) -> int:
    return dist.get_rank() if distributed else 0


def sinkhorn_labels(
    logits: torch.Tensor, lam: float = 25.0, n_iters: int = 1000, tol: float = 1e-6, distributed: bool = False
) -> torch.Tensor:
    """SeLa's pseudo-labels: ``(N, K)`` logits → ``(N,)`` equipartitioned hard labels from the transport plan.

    With ``distributed`` under ``torch.distributed``, ``logits`` are this rank's rows (the ranks' rows in rank
    order make the N) and so are the labels returned: one transport problem over all N is solved and rounded
    without any rank holding more than its own ``(n, K)`` rows, as SwAV's ``distributed_sinkhorn`` does.
    """
    distributed = distributed and is_distributed()
    return _round(_solve(logits, lam, n_iters, tol, distributed), distributed)
