"""Image folders of ordinary photos for pipeline tests: scikit-image's bundled photos, resized to mixed sizes and
saved in mixed modes and formats (RGB JPEG, grey PNG, RGBA PNG, palette PNG, CMYK JPEG, 16-bit PNG, WebP, BMP,
TIFF), and Fashion-MNIST-like small PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOUR = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
GREY = ("camera", "coins", "moon", "page", "text", "clock")
# (mode, suffix) pairs cycled over the images: every decoder path the pipeline must survive.
FORMATS = (
    ("RGB", ".jpg"),
    ("L", ".png"),
    ("RGBA", ".png"),
    ("P", ".png"),
    ("CMYK", ".jpg"),
    ("I;16", ".png"),
    ("RGB", ".webp"),
    ("RGB", ".bmp"),
    ("RGB", ".tif"),
)


def _photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


def _save(image: Image.Image, mode: str, path: Path) -> None:
    if mode == "I;16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257  # full 16-bit range
        Image.fromarray(grey).save(path)
        return
    image.convert(mode).save(path)


def photo_files(count: int, seed: int = 0) -> list[tuple[Image.Image, str, str]]:
    """``count`` (image, mode, suffix) triples: photos of mixed sizes (shorter side 70–260 px)."""
    rng = np.random.default_rng(seed)
    names = [*COLOUR, *GREY]
    out = []
    for i in range(count):
        image = _photo(names[i % len(names)])
        scale = rng.uniform(70, 260) / min(image.size)
        aspect = rng.uniform(0.7, 1.4)
        size = (max(8, round(image.width * scale * aspect)), max(8, round(image.height * scale)))
        mode, suffix = FORMATS[i % len(FORMATS)]
        out.append((image.resize(size), mode, suffix))
    return out


def labelled_folder(root: Path, per_class: int = 8) -> Path:
    """``root/CLASS/IMG`` with two classes (colour photos, grey photos) of mixed sizes, modes and formats."""
    files = photo_files(2 * per_class)
    for i, (image, mode, suffix) in enumerate(files):
        cls = "colour" if image.mode == "RGB" else "grey"
        (root / cls).mkdir(parents=True, exist_ok=True)
        _save(image, mode, root / cls / f"{i:03d}{suffix}")
    return root


def unlabelled_folder(root: Path, count: int = 16) -> Path:
    """Photos in any nesting, some at the top, no class folders: an unlabelled collection."""
    for i, (image, mode, suffix) in enumerate(photo_files(count, seed=1)):
        folder = root / ("" if i % 3 == 0 else f"trip-{i % 2}/day-{i % 3}")
        folder.mkdir(parents=True, exist_ok=True)
        _save(image, mode, folder / f"IMG_{i:04d}{suffix}")
    return root


def truncated_jpeg(path: Path) -> Path:
    """A JPEG whose header is intact and whose data stops half way: readable by the index, not decodable."""
    _photo("chelsea").save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def huge_png_header(path: Path, side: int = 30000) -> Path:
    """A PNG that declares side × side pixels (only its header: opening it must already refuse it)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def fashion_imagenet_layout(root: Path, train_per_class: int = 6, val_per_class: int = 2) -> Path:
    """Fashion-MNIST written out as PNG files in ImageNet's layout: ``train/CLASS/*.png``, ``val/CLASS/*.png``."""
    import zoo

    for split, folder, per_class in (("train", "train", train_per_class), ("test", "val", val_per_class)):
        ds = zoo.load_dataset("fashion-mnist", split=split)
        labels = np.asarray(ds["label"])
        for cls in range(10):
            for j, row in enumerate(np.flatnonzero(labels == cls)[:per_class]):
                out = root / folder / f"n{cls:08d}"
                out.mkdir(parents=True, exist_ok=True)
                ds[int(row)]["image"].save(out / f"{split}_{cls}_{j}.png")
    return root
