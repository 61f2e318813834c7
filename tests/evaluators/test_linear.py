"""Linear probe: separable problems are solved, λ is chosen without looking at test, same optimum as sklearn."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluators import linear, linear_probe, logistic
from evaluators.logistic import fit_logistic_regression
from zoo.errors import SslzooError


def _blobs(n, d, classes, seed, spread=0.3):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, d, generator=g)
    labels = torch.arange(n) % classes
    return centers[labels] + spread * torch.randn(n, d, generator=g), labels


def test_linearly_separable_toy_problem_reaches_100_percent():
    # Two classes split by the sign of the first coordinate (with a margin): separable after L2 normalisation too.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g)
    x[:, 0] = torch.sign(x[:, 0]) * (x[:, 0].abs() + 1.0)
    y = (x[:, 0] > 0).long()
    out = linear_probe(x[:300], y[:300], x[300:], y[300:])
    assert out["top1"] == 100.0
    assert out["predictions"].tolist() == y[300:].tolist()


def test_weight_decay_is_chosen_without_test_labels():
    x, y = _blobs(300, 10, 3, seed=1, spread=1.0)
    xt, yt = _blobs(90, 10, 3, seed=2, spread=1.0)
    a = linear_probe(x, y, xt, yt, weight_decays=(1.0, 1e-2, 1e-4))
    b = linear_probe(x, y, xt, torch.zeros_like(yt), weight_decays=(1.0, 1e-2, 1e-4))  # wrong test labels
    assert a["weight_decay"] == b["weight_decay"] and a["val_top1"] == b["val_top1"]
    assert np.array_equal(a["predictions"], b["predictions"])
    assert a["weight_decay"] in (1.0, 1e-2, 1e-4)


def test_closed_form_gradient_reaches_the_autograd_optimum():
    # At the optimum the autograd gradient of the objective vanishes.
    x, y = _blobs(200, 6, 4, seed=3, spread=1.0)
    x = F.normalize(x, dim=1)
    weight, bias = fit_logistic_regression(x, y, 4, weight_decay=1e-2, max_iter=500, tolerance_grad=1e-7)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    loss = F.cross_entropy(x @ weight + bias, y) + 0.5 * 1e-2 * weight.pow(2).sum()
    loss.backward()
    assert weight.grad.abs().max() < 1e-5 and bias.grad.abs().max() < 1e-5


def test_same_solution_as_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs(500, 8, 5, seed=4, spread=1.5)
    x = F.normalize(x, dim=1)
    wd = 1e-2
    weight, bias = fit_logistic_regression(x, y, 5, wd, tolerance_grad=1e-7)
    # sklearn minimises C·Σ CE + ½‖W‖², the same optimum as mean CE + λ/2 ‖W‖² with C = 1/(λN).
    sk = LogisticRegression(C=1.0 / (wd * len(y)), tol=1e-8, max_iter=2000).fit(x.numpy(), y.numpy())
    assert np.allclose(weight.numpy(), sk.coef_.T, atol=2e-3)
    # Softmax is invariant to a shift of all biases; sklearn's bias is unpenalised too, so compare centred.
    assert np.allclose(bias.numpy() - bias.numpy().mean(), sk.intercept_ - sk.intercept_.mean(), atol=2e-3)
    assert np.array_equal((x @ weight + bias).argmax(1).numpy(), sk.predict(x.numpy()))


def test_newton_converges_quadratically():
    # Exact Hessian-vector products make the gradient shrink like ε → ε² once close: six Newton steps reach 1e-6 on
    # a 10-class problem (a wrong Hessian or preconditioner would still descend, but nowhere near as fast).
    x, y = _blobs(2000, 32, 10, seed=6, spread=1.5)
    x = F.normalize(x, dim=1)
    gradients = []
    for steps in (2, 6):
        weight, bias = fit_logistic_regression(x, y, 10, 1e-4, max_iter=steps, tolerance_grad=0.0)
        weight.requires_grad_(True)
        bias.requires_grad_(True)
        (F.cross_entropy(x @ weight + bias, y) + 0.5 * 1e-4 * weight.pow(2).sum()).backward()
        gradients.append(max(weight.grad.abs().max().item(), bias.grad.abs().max().item()))
    assert gradients[0] > 1e-4 and gradients[1] < 1e-6


def test_bad_input():
    x, y = _blobs(20, 3, 2, seed=5)
    with pytest.raises(SslzooError, match="val_fraction"):
        linear_probe(x, y, x, y, val_fraction=1.5)
    with pytest.raises(SslzooError, match="D=3 but test features D=4"):
        linear_probe(x, y, torch.zeros(2, 4), torch.zeros(2))


def test_each_penalty_of_the_path_is_fitted_to_a_tolerance_that_scales_with_it(monkeypatch):
    import evaluators.linear as linear

    seen = []
    fit = linear.fit_logistic_regression

    def spy(x, y, num_classes, weight_decay, **kwargs):
        seen.append((weight_decay, kwargs.get("tolerance_grad", 1e-5)))
        return fit(x, y, num_classes, weight_decay, **kwargs)

    monkeypatch.setattr(linear, "fit_logistic_regression", spy)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 8, generator=g), torch.randint(0, 3, (400,), generator=g)
    linear.linear_probe(x, y, x[:50], y[:50], weight_decays=(1e-2, 1e-5, 1e-6))
    # A fixed 1e-4 let a warm-started weak penalty stop after zero steps: min(1e-4, 10 λ).
    assert seen[:3] == [(1e-2, 1e-4), (1e-5, 1e-4), (1e-6, pytest.approx(1e-5))]


def _edge_problem():
    """Three classes 0.3 apart along e0, under a large nuisance shared by e0 and e1: only a weak penalty finds
    e0 − e1 (a strong one keeps the weights near the class means, which the nuisance swamps), so a grid of 1.0
    alone has its best at its edge."""
    g = torch.Generator().manual_seed(4)
    y = torch.arange(600) % 3
    x = 0.05 * torch.randn(600, 8, generator=g)
    nuisance = 3.0 * torch.randn(600, generator=g)
    x[:, 0] += 0.3 * y.float() + nuisance
    x[:, 1] += nuisance
    x[:, 2] += 1.0
    return x[:500], y[:500], x[500:], y[500:]


def test_the_grid_goes_on_below_its_edge_while_validation_accuracy_rises():
    x, y, xt, yt = _edge_problem()
    out = linear_probe(x, y, xt, yt, weight_decays=(1.0,))
    lambdas, vals = zip(*out["path"])
    assert lambdas[0] == 1.0 and len(lambdas) > 2
    assert all(b == pytest.approx(a / 10) for a, b in itertools.pairwise(lambdas))
    # Each decade was tried because the one before it was the best so far; the walk stops at the first that is not.
    assert all(b > a for a, b in itertools.pairwise(vals[:-1]))
    assert vals[-1] <= vals[-2] or lambdas[-1] / 10 < linear.MIN_WEIGHT_DECAY
    assert out["weight_decay"] < 1.0 and out["val_top1"] == max(vals) > vals[0]
    # The same as the explicit grid it walked (same fits, same warm starts, same choice).
    explicit = linear_probe(x, y, xt, yt, weight_decays=lambdas, extend_grid=False)
    assert explicit["weight_decay"] == out["weight_decay"] and explicit["top1"] == out["top1"]
    assert [wd for wd, _ in explicit["path"]] == list(lambdas)


def test_the_grid_stays_as_given_where_its_edge_is_not_the_best_or_extension_is_off():
    x, y, xt, yt = _edge_problem()
    off = linear_probe(x, y, xt, yt, weight_decays=(1.0, 0.1), extend_grid=False)
    assert [wd for wd, _ in off["path"]] == [1.0, 0.1]
    # A grid that reaches λ = 0 has no decade below it.
    with_zero = linear_probe(x, y, xt, yt, weight_decays=(1e-3, 0.0))
    assert [wd for wd, _ in with_zero["path"]] == [1e-3, 0.0]


def test_records_made_before_the_extension_reproduce_with_the_grid_they_stored():
    from evaluators.evaluate import linear_outcome
    from evaluators.features import Features

    x, y, xt, yt = _edge_problem()
    old = {"weight_decays": [1.0], "val_fraction": 0.2, "max_iter": 200, "seed": 0}  # no "extend_grid" key
    train, test = (Features(f.numpy(), lab.numpy(), "", False, 0.0) for f, lab in ((x, y), (xt, yt)))
    assert [wd for wd, _ in linear_outcome(train, test, old)["path"]] == [1.0]
    assert len(linear_outcome(train, test, {**old, "extend_grid": True})["path"]) > 1


@pytest.mark.slow
def test_the_weakest_penalty_is_really_tried_on_real_features():
    """byol-fmnist's features: the converged λ = 1e-6 fit scores 87.7%; stopping it at once chose λ = 1e-5, 86.0%."""
    import zoo
    from evaluators.features import extract_features

    enc = zoo.load("byol-fmnist", device="cpu")
    train = extract_features(enc, "fashion-mnist", "train", progress=False)
    test = extract_features(enc, "fashion-mnist", "test", progress=False)
    result = linear_probe(train.feats, train.labels, test.feats, test.labels, extend_grid=False)
    assert result["weight_decay"] == 1e-6 and result["top1"] > 87.5
    # Below the grid's edge, validation chooses a weaker penalty still, and test accuracy follows.
    extended = linear_probe(train.feats, train.labels, test.feats, test.labels)
    assert extended["weight_decay"] < 1e-6 and extended["top1"] > result["top1"]


