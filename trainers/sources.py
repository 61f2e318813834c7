"""Where training images come from: one random-access interface over every dataset the datasets door serves.

A source opens image ``i`` lazily (PIL reads the header; pixels are decoded later, possibly at reduced size) and
knows its labels (-1 when unlabelled), its channels and a sensible training side. Nothing is decoded up front:

* :class:`ArraySource` — the small named datasets (``fashion-mnist``, ``digits``), decoded once by
  ``zoo.to_arrays`` into a memory-mapped uint8 array (an image is a slice, no file to open);
* :class:`FileSource` — everything else (``folder:``, ``hf:``): rows of a ``datasets`` split read undecoded
  (a path or the encoded bytes), so any size, mode and format works and JPEGs can be drafted;
* :class:`StreamSource` — ``hf:ORG/NAME?streaming=1``: a Hub dataset read as a stream (no full download), sharded
  over ranks and DataLoader workers; no random access, so it serves the methods that need none.

>>> source = load_source("digits", "train")
>>> len(source), source.channels, source.native_side
(1437, 1, 8)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from zoo.errors import SslzooError
from zoo.imaging import channels_of_mode, open_image

__all__ = ["ArraySource", "FileSource", "ImageSource", "StreamSource", "is_stream", "load_source"]

# ImageNet statistics (torchvision's), used for file collections: computing a 1.28 M-image mean is not worth it.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GRAY_MEAN, GRAY_STD = (0.449,), (0.226,)
PROBE_IMAGES = 64  # headers read to choose channels and the default side of a file collection


class ImageSource:
    """Random access to one split. Subclasses set ``labels``, ``channels``, ``native_side``.

    Attributes:
        labels: (N,) int64 on the CPU; -1 for an unlabelled image.
        channels: 1 (grey) or 3 (RGB): what every image is decoded to.
        native_side: The images' typical shorter side (the default training side is derived from it).
        name: ``dataset:split`` for messages.
    """

    labels: torch.Tensor
    channels: int
    native_side: int
    name: str

    def __len__(self) -> int:
        return int(self.labels.numel())

    @property
    def labelled(self) -> bool:
        return bool((self.labels >= 0).any())

    def open(self, index: int) -> Any:
        """Image ``index`` as a PIL image, lazily opened (decode with :func:`zoo.imaging.to_channels`)."""
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """What to name in a message about image ``index`` (its path where there is one)."""
        return f"{self.name}[{index}]"

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel normalisation in [0, 1] units."""
        return (GRAY_MEAN, GRAY_STD) if self.channels == 1 else (IMAGENET_MEAN, IMAGENET_STD)


class ArraySource(ImageSource):
    """A split decoded once into a memory-mapped (N, H, W, C) uint8 array (equal-sized small images)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, name: str) -> None:
        self.images = images
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.channels = int(images.shape[-1])
        self.native_side = int(min(images.shape[1:3]))
        self.name = name

    def open(self, index: int) -> Any:
        from PIL import Image

        array = np.asarray(self.images[index])
        return Image.fromarray(array[..., 0] if self.channels == 1 else array)

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Measured on at most 10,000 images: the small datasets are far from ImageNet's statistics."""
        sample = torch.from_numpy(np.array(self.images[: min(len(self), 10_000)])).float().div(255.0)
        mean = sample.mean(dim=(0, 1, 2))
        std = sample.std(dim=(0, 1, 2)).clamp(min=1e-3)
        return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


class FileSource(ImageSource):
    """Rows of a ``datasets`` split whose ``image`` column is read undecoded: ``{"path", "bytes"}``."""

    def __init__(self, ds: Any, name: str) -> None:
        import datasets

        self.ds = ds.cast_column("image", datasets.Image(decode=False)).select_columns(["image"])
        self.labels = torch.as_tensor(np.asarray(ds["label"], dtype=np.int64))
        self.name = name
        probe = []
        for i in np.linspace(0, len(ds) - 1, min(len(ds), PROBE_IMAGES)).astype(int):
            try:
                probe.append(self.open(i))
            except SslzooError:
                continue  # gone or changed since it was indexed: training skips it the same way
        self.channels = 1 if all(channels_of_mode(im.mode) == 1 for im in probe) else 3
        self.native_side = int(np.median([min(im.size) for im in probe])) if probe else 224

    def open(self, index: int) -> Any:
        return open_image(self.ds[int(index)]["image"], what=self.describe(index))

    def describe(self, index: int) -> str:
        row = self.ds[int(index)]["image"]
        return row.get("path") or f"{self.name}[{index}]"


def load_source(dataset: str, split: str) -> ImageSource:
    """The split ``split`` of ``dataset`` (any name ``zoo.load_dataset`` takes) as an :class:`ImageSource`."""
    import zoo
    from zoo.datasets import REGISTRY, load_stream, split_subset_options

    if is_stream(dataset):
        stream, length = load_stream(dataset, split)
        return StreamSource(stream, length, f"{dataset}:{split}")
    ds = zoo.load_dataset(dataset, split=split)
    if len(ds) == 0:
        raise SslzooError(f"the {split} split of {dataset!r} is empty.")
    name = f"{dataset}:{split}"
    if split_subset_options(dataset)[0] in REGISTRY:
        images, labels = zoo.to_arrays(ds)
        return ArraySource(images, labels, name)
    return FileSource(ds, name)


def is_stream(dataset: str) -> bool:
    """Whether ``dataset`` asks to be streamed (``hf:ORG/NAME?streaming=1``)."""
    from urllib.parse import parse_qsl

    return dict(parse_qsl(dataset.partition("?")[2])).get("streaming") in ("1", "true", "yes")


class StreamSource(ImageSource):
    """A ``datasets.IterableDataset`` with undecoded ``image`` and int ``label`` columns, of known length.

    Views of a streamed image are seeded by ``(seed, epoch, rank, worker, position in that worker's stream)``:
    reproducible for the same number of ranks and workers, not across them (a stream has no global index).
    """

    def __init__(
        self, stream: Any, length: int, name: str, channels: int = 3, native_side: int = 224
    ) -> None:
        self.stream, self.length, self.name = stream, int(length), name
        self.channels, self.native_side = channels, native_side
        self.labels = torch.zeros(0, dtype=torch.int64)

    def __len__(self) -> int:
        return self.length

    @property
    def labelled(self) -> bool:
        return False  # unknown without reading it all: the k-NN monitor takes --eval-dataset

    def open(self, index: int) -> Any:
        raise SslzooError(f"{self.name} is a stream: its images have no random access.")

    def describe(self, index: int) -> str:
        return f"{self.name} (streamed image {index})"
