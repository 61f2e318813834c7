"""Baseline "encoders" every leaderboard dataset gets rows for, and the one resolver the evaluators use for names.

* ``raw-pixels``: the image itself, flattened, scaled to [0, 1]. What an encoder must beat to be worth anything.
* ``raw-pixels-centred``: the same minus the train split's mean image. Cosine similarity then compares how images
  differ from the average one, which scores higher (86.1% k-NN on Fashion-MNIST against 84.6% uncentred): the
  stronger of the two pixel baselines.
* ``random-ARCH`` (e.g. ``random-sslzoo_cnn4``): timm's ``ARCH`` with randomly initialised weights (seed 0). Random
  conv nets are surprisingly good k-NN encoders; this row separates what training added from what the architecture
  gives for free.

>>> resolve_encoder("raw-pixels", "digits").identity
'raw-pixels-v1'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from zoo.errors import SslzooError

RAW_PIXELS = "raw-pixels"
CENTRED_PIXELS = "raw-pixels-centred"
RANDOM_PREFIX = "random-"
BASELINES = (RAW_PIXELS, CENTRED_PIXELS, "random-sslzoo_cnn4")
RANDOM_SEED = 0


class RawPixels:
    """Flattened pixels in [0, 1] as features: (N, H·W·C). Needs no weights and no cache (decoding is instant)."""

    name = RAW_PIXELS
    identity = "raw-pixels-v1"
    preprocessing = "uint8 pixels / 255, flattened in (H, W, C) order"
    cacheable = False

    def embed(self, images: Any, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
        """(N, H·W·C) float32 for a ``datasets.Dataset``, a list of PIL images or an (N, H, W[, C]) uint8 array."""
        import zoo

        if hasattr(images, "features") and hasattr(images, "select"):  # a datasets.Dataset
            arrays, _ = zoo.to_arrays(images)
        elif isinstance(images, list | tuple):
            arrays = np.stack([np.asarray(im) for im in images])
        else:
            arrays = np.asarray(images)
        return torch.from_numpy(np.asarray(arrays, dtype=np.float32).reshape(len(arrays), -1) / 255.0)


class CentredPixels(RawPixels):
    """Flattened pixels in [0, 1] minus the mean image of ``dataset``'s train split: (N, H·W·C).

    Args:
        dataset: The dataset whose train split gives the mean (the features depend on it, so it is in the
            identity).
    """

    name = CENTRED_PIXELS
    preprocessing = "uint8 pixels / 255, flattened in (H, W, C) order, minus the train split's mean image"

    def __init__(self, dataset: str) -> None:
        import zoo

        self.identity = f"raw-pixels-centred-v1:{dataset}"
        train, _ = zoo.to_arrays(zoo.load_dataset(dataset, split="train"))
        mean = (
            np.asarray(train, dtype=np.float64).reshape(len(train), -1).mean(0) / 255.0
        )  # summed in float64
        self.mean = torch.from_numpy(mean.astype(np.float32))

    def embed(self, images: Any, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
        """(N, H·W·C) float32: :meth:`RawPixels.embed` minus the train mean image."""
        feats = super().embed(images, batch_size, progress)
        if feats.shape[1] != self.mean.numel():
            raise SslzooError(
                f"{CENTRED_PIXELS} of this dataset takes images of {self.mean.numel()} values, got "
                f"{feats.shape[1]}; give images of the same size and channels as its train split."
            )
        return feats - self.mean


def _in_chans(dataset: str) -> int:
    from PIL import Image

    from evaluators.sources import FileSplit, open_split

    split = open_split(dataset, "test")
    if isinstance(split, FileSplit):
        with Image.open(split.paths[0]) as image:
            mode = image.mode
    else:
        mode = split[0]["image"].mode
    return 1 if mode in ("L", "I", "I;16", "1") else 3


def random_init_encoder(arch: str, in_chans: int, seed: int = RANDOM_SEED):
    """A ``zoo.Encoder`` around ``timm.create_model(arch, in_chans=in_chans, num_classes=0)`` seeded with ``seed``.

    The weights depend only on (arch, in_chans, seed, timm version), so the encoder's identity (its weights' hash)
    is the same on every run and its features are cached like any other encoder's.
    """
    import timm

    import zoo
    import zoo.architectures  # registers the sslzoo_* architectures with timm

    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(arch, in_chans=in_chans, num_classes=0, pretrained=False)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise SslzooError(
                f"unknown architecture {arch!r} for a random-init baseline; use a timm name, "
                "e.g. random-sslzoo_cnn4 or random-resnet18."
            ) from None
        raise
    return zoo.Encoder.from_model(model.eval(), name=f"{RANDOM_PREFIX}{arch}")


def resolve_encoder(model: str, dataset: str, *, device: str | None = None):
    """The encoder for a model string: a baseline name, else whatever :func:`zoo.load` accepts.

    Args:
        model: ``raw-pixels``, ``raw-pixels-centred``, ``random-ARCH``, a zoo name, ``hf-hub:ORG/NAME[@REV]`` or a
            local folder.
        dataset: The dataset it will embed (a random-init encoder takes its input channels from it).
        device: Where to run the encoder (default: the zoo's choice).
    """
    import zoo

    if model == RAW_PIXELS:
        return RawPixels()
    if model == CENTRED_PIXELS:
        return CentredPixels(dataset)
    if model.startswith(RANDOM_PREFIX):
        encoder = random_init_encoder(model[len(RANDOM_PREFIX) :], _in_chans(dataset))
        return encoder.to(device) if device else encoder
    return zoo.load(model, device=device)
