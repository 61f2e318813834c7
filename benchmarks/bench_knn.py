"""k-NN: ``evaluators.knn_classify`` (faiss search, several k in one pass) vs chunked torch matmul + topk.

The baseline is DINO's ``knn_classifier`` (``eval_knn.py``) in plain torch: per chunk of test images a full
(chunk, N) similarity matmul, ``topk``, one-hot votes. Ours runs with the default backend (``auto``: a faiss GPU
index where faiss has GPU support; on CPU the faster of torch and faiss, measured on the first queries and cached)
twice — the first call measures (in a fresh cache under a temporary folder), the second reads the cache — and
with torch and faiss forced. Everything runs in this process on the same features; the script prints the
wall-time ratio (baseline / ours; > 1 means ours is faster) and checks the predictions are identical.

    .venv/bin/python benchmarks/bench_knn.py                       # 10k x 60k x 384 (the issue's size)
    .venv/bin/python benchmarks/bench_knn.py --n-train 6000 --n-test 1000   # a quick run
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
import torch.nn.functional as F

from evaluators import knn_classify


def torch_knn(train, train_labels, test, k, temperature, num_classes, chunk):
    """DINO's k-NN in plain torch (stable sort for a defined tie order), chunked over test images."""
    train = F.normalize(train, dim=1).t().contiguous()
    test = F.normalize(test, dim=1)
    predictions = []
    for start in range(0, len(test), chunk):
        block = test[start : start + chunk]
        sims, idx = (block @ train).topk(k, dim=1, largest=True, sorted=True)
        labels = train_labels[idx]
        one_hot = torch.zeros(len(block) * k, num_classes).scatter_(1, labels.view(-1, 1), 1)
        probs = (one_hot.view(len(block), k, num_classes) * (sims / temperature).exp().unsqueeze(2)).sum(1)
        predictions.append(probs.sort(dim=1, descending=True, stable=True).indices[:, 0])
    return torch.cat(predictions)


def features(n_train, n_test, dim, classes, seed=0):
    """A Gaussian mixture: class centres plus noise, so neighbours carry label information as real features do."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g)
    y_train = torch.randint(0, classes, (n_train,), generator=g)
    y_test = torch.randint(0, classes, (n_test,), generator=g)
    noise = 4.0
    train = centres[y_train] + noise * torch.randn(n_train, dim, generator=g)
    test = centres[y_test] + noise * torch.randn(n_test, dim, generator=g)
    return train, y_train, test, y_test


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=60_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 20, 100, 200], help="DINO's k values")
    parser.add_argument("--chunk", type=int, default=1000, help="baseline test images per matmul")
    parser.add_argument("--threads", type=int, default=None, help="torch/faiss threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        import faiss

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    os.environ["SSLZOO_CACHE"] = tempfile.mkdtemp(prefix="bench-knn-")  # the first "auto" call measures
    train, y_train, test, y_test = features(args.n_train, args.n_test, args.dim, args.classes)
    print(
        f"{args.n_test} test x {args.n_train} train x {args.dim} dims, {args.classes} classes, "
        f"{torch.get_num_threads()} threads"
    )

    # Warm-up: imports and first-call set-up are not what we measure.
    for backend in ("torch", "faiss"):
        knn_classify(train[:500], y_train[:500], test[:50], y_test[:50], k=20, backend=backend)
    torch_knn(train[:500], y_train[:500], test[:50], 20, 0.07, args.classes, args.chunk)

    # One k (20): the common case. Then DINO's sweep: the baseline runs one pass per k, as eval_knn.py does;
    # knn_classify scores every k from one search.
    for ks in ([20], args.ks):
        base, t_base = {}, 0.0
        for k in ks:
            base[k], t = timed(lambda k=k: torch_knn(train, y_train, test, k, 0.07, args.classes, args.chunk))
            t_base += t
        for backend in ("auto", "auto", "torch", "faiss"):
            ours, t_ours = timed(
                lambda b=backend, ks=ks: knn_classify(train, y_train, test, y_test, k=ks, backend=b)
            )
            same = min(int((torch.from_numpy(ours[k]["predictions"]) == base[k]).sum()) for k in ks)
            print(
                f"k={','.join(map(str, ks)):<14} backend={backend:<5}  baseline {t_base:7.2f} s   ours {t_ours:7.2f} s"
                f"   ratio {t_base / t_ours:5.2f}x   identical predictions {same}/{args.n_test} (worst k)"
                f"   top-1 {ours[ks[0]]['top1']:.2f}% (k={ks[0]})"
            )


if __name__ == "__main__":
    main()
