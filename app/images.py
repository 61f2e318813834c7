"""Turn whatever a user uploads into one RGB PIL image, or one line saying why it cannot be used.

The app never hands an upload straight to a model: :func:`read_image` opens it with Pillow, refuses files that
are not images or are too large to decode safely, flattens transparency onto white, converts CMYK, palette,
grayscale and 16-bit/float images to 8-bit RGB, applies the EXIF orientation, and shrinks anything larger than
:data:`MAX_SIDE` pixels on its longer side. What it changed comes back as a short note for the page.

>>> from PIL import Image
>>> image, note = read_image(Image.new("CMYK", (4000, 3000)))
>>> image.mode, image.size, note
('RGB', (1024, 768), 'converted from CMYK; downscaled from 4000×3000')
"""

from __future__ import annotations

import base64
import io
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoo.errors import SslzooError

MAX_SIDE = 1024  # longer side after loading; models see at most a few hundred pixels anyway
MAX_PIXELS = 64_000_000  # refuse to decode more than this (a 64 MP RGB image is ~200 MB in memory)
EXAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")


def _open(source: Any) -> Image.Image:
    if source is None:
        raise SslzooError("no image given: upload an image, pick an example, or click a gallery image.")
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, dict):  # a Gradio FileData payload: an uploaded file, or a data: URL
        url = str(source.get("url") or "")
        if not source.get("path") and url.startswith("data:"):
            return _open_bytes(base64.b64decode(url.partition(",")[2]), "the pasted image")
        source = source.get("path")
        if not source:
            raise SslzooError("no image given: upload an image, pick an example, or click a gallery image.")
    path = Path(str(source))
    if not path.is_file():
        raise SslzooError(f"cannot find the uploaded file {path.name!r}; upload it again.")
    return _open_bytes(path, path.name)


def _open_bytes(source: Path | bytes, name: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns above ~89 MP and raises above ~179 MP; we apply our own limit below instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Image.DecompressionBombError:
        raise SslzooError(
            f"{name} is too large to decode safely; downscale it below {MAX_PIXELS // 1_000_000} megapixels."
        ) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise SslzooError(
            f"{name} is not an image Pillow can read; upload a PNG, JPEG, WebP, GIF, BMP or TIFF file."
        ) from None


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise SslzooError(
            f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {array.shape}."
        )
    if array.dtype != np.uint8:
        array = _to_uint8(array.astype(np.float64))
    return Image.fromarray(array)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Stretch any numeric range to 0..255 (16-bit and float images would otherwise clip to white)."""
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = (np.nan_to_num(values, nan=lo) - lo) / (hi - lo if hi > lo else 1.0)
    return np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)


def _to_rgb(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """The decoding rule of training and evaluation (:func:`zoo.imaging.to_channels`), with a note of what it did."""
    from zoo.imaging import to_channels

    notes: list[str] = []
    mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        if np.asarray(image.convert("RGBA").getchannel("A")).min() < 255:
            notes.append("transparency flattened onto white")
    elif mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        notes.append(f"{mode} image scaled to 8 bits")
    elif mode not in ("RGB", "L", "1", "P"):
        notes.append(f"converted from {mode}")
    return to_channels(image, 3), notes


def read_image(source: Any, max_side: int = MAX_SIDE) -> tuple[Image.Image, str]:
    """Load an upload as an 8-bit RGB image of at most ``max_side`` pixels on its longer side.

    Args:
        source: A file path, a Gradio file payload (``{"path": ...}``), a PIL image or an ``(H, W[, C])`` array.
        max_side: Longer side after loading; larger images are shrunk (aspect ratio kept).

    Returns:
        ``(image, note)``: the RGB image and a short note of what was changed (``""`` when nothing was).

    Raises:
        SslzooError: no image, not an image, too many pixels, or a truncated/corrupt file.
    """
    image = _open(source)
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise SslzooError(
            f"the image is {width}×{height} ({width * height / 1e6:.0f} megapixels); the app reads up to "
            f"{MAX_PIXELS // 1_000_000} megapixels, so downscale it first."
        )
    if width == 0 or height == 0:
        raise SslzooError("the image is empty (0 pixels wide or high); upload another one.")
    try:
        if getattr(image, "format", None) == "JPEG":
            image.draft("RGB", (max_side, max_side))  # decode big JPEGs at a reduced scale directly
        image.load()
        image = ImageOps.exif_transpose(image)
        image, notes = _to_rgb(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise SslzooError(
            f"the image could not be decoded ({str(exc) or type(exc).__name__}); it may be truncated, "
            "so upload it again or re-save it."
        ) from None
    if max(image.size) > max_side:
        notes.append(f"downscaled from {width}×{height}")
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image, "; ".join(notes)


def enlarge(image: Image.Image, min_side: int = 224) -> Image.Image:
    """Scale tiny images (8×8 digits, 28×28 Fashion-MNIST) up with square pixels so they are visible."""
    factor = max(1, int(np.ceil(min_side / max(1, min(image.size)))))
    if factor == 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def example_photos(folder: str | Path | None = None) -> list[str]:
    """scikit-image's bundled photos (astronaut, chelsea, coffee, …) saved as PNGs; returns their paths."""
    import skimage.data

    folder = Path(folder or Path(tempfile.gettempdir()) / "sslzoo-app-examples")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in EXAMPLE_PHOTOS:
        path = folder / f"{name}.png"
        if not path.is_file():
            tmp = path.with_suffix(".tmp.png")
            Image.fromarray(getattr(skimage.data, name)()).save(tmp)
            tmp.replace(path)
        paths.append(str(path))
    return paths
