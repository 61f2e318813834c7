"""Each method's loss against an independent computation of its paper's equation."""

from __future__ import annotations

import math

import torch

from trainers.methods.simclr import nt_xent_loss


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


def test_nt_xent_matches_explicit_loops():
    # SimCLR Eq. (1) with explicit sums over the 2N − 1 candidates of every anchor.
    torch.manual_seed(0)
    n, tau = 5, 0.3
    z1, z2 = torch.randn(n, 7), torch.randn(n, 7)
    views = [*z1, *z2]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        num = math.exp(_cos(views[i], views[j]) / tau)
        den = sum(math.exp(_cos(views[i], views[k]) / tau) for k in range(2 * n) if k != i)
        total += -math.log(num / den)
    assert abs(float(nt_xent_loss(z1, z2, tau)) - total / (2 * n)) < 1e-5
