"""Input-pipeline throughput per worker process: sslzoo's views against torchvision doing the same work.

From a folder of JPEGs of ImageNet size (~400×350, scikit-image's photos re-encoded at random sizes), both sides
decode every image and cut its views in DataLoader workers, emitting uint8 tensors of the final size (colour
operations run batched on the device in both pipelines, so neither side does them here):

* (a) two 224-px random resized crops + flips (SimCLR, MoCo, BYOL);
* (b) DINO's multi-crop: 2 × 224 (scale 0.4–1) + 10 × 96 (scale 0.05–0.4), bicubic.

The reference is torchvision's ``ImageFolder`` (PIL loader) + ``transforms.v2`` (``RandomResizedCrop``,
``RandomHorizontalFlip``, ``PILToTensor``) in the same DataLoader configuration (workers, batch, prefetch). The
ratio printed is sslzoo / torchvision measured in this process, back to back.

    python benchmarks/bench_input_pipeline.py                  # 1 worker, 256 images, both cases
    python benchmarks/bench_input_pipeline.py --workers 2 --images 512 --side 1200   # larger photos: draft pays
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

CASES = {
    "two 224 crops": [("global", 224, (0.08, 1.0), "bilinear")] * 2,
    "DINO 2x224 + 10x96": [("global", 224, (0.4, 1.0), "bicubic")] * 2
    + [("local", 96, (0.05, 0.4), "bicubic")] * 10,
}


def make_jpegs(root: Path, count: int, side: int, seed: int = 0) -> Path:
    """``count`` JPEGs (quality 90) in 4 class folders; the longer side around ``side`` (ImageNet: ~400-500)."""
    import skimage.data
    from PIL import Image

    photos = [
        Image.fromarray(getattr(skimage.data, n)()) for n in ("astronaut", "chelsea", "coffee", "rocket")
    ]
    rng = np.random.default_rng(seed)
    for i in range(count):
        photo = photos[i % len(photos)]
        scale = side * rng.uniform(0.8, 1.2) / max(photo.size)
        image = photo.resize((round(photo.width * scale), round(photo.height * scale)))
        folder = root / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:05d}.jpg", quality=90)
    return root


def _loader(dataset, workers: int, batch: int, collate=None, batch_sampler=None):
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None if batch_sampler else batch,
        batch_sampler=batch_sampler,
        num_workers=workers,
        collate_fn=collate,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )


def time_loader(loader) -> float:
    """images/s over a full pass (worker start-up included, as in an epoch)."""
    start, n = time.perf_counter(), 0
    for batch in loader:
        n += len(batch[1]) if isinstance(batch, list | tuple) else len(batch.indices)
    return n / (time.perf_counter() - start)


def torchvision_rate(root: Path, specs, workers: int, batch: int) -> float:
    from torchvision import datasets
    from torchvision.transforms import InterpolationMode, v2

    modes = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}
    views = [
        v2.Compose(
            [
                v2.RandomResizedCrop(size, scale=scale, interpolation=modes[interp], antialias=True),
                v2.RandomHorizontalFlip(),
                v2.PILToTensor(),
            ]
        )
        for _, size, scale, interp in specs
    ]

    def transform(image):
        return [view(image) for view in views]

    dataset = datasets.ImageFolder(str(root), transform=transform)
    return time_loader(_loader(dataset, workers, batch))


def sslzoo_rate(root: Path, specs, workers: int, batch: int) -> float:
    from trainers.loader import ViewLoader
    from trainers.sources import load_source
    from trainers.views import CropSpec

    source = load_source(f"folder:{root}", "train")  # the index is built (and cached) before timing
    crop_specs = [CropSpec(size, scale, interpolation=interp) for _, size, scale, interp in specs]
    loader = ViewLoader(source, crop_specs, seed=0, workers=workers)
    order = torch.arange(len(source))
    start, n = time.perf_counter(), 0
    for views in loader.epoch(0, order, batch):
        n += len(views.indices)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--side", type=int, default=420, help="longer side of the JPEGs (ImageNet ~400-500)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each side; best kept")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = make_jpegs(Path(tmp) / "jpegs", args.images, args.side)
        # Both sides train on the test split too here: torchvision's ImageFolder sees every image.
        (root / "train").mkdir()
        for cls in [p for p in root.iterdir() if p.name.startswith("class")]:
            cls.rename(root / "train" / cls.name)
        print(
            f"{args.images} JPEGs, longer side ~{args.side} px, {args.workers} worker(s), batch {args.batch_size}, "
            f"torch {torch.__version__}"
        )
        print(f"{'case':<22} {'torchvision img/s':>18} {'sslzoo img/s':>13} {'ratio':>7}")
        for name, specs in CASES.items():
            ref, ours = 0.0, 0.0
            for _ in range(args.repeats):
                ref = max(ref, torchvision_rate(root / "train", specs, args.workers, args.batch_size))
                ours = max(ours, sslzoo_rate(root, specs, args.workers, args.batch_size))
            per = max(args.workers, 1)
            print(f"{name:<22} {ref / per:>15.1f}/w {ours / per:>10.1f}/w {ours / ref:>6.2f}×", flush=True)


if __name__ == "__main__":
    main()
