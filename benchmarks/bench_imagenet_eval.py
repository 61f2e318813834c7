"""ImageNet-scale evaluation: feature extraction from JPEG files with DataLoader workers, and k-NN over a big bank.

1. **Extraction**: ``Encoder.embed(paths, num_workers=W)`` (decode + the encoder's transform in W workers, batching,
   inference_mode, rows copied into one (N, D) array) against the baseline, a bare timm forward under
   ``torch.no_grad()`` over a ``DataLoader`` with the same W workers doing the same decode + transform. Both read the
   same JPEG files (random crops of scikit-image's photos, written once to a temporary folder); best of
   ``--repeats`` passes timed in turns. Goal: ratio ≥ 0.95.
2. **k-NN**: ``evaluators.knn_chunked.knn_classify_chunked`` on a synthetic ``--rows`` × ``--dim`` bank stored as a
   memory-mapped ``.npy`` against ``--queries`` queries, and ``evaluators.knn_classify`` on the same features in RAM
   (same predictions checked). The time for ImageNet (1.28 M rows × 50 k queries) is extrapolated from the
   measured one (the search is rows × queries matmul-bound), unless ``--rows 1281167 --queries 50000`` is asked.

    .venv/bin/python benchmarks/bench_imagenet_eval.py                        # ~1 min on 2 idle cores
    .venv/bin/python benchmarks/bench_imagenet_eval.py --rows 1281167 --queries 50000 --skip-embed
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch

import zoo
from evaluators.knn import knn_classify
from evaluators.knn_chunked import knn_classify_chunked

IMAGENET_ROWS, IMAGENET_QUERIES = 1_281_167, 50_000


def write_jpegs(folder: Path, n: int, size: int = 320) -> list[str]:
    from PIL import Image
    from skimage import data

    photos = [
        Image.fromarray(getattr(data, name)()).convert("RGB") for name in ("astronaut", "chelsea", "coffee")
    ]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = photo.size
        side = int(min(w, h) * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        path = folder / f"{i:05d}.JPEG"
        photo.crop((x, y, x + side, y + side)).resize((size, size)).save(path, quality=90)
        paths.append(str(path))
    return paths


class Files(torch.utils.data.Dataset):
    """The baseline's dataset: open the file, apply the transform (what torchvision's ImageFolder does)."""

    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            return self.transform(image)


def bench_embed(args) -> None:
    torch.manual_seed(0)
    model = timm.create_model(args.model, pretrained=False, num_classes=0).eval()
    enc = zoo.Encoder.from_model(model, name=f"random-{args.model}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(Path(tmp), args.images)

        def bare():
            loader = torch.utils.data.DataLoader(
                Files(paths, enc.transform),
                batch_size=args.batch_size,
                num_workers=args.workers,
                prefetch_factor=4 if args.workers else None,
            )
            with torch.no_grad():
                return torch.cat([model(x) for x in loader])

        def ours():
            return enc.embed(paths, batch_size=args.batch_size, num_workers=args.workers)

        fns = {"bare timm + DataLoader (baseline)": bare, "Encoder.embed(paths)": ours}
        for fn in fns.values():
            fn()  # warm-up
        best = dict.fromkeys(fns, float("inf"))
        for _ in range(args.repeats):
            for label, fn in fns.items():
                start = time.perf_counter()
                fn()
                best[label] = min(best[label], time.perf_counter() - start)
        ref = bare()
        diff = (ours() - ref).abs().max().item()
    base = best["bare timm + DataLoader (baseline)"]
    print(
        f"\nextraction: {args.model}, {args.images} JPEGs, batch {args.batch_size}, {args.workers} workers, "
        f"{torch.get_num_threads()} threads"
    )
    for label, seconds in best.items():
        print(f"  {label:36s} {args.images / seconds:8.1f} img/s   ratio {base / seconds:.2f}×")
    print(f"  max |ours - baseline| = {diff:.2e}")


def bench_knn(args) -> None:
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 1000, args.rows))
    query_labels = torch.from_numpy(rng.integers(0, 1000, args.queries))
    queries = torch.from_numpy(rng.standard_normal((args.queries, args.dim), dtype=np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        bank_path = Path(tmp) / "bank.npy"
        bank = np.lib.format.open_memmap(bank_path, mode="w+", dtype=np.float32, shape=(args.rows, args.dim))
        for start in range(0, args.rows, 100_000):  # written in blocks: the bank never sits in RAM twice
            stop = min(args.rows, start + 100_000)
            bank[start:stop] = rng.standard_normal((stop - start, args.dim), dtype=np.float32)
        bank.flush()
        mapped = np.load(bank_path, mmap_mode="r")
        start = time.perf_counter()
        chunked = knn_classify_chunked(mapped, labels, queries, query_labels, k=20, memory_mb=args.memory_mb)
        t_chunked = time.perf_counter() - start
        line = f"  chunked (memory-mapped bank, {args.memory_mb:.0f} MB budget)  {t_chunked:8.1f} s"
        print(
            f"\nk-NN: {args.rows} × {args.dim} bank, {args.queries} queries, k=20, {torch.get_num_threads()} threads"
        )
        print(line)
        if args.rows * args.dim * 4 <= 4 * 2**30:
            start = time.perf_counter()
            plain = knn_classify(torch.from_numpy(np.array(mapped)), labels, queries, query_labels, k=20)
            t_plain = time.perf_counter() - start
            same = np.array_equal(plain["predictions"], chunked["predictions"])
            print(
                f"  knn_classify (bank in RAM)                   {t_plain:8.1f} s   "
                f"ratio {t_plain / t_chunked:.2f}×, same predictions: {same}"
            )
    scale = (IMAGENET_ROWS / args.rows) * (IMAGENET_QUERIES / args.queries)
    flops = 2 * IMAGENET_ROWS * IMAGENET_QUERIES * args.dim
    print(
        f"  ImageNet (1.28 M × 50 k): ~{t_chunked * scale / 60:.1f} min here by extrapolation "
        f"({flops / 1e12:.0f} TFLOP of similarities); a GPU at ~50 TFLOP/s (TF32) needs a few seconds of matmul "
        f"plus one pass of the {IMAGENET_ROWS * args.dim * 4 / 2**30:.1f} GB bank over PCIe"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rows", type=int, default=64_000)
    parser.add_argument("--queries", type=int, default=2_500)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--memory-mb", type=float, default=1024)
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--skip-knn", action="store_true")
    args = parser.parse_args()
    if not args.skip_embed:
        bench_embed(args)
    if not args.skip_knn:
        bench_knn(args)


if __name__ == "__main__":
    main()
