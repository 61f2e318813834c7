"""A tiny ImageNet-layout folder from scikit-image's bundled photos, and small random-init encoders for it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

# One photo per class: crops of the same photo share a class, so a linear probe on any features can learn them.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361")


def _crops(photo: str, n: int, seed: int, size: int = 48):
    from PIL import Image
    from skimage import data

    image = Image.fromarray(getattr(data, photo)()).convert("RGB")
    rng = np.random.default_rng(seed)
    w, h = image.size
    out = []
    for _ in range(n):
        side = int(min(w, h) * rng.uniform(0.5, 0.9))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        out.append(image.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR))
    return out


def build_imagenet_folder(
    root: Path, per_class: int = 6, val_per_class: int = 3, flat_val: str | None = None
) -> Path:
    """``root/train/<wnid>/*.JPEG`` and ``root/val`` (class folders, or flat with a labels file).

    Args:
        flat_val: ``None`` (class folders), ``"csv"`` (LOC_val_solution.csv) or ``"txt"`` (the devkit's
            ILSVRC2012_validation_ground_truth.txt + meta.mat).

    Returns:
        ``root``.
    """
    val_items = []
    for c, (photo, wnid) in enumerate(zip(PHOTOS, WNIDS)):
        (root / "train" / wnid).mkdir(parents=True)
        for i, image in enumerate(_crops(photo, per_class, seed=c)):
            image.save(root / "train" / wnid / f"{wnid}_{i}.JPEG", quality=90)
        val_items += [(wnid, image) for image in _crops(photo, val_per_class, seed=100 + c)]
    (root / "val").mkdir()
    # Flat val files are numbered in an order that interleaves classes (as the real val split does).
    order = np.random.default_rng(0).permutation(len(val_items))
    rows = []
    for number, j in enumerate(order, 1):
        wnid, image = val_items[j]
        stem = f"ILSVRC2012_val_{number:08d}"
        if flat_val is None:
            (root / "val" / wnid).mkdir(exist_ok=True)
            image.save(root / "val" / wnid / f"{stem}.JPEG", quality=90)
        else:
            image.save(root / "val" / f"{stem}.JPEG", quality=90)
        rows.append((stem, wnid))
    if flat_val == "csv":
        with open(root / "LOC_val_solution.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["ImageId", "PredictionString"])
            writer.writerows([stem, f"{wnid} 1 2 30 40"] for stem, wnid in rows)
    elif flat_val == "txt":
        _write_devkit(root, rows)
    return root


def _write_devkit(root: Path, rows: list[tuple[str, str]]) -> None:
    """The devkit's ground truth (ILSVRC2012_IDs) and a ``meta.mat`` whose ids are NOT in wnid order."""
    from scipy.io import savemat

    ids = {wnid: i for i, wnid in zip((3, 1, 4, 2), WNIDS)}  # ILSVRC2012_ID of each synset, shuffled
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O")]
    synsets = np.array(
        [(ids[w], w, w, "", 0) for w in WNIDS] + [(1001, "n00000001", "parent", "", 2)], dtype=dtype
    )
    data = root / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    savemat(data / "meta.mat", {"synsets": synsets})
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{ids[w]}\n" for _, w in rows))


def tiny_encoder(arch: str = "resnet18", size: int = 32):
    """A random-init timm model at ``size`` px wrapped as a ``zoo.Encoder`` (Resize + CenterCrop + Normalize)."""
    import timm
    import torch

    import zoo
    from zoo.encoder import build_transform
    from zoo.registry import Preprocessing

    kwargs = {"img_size": size, "in_chans": 3} if "vit" in arch else {}
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, num_classes=0, **kwargs)
    transform = build_transform(model, Preprocessing(input_size=(3, size, size)))
    return zoo.Encoder.from_model(model, name=f"random-{arch}", transform=transform)
