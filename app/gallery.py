"""What the neighbours tab searches and answers with: a gallery (a dataset split and its labels), its index of
embeddings, and one query's neighbours with the checks of whether the query belongs to the gallery's domain."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from app.domain import PixelRange, grey, sample
from zoo.errors import SslzooError

# An upload is "far from the gallery" when its best similarity is below what 99% of gallery images reach to their
# own nearest neighbour (the 1st percentile of the gallery's leave-one-out nearest-neighbour similarities).
OOD_PERCENTILE = 1.0
# Collapsed features put all of a query's neighbours at almost one cosine: dino-vit-fmnist's 10 nearest lie within
# 0.005 of each other for 95% of Fashion-MNIST queries (median spread 0.0011). A trained encoder does that too for
# some queries with near-duplicates (byol-fmnist: 8% at k = 10, median 0.013), so the warning also asks whether the
# gallery's own images have such tight neighbourhoods (GalleryIndex.spread): then it is the encoder, not the query.
COLLAPSE_SPREAD = 0.005
COLLAPSE_K = 10  # the neighbourhood GalleryIndex.spread measures
COLLAPSE_MIN_NEIGHBOURS = 3


SMALL_IMAGE_SIDE = 64  # galleries of images this small are decoded once into one array (10k × 28² is 8 MB)


@dataclass
class Gallery:
    """A dataset split to search: its rows (PIL images), integer labels ``(N,)`` and class names.

    ``pixels`` ``(N, H, W, C)`` uint8 holds every image when they are small and of one size (decoding a dataset
    row costs milliseconds; indexing the array costs microseconds), else ``None``.
    """

    name: str
    split: str
    dataset: Any
    labels: np.ndarray
    classes: list[str]
    pixels: np.ndarray | None = None
    _pixel_range: PixelRange | None = field(default=None, repr=False)

    def pixel_range(self) -> PixelRange:
        """The range of 99% of the gallery's grey-level statistics (measured once, on at most 1,000 images)."""
        if self._pixel_range is None:
            self._pixel_range = PixelRange.of(grey(self.image(i)) for i in sample(len(self.labels)))
        return self._pixel_range

    def image(self, index: int) -> Image.Image:
        if not 0 <= index < len(self.labels):
            raise SslzooError(
                f"gallery {self.name} has images 0..{len(self.labels) - 1}; index {index} is out of range."
            )
        if self.pixels is not None:
            pixels = np.asarray(self.pixels[int(index)])
            return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        return self.dataset[int(index)]["image"]

    def class_name(self, label: int) -> str:
        return self.classes[label] if 0 <= label < len(self.classes) else str(label)


def small_pixels(ds: Any) -> np.ndarray | None:
    """All images as one array when they are small (:data:`SMALL_IMAGE_SIDE`) and of one size, else ``None``."""
    import zoo

    if max(ds[0]["image"].size) > SMALL_IMAGE_SIDE:
        return None
    try:
        return zoo.to_arrays(ds)[0]  # cached on disk by the split's fingerprint, memory-mapped afterwards
    except SslzooError:  # images of mixed sizes
        return None


@dataclass
class GalleryIndex:
    """L2-normalised gallery embeddings ``(N, D)``, searched exactly, and how close gallery images sit to each
    other: ``nearest`` ``(N,)`` is each image's similarity to its nearest *other* image, ``spread`` the median
    spread (most minus least similar) of gallery images' :data:`COLLAPSE_K` nearest others (:func:`neighbour_spread`)."""

    feats: np.ndarray
    cached: bool
    nearest: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    spread: float = float("nan")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(M, D)`` normalised queries → similarities and indices ``(M, k)``, most similar first.

        Exact: every gallery image is scored; ties are broken by the lower index.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.feats.shape[1])
        k = min(int(k), len(self.feats))
        # (M, N) cosine similarities. One query (a page request) is summed in this thread: waking BLAS threads on
        # two busy cores costs ~25 ms, the product itself ~1 ms for 10k × 96.
        if len(queries) == 1:
            sims = np.einsum("nd,d->n", self.feats, queries[0])[None]
        else:
            sims = queries @ self.feats.T
        top = (
            np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < len(self.feats) else np.argsort(-sims, axis=1)
        )
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.lexsort((top, -top_sims), axis=1)  # by similarity, then index
        return np.take_along_axis(top_sims, order, axis=1), np.take_along_axis(top, order, axis=1)

    def in_domain_threshold(self, percentile: float = OOD_PERCENTILE) -> float:
        """The nearest-neighbour similarity that all but ``percentile``% of gallery images reach."""
        return float(np.percentile(self.nearest, percentile)) if len(self.nearest) else -1.0


