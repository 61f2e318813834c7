"""One decoding rule for every image sslzoo reads: training workers, ``to_arrays``, evaluation and the app.

Any PIL mode becomes 8-bit ``L`` (1 channel) or ``RGB`` (3 channels):

* 16-bit integer images (``I;16``, ``I;16B``, ``I;16L``, ``I``) are scaled by 1/257 (65535 → 255), not clipped;
* float images (``F``) in [0, 1] are scaled by 255, other ranges are clipped to [0, 255];
* transparency (``RGBA``, ``LA``, ``P`` with a transparent colour) is flattened onto white;
* ``CMYK``, ``YCbCr``, palettes and 1-bit images convert as PIL converts them.

A JPEG can be decoded at 1/2, 1/4 or 1/8 of its size (``draft``) when the caller knows it needs no more pixels —
the cheapest way to cut full-resolution photos down to training crops.

>>> from PIL import Image
>>> import numpy as np
>>> im = Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16))
>>> np.asarray(to_channels(im, 1)).tolist()
[[255, 255], [255, 255]]
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import SslzooError

__all__ = ["GRAY_MODES", "MAX_PIXELS", "channels_of_mode", "open_image", "to_channels"]

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_SIXTEEN_BIT = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# Pillow's own decompression-bomb limit (~89 megapixels) is a warning; above it we refuse to decode: a
# 30000×30000 image would take 2.7 GB as RGB in every worker.
MAX_PIXELS = 89_478_485


def channels_of_mode(mode: str) -> int:
    """1 for grey-level modes, 3 for everything else (colour, palettes, CMYK)."""
    return 1 if mode in GRAY_MODES else 3


def open_image(source: Any, what: str = "image") -> Any:
    """Open a file path, bytes or ``{"path", "bytes"}`` row lazily (header read, pixels not yet decoded).

    Raises:
        SslzooError: not an image, empty, or more than :data:`MAX_PIXELS` pixels.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, dict):
        source = source.get("bytes") or source.get("path")
    if isinstance(source, bytes | bytearray):
        fp: Any = io.BytesIO(source)
    elif isinstance(source, str | Path):
        fp = str(source)
    else:
        return source  # already a PIL image
    try:
        image = Image.open(fp)
    except Image.DecompressionBombError:
        raise SslzooError(
            f"{what} has too many pixels to decode safely (over {MAX_PIXELS / 1e6:.0f} megapixels); downscale it "
            "first."
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise SslzooError(f"{what} is not a readable image ({type(exc).__name__}).") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise SslzooError(
            f"{what} is {width}×{height} ({width * height / 1e6:.0f} megapixels, over the "
            f"{MAX_PIXELS / 1e6:.0f} MP limit); downscale it first."
        )
    if width == 0 or height == 0:
        raise SslzooError(f"{what} is empty (0 pixels wide or high).")
    return image


def to_channels(image: Any, channels: int) -> Any:
    """Decode ``image`` (a PIL image, possibly lazy) to 8-bit ``L`` (``channels=1``) or ``RGB`` (3)."""
    from PIL import Image

    mode = image.mode
    if mode in _SIXTEEN_BIT:
        array = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8))
    elif mode == "F":
        array = np.asarray(image, dtype=np.float64)
        finite = array[np.isfinite(array)]
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            array = array * 255.0
        image = Image.fromarray(np.clip(np.round(np.nan_to_num(array)), 0, 255).astype(np.uint8))
    elif (mode == "P" and "transparency" in image.info) or mode in _ALPHA:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    target = "L" if channels == 1 else "RGB"
    return image if image.mode == target else image.convert(target)
