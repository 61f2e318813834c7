"""Is an upload like the gallery's images? A check on the pixels, beside the check on the embeddings.

The neighbours tab flags an upload whose best match is less similar than 99% of gallery images are to their own
nearest neighbour (:meth:`app.gallery.GalleryIndex.in_domain_threshold`). That misses photos an encoder maps
close to the gallery anyway: scikit-image's astronaut, seen at 28 px in grey, reaches a similarity of 0.93 to a
Fashion-MNIST shirt under ``simclr-fmnist`` (the gallery's own 1st percentile is 0.91). Its pixels say what the
embedding does not: Fashion-MNIST's garments lie on black, so the border of a gallery image is dark (99% of them
below 0.22 of full brightness), while the photo's border is at 0.42.

:class:`PixelRange` holds, per statistic of the grey image (mean, contrast, border brightness), the range that
99% of gallery images fall in (0.5th to 99.5th percentile); an upload outside any of them is named with the
statistic, its value and the gallery's range.

>>> import numpy as np
>>> dark = [np.zeros((28, 28), np.float32) for _ in range(50)]
>>> for image in dark:
...     image[8:20, 8:20] = 1.0
>>> PixelRange.of(dark).outside(np.ones((28, 28), np.float32))
['border brightness 1.00 (gallery 0.00–0.00)', 'mean brightness 1.00 (gallery 0.18–0.18)', 'contrast 0.00 (gallery 0.39–0.39)']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

PERCENTILES = (0.5, 99.5)  # the range 99% of gallery images fall in
MAX_SAMPLES = 1000  # gallery images whose statistics are measured (evenly spaced over the split)
BORDER_FRACTION = 1 / 14  # the border ring's width as a fraction of the side (2 px of 28), at least 1 px
STATISTICS = ("border brightness", "mean brightness", "contrast")


def grey(image: Image.Image) -> np.ndarray:
    """``image`` as an (H, W) float32 array in [0, 1] (PIL's luma for colour images)."""
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def statistics(pixels: np.ndarray) -> np.ndarray:
    """``(3,)``: border brightness, mean brightness and contrast (standard deviation) of an (H, W) grey image."""
    height, width = pixels.shape
    ring = max(1, round(min(height, width) * BORDER_FRACTION))
    inner = pixels[ring : height - ring, ring : width - ring]
    border = (pixels.sum() - inner.sum()) / max(1, pixels.size - inner.size)
    return np.array([border, pixels.mean(), pixels.std()], dtype=np.float64)


@dataclass(frozen=True)
class PixelRange:
    """Per statistic of :data:`STATISTICS`, the (low, high) range of 99% of a gallery's images."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, images: Iterable[np.ndarray]) -> PixelRange:
        """The range of (H, W) grey images in [0, 1] (see :func:`sample`)."""
        values = np.stack([statistics(p) for p in images])
        low, high = np.percentile(values, PERCENTILES, axis=0)
        return cls(low, high)

    def outside(self, pixels: np.ndarray) -> list[str]:
        """What of an (H, W) grey image lies outside the gallery's ranges, e.g. ``border brightness 0.42 (…)``."""
        values = statistics(pixels)
        return [
            f"{name} {v:.2f} (gallery {lo:.2f}–{hi:.2f})"
            for name, v, lo, hi in zip(STATISTICS, values, self.low, self.high)
            if not lo - 1e-6 <= v <= hi + 1e-6
        ]


def sample(count: int, most: int = MAX_SAMPLES) -> Sequence[int]:
    """At most ``most`` indices of ``range(count)``, evenly spaced."""
    return np.unique(np.linspace(0, count - 1, min(count, most)).round().astype(int)).tolist()