@dataclass
class NeighbourResult:
    """The ``k`` gallery neighbours of one query, all voting, and what produced them.

    ``rows`` hold ``rank, index, label, class, similarity`` (a gallery query is never its own neighbour);
    ``model_input`` is the picture the encoder saw (after its own resize, crop and colour conversion); ``nearest``
    and ``in_domain`` compare the best similarity with the gallery's own nearest-neighbour similarities.
    """

    rows: list[dict[str, Any]]
    predicted: str
    scores: dict[str, float]
    query: Image.Image
    model: str
    gallery: str
    k: int
    model_input: Image.Image | None = None
    query_index: int | None = None
    nearest: float = float("nan")
    in_domain: float = -1.0
    note: str = ""
    unlike_gallery: list[str] = field(default_factory=list)
    gallery_spread: float = float("nan")

    @property
    def far_in_embedding(self) -> bool:
        """The best match is less similar than the gallery's images are to their own nearest neighbours."""
        return self.query_index is None and self.nearest < self.in_domain

    @property
    def out_of_domain(self) -> bool:
        """An upload far from the gallery in the embedding, or with pixels unlike 99% of the gallery's
        (``unlike_gallery`` names the statistics, see :mod:`app.domain`)."""
        return self.far_in_embedding or (self.query_index is None and bool(self.unlike_gallery))

    @property
    def collapsed(self) -> bool:
        """All neighbours within :data:`COLLAPSE_SPREAD` cosine of each other (:func:`looks_collapsed`)."""
        return looks_collapsed([r["similarity"] for r in self.rows], self.gallery_spread)


def looks_collapsed(
    similarities: Any,
    gallery_spread: float = float("nan"),
    spread: float = COLLAPSE_SPREAD,
    min_neighbours: int = COLLAPSE_MIN_NEIGHBOURS,
) -> bool:
    """Whether a query's neighbour similarities ``(k,)`` all lie within ``spread`` cosine of each other, and the
    gallery's own neighbourhoods are as tight (``gallery_spread`` below ``spread``; NaN: not known, not asked).

    The sign of collapsed features: an encoder that maps images to nearly one vector finds their neighbours all
    equally similar, so the ranking is noise. Fewer than ``min_neighbours`` similarities are never called collapsed
    (one or two neighbours are always close to each other).

    >>> looks_collapsed([0.9997, 0.9991, 0.9986]), looks_collapsed([0.93, 0.91, 0.88])
    (True, False)
    >>> looks_collapsed([0.9997, 0.9991, 0.9986], gallery_spread=0.013)  # near-duplicates under a good encoder
    False
    """
    sims = np.asarray(similarities, dtype=np.float64).ravel()
    sims = sims[np.isfinite(sims)]
    tight = len(sims) >= min_neighbours and float(sims.max() - sims.min()) < spread
    return tight and not float(gallery_spread) >= spread  # NaN compares False: the query's rule alone


def neighbour_spread(feats: np.ndarray, k: int = COLLAPSE_K, sample: int = 1000, seed: int = 0) -> float:
    """Median over (at most ``sample``) gallery images of the spread of their ``k`` nearest others' cosines.

    Args:
        feats: ``(N, D)`` L2-normalised gallery embeddings.
    """
    n = len(feats)
    k = min(int(k), n - 1)
    if k < 2:
        return float("nan")
    rows = (
        np.random.default_rng(seed).choice(n, min(sample, n), replace=False) if n > sample else np.arange(n)
    )
    sims = feats[rows] @ feats.T  # (S, N)
    sims[np.arange(len(rows)), rows] = -np.inf  # not itself
    top = -np.partition(-sims, k - 1, axis=1)[:, :k]  # the k largest, unordered
    return float(np.median(top.max(axis=1) - top.min(axis=1)))


def nearest_other(index: GalleryIndex, chunk: int = 1024) -> np.ndarray:
    """Each gallery image's similarity to its most similar *other* gallery image ``(N,)`` (leave-one-out)."""
    feats = index.feats
    if len(feats) < 2:
        return np.zeros(len(feats), dtype=np.float32)
    out = np.empty(len(feats), dtype=np.float32)
    for start in range(0, len(feats), chunk):
        sims = feats[start : start + chunk] @ feats.T
        rows = np.arange(len(sims))
        sims[rows, start + rows] = -np.inf  # not itself (an exact duplicate elsewhere still counts)
        out[start : start + len(sims)] = sims.max(axis=1)
    return out
