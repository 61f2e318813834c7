"""Linear probe: ``evaluators.linear_probe`` (preconditioned Newton-CG in torch) vs scikit-learn's LogisticRegression.

Same features, same protocol both ways (L2-normalised features; λ chosen on the same validation split carved from
train; refit on all of train; score test), run in this process. Prints the wall-time ratio (sklearn / ours; > 1
means ours is faster) and the test accuracies, first for one fit at a fixed λ, then for the whole protocol.

    .venv/bin/python benchmarks/bench_linear.py                  # 20k train, 5k test, 384 dims, 10 classes
    .venv/bin/python benchmarks/bench_linear.py --n-train 60000 --n-test 10000
    .venv/bin/python benchmarks/bench_linear.py --threads 1     # steadier on a shared, busy machine
    .venv/bin/python benchmarks/bench_linear.py --features byol-fmnist   # a shipped encoder's Fashion-MNIST features

The synthetic mixture is the harder case for ours: its weak penalties keep the optimum far from the warm start.
On real features scikit-learn's L-BFGS stops at its 200 iterations at the weak penalties before converging, so
it is both slower and less accurate there.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from evaluators import linear_probe
from evaluators.linear import DEFAULT_WEIGHT_DECAYS, _split_validation
from evaluators.logistic import fit_logistic_regression


def features(n_train, n_test, dim, classes, seed=0, noise=6.0):
    """A Gaussian mixture with overlapping classes (a probe reaches ~90%, not 100%)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g)
    y = torch.randint(0, classes, (n_train + n_test,), generator=g)
    x = centres[y] + noise * torch.randn(n_train + n_test, dim, generator=g)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def encoder_features(name):
    """Fashion-MNIST train/test features of a zoo encoder (cached by the evaluators' feature cache)."""
    import zoo
    from evaluators.features import extract_features

    enc = zoo.load(name, device="cpu")
    train = extract_features(enc, "fashion-mnist", "train", progress=False)
    test = extract_features(enc, "fashion-mnist", "test", progress=False)
    return tuple(torch.as_tensor(a) for a in (train.feats, train.labels, test.feats, test.labels))


SKLEARN_MAX_ITER = 200  # scikit-learn's default; --sklearn-max-iter raises it (its weak-λ fits then converge)


def sklearn_fit(x, y, wd, max_iter=SKLEARN_MAX_ITER):
    from sklearn.linear_model import LogisticRegression

    # sklearn minimises C·Σ CE + ½‖W‖²: the same optimum as mean CE + λ/2 ‖W‖² with C = 1/(λN).
    clf = LogisticRegression(C=1.0 / (wd * len(y)), max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at small λ, as for ours
        return clf.fit(x, y)


def sklearn_protocol(
    x_train, y_train, x_test, y_test, weight_decays, val_fraction=0.2, seed=0, max_iter=SKLEARN_MAX_ITER
):
    x_train, x_test = (F.normalize(torch.as_tensor(a), dim=1).numpy() for a in (x_train, x_test))
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    fit_idx, val_idx = _split_validation(y_train, val_fraction, seed)
    scores = {}
    for wd in sorted(weight_decays, reverse=True):
        clf = sklearn_fit(x_train[fit_idx], y_train[fit_idx], wd, max_iter)
        scores[wd] = clf.score(x_train[val_idx], y_train[val_idx])
    best = max(scores, key=lambda wd: (scores[wd], wd))
    clf = sklearn_fit(x_train, y_train, best, max_iter)
    return 100.0 * clf.score(x_test, y_test), best


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-test", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="λ of the single-fit comparison")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both (default: all)")
    parser.add_argument(
        "--features",
        default=None,
        metavar="ENCODER",
        help="a zoo encoder's Fashion-MNIST features (e.g. byol-fmnist) instead of the synthetic mixture",
    )
    parser.add_argument(
        "--sklearn-max-iter",
        type=int,
        default=SKLEARN_MAX_ITER,
        help="L-BFGS iterations per scikit-learn fit (200, its default, stops weak-λ fits before they converge)",
    )
    args = parser.parse_args()
    if args.sklearn_max_iter < 1:
        raise SystemExit(f"--sklearn-max-iter must be at least 1, got {args.sklearn_max_iter}.")
    if args.threads:
        # Both sides on the same thread budget: torch's intra-op pool and every BLAS/OpenMP pool sklearn uses.
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    if args.features:
        from zoo.errors import SslzooError

        try:
            x_train, y_train, x_test, y_test = encoder_features(args.features)
        except SslzooError as exc:  # an unknown or unreadable encoder: one line, no traceback
            raise SystemExit(str(exc)) from None
        args.classes = int(y_train.max()) + 1
    else:
        x_train, y_train, x_test, y_test = features(args.n_train, args.n_test, args.dim, args.classes)
    print(
        f"{args.features or 'synthetic'}: {len(y_train)} train, {len(y_test)} test, {x_train.shape[1]} dims, "
        f"{args.classes} classes, {torch.get_num_threads()} threads"
    )

    # Warm-up: imports and first-call set-up are not what we measure.
    linear_probe(x_train[:200], y_train[:200], x_test[:50], y_test[:50], weight_decays=(1e-2,))
    sklearn_protocol(x_train[:200], y_train[:200], x_test[:50], y_test[:50], (1e-2,))

    xn, xt = F.normalize(x_train, dim=1), F.normalize(x_test, dim=1)
    (w, b), t_ours = timed(lambda: fit_logistic_regression(xn, y_train, args.classes, args.weight_decay))
    acc_ours = 100.0 * ((xt @ w + b).argmax(1) == y_test).float().mean().item()
    clf, t_sk = timed(
        lambda: sklearn_fit(xn.numpy(), y_train.numpy(), args.weight_decay, args.sklearn_max_iter)
    )
    acc_sk = 100.0 * clf.score(xt.numpy(), y_test.numpy())
    print(
        f"one fit (λ={args.weight_decay:g}):      sklearn {t_sk:7.2f} s  ours {t_ours:7.2f} s  ratio "
        f"{t_sk / t_ours:5.2f}x   test top-1 sklearn {acc_sk:.2f}%  ours {acc_ours:.2f}%"
    )

    grid = DEFAULT_WEIGHT_DECAYS
    ours, t_ours = timed(
        lambda: linear_probe(x_train, y_train, x_test, y_test, weight_decays=grid, extend_grid=False)
    )
    (acc_sk, wd_sk), t_sk = timed(
        lambda: sklearn_protocol(x_train, y_train, x_test, y_test, grid, max_iter=args.sklearn_max_iter)
    )
    print(
        f"protocol ({len(grid)} λ + refit): sklearn {t_sk:7.2f} s  ours {t_ours:7.2f} s  ratio "
        f"{t_sk / t_ours:5.2f}x   test top-1 sklearn {acc_sk:.2f}% (λ={wd_sk:g})  "
        f"ours {ours['top1']:.2f}% (λ={ours['weight_decay']:g})"
    )


if __name__ == "__main__":
    main()
