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


def test_info_nce_matches_explicit_queue():
    # MoCo Eq. (1): the positive key against every key of an explicit queue, one query at a time.
    from trainers.methods.moco import info_nce_loss

    torch.manual_seed(1)
    n, k, d, tau = 4, 6, 5, 0.2
    norm = torch.nn.functional.normalize
    q, keys, queue = (
        norm(torch.randn(n, d), dim=1),
        norm(torch.randn(n, d), dim=1),
        norm(torch.randn(k, d), dim=1),
    )
    total = 0.0
    for i in range(n):
        pos = math.exp(float(q[i] @ keys[i]) / tau)
        neg = sum(math.exp(float(q[i] @ queue[j]) / tau) for j in range(k))
        total += -math.log(pos / (pos + neg))
    assert abs(float(info_nce_loss(q, keys, queue, tau)) - total / n) < 1e-5


def test_byol_loss_by_hand():
    # BYOL Eq. (2): squared distance of the L2-normalised prediction and target, averaged over the batch.
    from trainers.methods.byol import byol_loss

    p = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    z = torch.tensor([[0.0, 2.0], [0.0, -5.0]])
    # (0.6, 0.8) vs (0, 1): 0.36 + 0.04 = 0.4;  (1, 0) vs (0, -1): 1 + 1 = 2.
    assert abs(float(byol_loss(p, z)) - (0.4 + 2.0) / 2) < 1e-6


def test_byol_loss_is_zero_for_aligned_and_four_for_opposite():
    from trainers.methods.byol import byol_loss

    p = torch.randn(3, 8)
    assert float(byol_loss(p, 2 * p)) < 1e-6
    assert abs(float(byol_loss(p, -p)) - 4.0) < 1e-5


def test_dino_cross_entropy_by_hand():
    # DINO Eq. (3): Σ over (teacher global crop, different student crop) of −Σ_k P_t log P_s, averaged.
    from trainers.methods.dino import dino_loss

    torch.manual_seed(2)
    n, k, ts, tt = 3, 4, 0.1, 0.05
    student = [torch.randn(n, k) for _ in range(4)]  # 2 global + 2 local crops
    teacher = [torch.randn(n, k) for _ in range(2)]
    center = torch.randn(1, k)

    def softmax(row, temp):
        e = [math.exp(float(v) / temp) for v in row]
        return [x / sum(e) for x in e]

    total, terms = 0.0, 0
    for it in range(2):
        for iv in range(4):
            if iv == it:
                continue
            for b in range(n):
                pt = softmax(teacher[it][b] - center[0], tt)
                ps = softmax(student[iv][b], ts)
                total += -sum(pt[j] * math.log(ps[j]) for j in range(k)) / n
            terms += 1
    assert abs(float(dino_loss(student, teacher, center, ts, tt)) - total / terms) < 1e-4