def test_effective_rank_counts_the_directions_that_carry_the_variance():
    g = torch.Generator().manual_seed(0)
    # Variance 1 along two axes, none along the other three: (1 + 1)² / (1² + 1²) = 2.
    two = torch.cat([torch.randn(4000, 2, generator=g), torch.zeros(4000, 3)], dim=1)
    assert logistic.effective_rank(two) == pytest.approx(2.0, rel=0.02)
    # Isotropic: every one of the 40 directions counts.
    assert logistic.effective_rank(torch.randn(20000, 40, generator=g)) == pytest.approx(40.0, rel=0.05)


def test_class_blocks_only_for_low_rank_features_whose_blocks_fit_in_memory():
    g = torch.Generator().manual_seed(0)
    low_rank = torch.randn(2048, 4, generator=g) @ torch.randn(4, 300, generator=g)  # effective rank ≤ 4
    assert logistic.use_class_blocks(low_rank, 10)
    assert not logistic.use_class_blocks(torch.randn(2048, 300, generator=g), 10)  # isotropic: rank ~300
    # 1000 classes × 301² float64 entries (720 MB) would not fit the budget: K-FAC, whatever the rank.
    assert not logistic.use_class_blocks(low_rank, 1000)


def test_class_block_preconditioner_inverts_the_hessians_class_blocks():
    # Reference: the Hessian of mean CE by autograd on [W; b], its (class, class) blocks + λI, each inverted.
    x, y = _blobs(300, 5, 4, seed=7, spread=1.0)
    x = F.normalize(x, dim=1)
    theta = 0.5 * torch.randn(6, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    xd = torch.cat([x, torch.ones(300, 1)], dim=1).double()

    def mean_ce(t):
        return F.cross_entropy(xd @ t, y)

    hessian = torch.autograd.functional.hessian(mean_ce, theta)  # (6, 4, 6, 4): [row, class, row, class]
    lam = 1e-3
    v = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = torch.stack(
        [
            torch.linalg.solve(hessian[:, c, :, c] + lam * torch.eye(6, dtype=torch.float64), v[:, c])
            for c in range(4)
        ],
        dim=1,
    )
    expected -= expected.mean(dim=1, keepdim=True)  # the class mean, flat for softmax, is projected out
    p = torch.softmax(xd @ theta, dim=1).float()
    got = logistic._class_block_preconditioner(x, p, lam)(v.float())
    assert torch.allclose(got.double(), expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item())


@pytest.mark.parametrize("rows_per_rank", [1, 10**9])  # class blocks / K-FAC
def test_both_preconditioners_reach_the_same_optimum(monkeypatch, rows_per_rank):
    x, y = _blobs(3000, 16, 6, seed=8, spread=1.2)
    x = F.normalize(x, dim=1)
    reference = fit_logistic_regression(x.double(), y, 6, 1e-4, tolerance_grad=1e-10)
    monkeypatch.setattr(logistic, "ROWS_PER_RANK", rows_per_rank)
    weight, bias = fit_logistic_regression(x, y, 6, 1e-4, tolerance_grad=1e-6)
    assert torch.allclose(weight.double(), reference[0], atol=2e-3)
    assert torch.allclose(bias.double() - bias.double().mean(), reference[1] - reference[1].mean(), atol=2e-3)
