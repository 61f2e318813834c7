"""A dataset split held as one uint8 tensor, so a batch is an index operation and augmentation runs batched.

>>> data = ImageTensors.load("digits", "train")
>>> data.images.shape, data.images.dtype
(torch.Size([1437, 1, 8, 8]), torch.uint8)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from zoo.errors import SslzooError

# Below this many bytes the whole split moves to the GPU and batches never cross the PCIe bus.
DEVICE_RESIDENT_BYTES = 2 * 1024**3


@dataclass
class ImageTensors:
    """Images (N, C, H, W) uint8 and labels (N,) int64 of one split."""

    images: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def load(cls, dataset: str, split: str) -> ImageTensors:
        import zoo

        images, labels = zoo.to_arrays(zoo.load_dataset(dataset, split=split))
        tensor = torch.from_numpy(np.array(np.asarray(images).transpose(0, 3, 1, 2), order="C"))
        return cls(tensor, torch.from_numpy(np.asarray(labels, dtype=np.int64)))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def side(self) -> int:
        return self.images.shape[-1]

    def to(self, device: torch.device) -> ImageTensors:
        if device.type != "cpu" and self.images.numel() > DEVICE_RESIDENT_BYTES:
            return self  # too big: batches are moved one at a time
        return ImageTensors(self.images.to(device), self.labels.to(device))

    def batch(self, indices: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) floats in [0, 1] and (B,) labels of ``indices``, on ``device``."""
        idx = indices.to(self.images.device)
        images = self.images[idx].to(device, non_blocking=True).float().div_(255.0)
        return images, self.labels[idx].to(device, non_blocking=True)

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and standard deviation in [0, 1] units (on at most 10,000 images)."""
        sample = self.images[: min(len(self), 10_000)].float().div(255.0)
        mean = sample.mean(dim=(0, 2, 3))
        std = sample.std(dim=(0, 2, 3)).clamp(min=1e-3)
        return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


def load_splits(dataset: str) -> tuple[ImageTensors, ImageTensors | None]:
    """The train split and, when the dataset has one, the test split (for the k-NN monitor)."""
    import zoo

    splits = zoo.load_dataset(dataset)
    if "train" not in splits:
        raise SslzooError(f"dataset {dataset!r} has no train split; its splits are {', '.join(splits)}.")
    train = ImageTensors.load(dataset, "train")
    test = ImageTensors.load(dataset, "test") if "test" in splits else None
    return train, test
