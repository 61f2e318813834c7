"""What the engine builds before the first step: the data sources, the optimiser, and the checks of a method's
views against its backbone."""

from __future__ import annotations

from typing import Any

import torch

from trainers.config import TrainConfig
from trainers.context import is_vit
from trainers.sources import ImageSource, is_stream, load_source
from trainers.views import CropSpec
from zoo.errors import SslzooError


def load_sources(cfg: TrainConfig) -> tuple[ImageSource, ImageSource | None, ImageSource | None]:
    """The train split, and the k-NN monitor's labelled bank and test split (``--eval-dataset`` or the
    training dataset's own, when it has labelled train and test splits)."""
    import zoo

    train = load_source(cfg.dataset, "train")
    monitor = cfg.eval_dataset or (None if is_stream(cfg.dataset) else cfg.dataset)
    if monitor is None:
        return train, None, None  # a stream has no labelled test split to read at random: --eval-dataset
    splits = zoo.load_dataset(monitor)
    if "test" not in splits:
        if cfg.eval_dataset:
            raise SslzooError(f"--eval-dataset {cfg.eval_dataset!r} has no test split for the k-NN monitor.")
        return train, None, None
    bank = train if monitor == cfg.dataset else load_source(monitor, "train")
    test = load_source(monitor, "test")
    if not (bank.labelled and test.labelled):
        if cfg.eval_dataset:
            raise SslzooError(f"--eval-dataset {cfg.eval_dataset!r} is unlabelled; give a labelled dataset.")
        return train, None, None
    return train, bank, test


def unreadable_images(cfg: TrainConfig) -> list[Any]:
    """The unreadable files of the training dataset and of ``--eval-dataset`` (:class:`zoo.folders.UnreadableFiles`,
    only those with any), read from their cached indexes.

    Raises:
        SslzooError: ``--strict-images`` and an unreadable file in either.
    """
    from zoo.datasets import unreadable_files

    names = dict.fromkeys(n for n in (cfg.dataset, cfg.eval_dataset) if n and not is_stream(n))
    found = [unreadable_files(name, strict=cfg.strict_images) for name in names]
    return [f for f in found if len(f)]


def check_crop_sizes(arch: str, backbone: Any, specs: list[CropSpec]) -> None:
    """A ViT without dynamic position embeddings takes one input size: say so before any image is read."""
    if not is_vit(arch) or getattr(backbone, "dynamic_img_size", True):
        return
    accepted = tuple(getattr(getattr(backbone, "patch_embed", None), "img_size", ()) or ())
    for spec in specs:
        if accepted and (spec.size, spec.size) != tuple(accepted):
            raise SslzooError(
                f"{arch} takes {accepted[0]}-px inputs only, but a view is {spec.size} px; drop "
                "'dynamic_img_size=False' from --arch-args or set the crop sizes to match."
            )


def build_optimizer(method: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = [g for g in method.param_groups() if g["params"]]
    for g in groups:
        g.setdefault("apply_wd", True)
        g.setdefault("lr_scale", 1.0)
        g["weight_decay"] = cfg.weight_decay if g["apply_wd"] else 0.0
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.sgd_momentum)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "lars":
        from timm.optim import Lars

        # timm's LARS adapts only groups with weight decay: biases and norms get plain SGD (SimCLR App. B.1).
        return Lars(groups, lr=cfg.lr, momentum=cfg.sgd_momentum)
    raise SslzooError(f"unknown optimizer {cfg.optimizer!r}; choose sgd, adamw or lars.")
