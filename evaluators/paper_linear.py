"""The papers' linear evaluation (``linear-paper``): a linear layer trained by SGD on frozen features of augmented
images, as the official scripts run it. Not to be confused with ``linear``, the fast Newton-CG probe on cached features.

Protocol (DINO ``eval_linear.py``, DINOv2 ``dinov2/eval/linear.py``, MoCo ``main_lincls.py``, MoCo v3
``main_lincls.py``, SwAV ``eval_linear.py``; the numbers of each are a :class:`~zoo.registry.LinearRecipe`):

1. Train images go through ``RandomResizedCrop(224) + RandomHorizontalFlip`` and the encoder's normalisation, test
   images through the encoder's evaluation transform (``Resize(256) + CenterCrop(224)``). The images change every
   epoch, so features are computed on the fly and never cached.
2. The frozen encoder (eval mode, no gradients) gives the features the paper probed (``Encoder.features(x, kind)``:
   ``last4_cls`` for DINO ViT-S, ``cls_avgpool`` for DINO ViT-B and DINOv2, the pooled map for ResNets).
3. One ``nn.Linear(D, C)`` per learning rate, initialised ``N(0, 0.01)`` with zero bias, trained with SGD (momentum
   0.9, the recipe's weight decay) on the cross-entropy; the learning rate is ``lr × batch / 256`` when the recipe
   scales it, and follows the recipe's cosine (to 0) or step (× 0.1) schedule, per epoch or per iteration.
4. After every epoch (the last only for ``report="last"``) every head is scored on the test split; the reported
   top-1 is the best over epochs and heads (``"best"``: what DINO, MoCo and SwAV print at the end) or the best head
   after the last epoch (``"last"``: DINOv2).

Under ``torchrun`` the heads are wrapped in ``DistributedDataParallel`` (gloo on CPU, NCCL on GPUs), each rank
reads its ``DistributedSampler`` shard of train with ``batch / world`` images per step, and the test split is
scored in strided shards whose counts are summed over ranks, so the result equals one process with the same global
batch. On a CPU it runs too (tiny folders in the tests; an ImageNet run wants GPUs).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evaluators._dist import rank_world
from evaluators.sources import FileSplit, split_labels
from zoo.errors import SslzooError
from zoo.registry import LINEAR_RECIPES, LinearRecipe

HEAD_INIT_STD = 0.01  # every official script: weight.normal_(0, 0.01), bias.zero_()


def get_recipe(name: str) -> LinearRecipe:
    """The recipe registered as ``name`` (see ``zoo.registry.LINEAR_RECIPES``)."""
    if name not in LINEAR_RECIPES:
        raise SslzooError(f"unknown linear recipe {name!r}; choose from {', '.join(LINEAR_RECIPES)}.")
    return LINEAR_RECIPES[name]


def require_features(encoder: Any) -> None:
    """One line unless ``encoder`` has ``Encoder.features`` (the pixel baselines do not)."""
    if not hasattr(encoder, "features"):
        raise SslzooError(
            f"linear-paper trains on a zoo.Encoder's features of augmented images; {type(encoder).__name__} has "
            "none (evaluate raw pixels with knn, linear and clustering)."
        )


def paper_train_transform(encoder: Any, interpolation: str = "bilinear"):
    """The papers' training augmentation around the encoder's own normalisation.

    ``RandomResizedCrop(crop) + RandomHorizontalFlip()``, then the encoder transform's steps after its
    ``CenterCrop`` (to-tensor and ``Normalize``), with its colour-mode conversion first.
    """
    from torchvision import transforms

    steps = list(getattr(encoder.transform, "transforms", []))
    crops = [i for i, t in enumerate(steps) if isinstance(t, transforms.CenterCrop)]
    if not crops:
        raise SslzooError(
            f"linear-paper needs an encoder whose evaluation transform has a CenterCrop; {encoder!r} has "
            f"{encoder.transform!r}."
        )
    crop = steps[crops[0]].size
    size = crop[0] if isinstance(crop, (tuple, list)) else crop
    before = [t for t in steps[: crops[0]] if not isinstance(t, (transforms.Resize, transforms.CenterCrop))]
    mode = transforms.InterpolationMode(interpolation)
    return transforms.Compose(
        [
            *before,
            transforms.RandomResizedCrop(size, interpolation=mode),
            transforms.RandomHorizontalFlip(),
            *steps[crops[0] + 1 :],
        ]
    )


def lr_factor(recipe: LinearRecipe, t: float, total: float) -> float:
    """The schedule's multiplier at epoch (or iteration) ``t`` of ``total``."""
    if recipe.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t / total))  # CosineAnnealingLR(T_max=total, eta_min=0)
    if recipe.schedule == "step":
        return 0.1 ** sum(t >= m for m in recipe.milestones)
    raise SslzooError(f"unknown schedule {recipe.schedule!r} in recipe {recipe.name}; use cosine or step.")


def _all_reduce(x: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    if rank_world()[1] > 1:
        dist.all_reduce(x)
    return x


@torch.no_grad()
def _score(encoder: Any, heads: LinearHeads, loader, kind: str, device: torch.device) -> torch.Tensor:
    """``(heads, 3)`` summed over ranks: top-1 correct, top-5 correct, images."""
    counts = torch.zeros(len(heads.heads), 3, dtype=torch.float64)
    for x, y in loader:
        feats = encoder.features(x.to(device, non_blocking=True), kind).float()
        y = y.to(device)
        for h, logits in enumerate(heads(feats)):
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            hits = top.eq(y.view(-1, 1))
            counts[h] += torch.tensor([hits[:, 0].sum().item(), hits.any(dim=1).sum().item(), len(y)])
    return _all_reduce(counts.to(device)).cpu()


def run_paper_linear(
    encoder: Any,
    train_source: Any,
    test_source: Any,
    recipe: LinearRecipe | str,
    *,
    features: str = "default",
    epochs: int | None = None,
    batch_size: int | None = None,
    steps_per_epoch: int | None = None,
    num_workers: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and score the paper's linear classifier(s) on frozen ``features`` of ``encoder``.

    Args:
        encoder: A ``zoo.Encoder`` (on the device to use; under ``torchrun`` each rank's own GPU).
        train_source: Train split: ``datasets.Dataset`` with ``image``/``label`` or a ``FileSplit``.
        test_source: Test split (ImageNet's ``val``).
        recipe: A :class:`~zoo.registry.LinearRecipe` or its name.
        features: ``Encoder.features`` kind.
        epochs: Override the recipe's epochs (short runs; the record says so).
        batch_size: Override the recipe's total batch (the learning rate rescales when the recipe scales it).
        steps_per_epoch: Override the recipe's iterations per epoch (``None`` = the recipe's, else one pass).
        num_workers: DataLoader workers per rank.
        seed: Seed of the heads' initialisation and the sampler's shuffling.
        progress: Show progress bars (rank 0).

    Returns:
        ``{"top1", "top5", "epoch", "lr", "history", "heads", "params"}``: percentages of the reported (epoch,
        head), its epoch (1-based) and scaled learning rate, every scored epoch's top-1 per head, the trained heads'
        final state dict (``heads.{i}.weight`` (C, D), ``heads.{i}.bias``), and the parameters run.
    """
    from tqdm.auto import tqdm

    require_features(encoder)
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    recipe = dataclasses.replace(
        recipe,
        epochs=epochs or recipe.epochs,
        batch_size=batch_size or recipe.batch_size,
        steps_per_epoch=steps_per_epoch if steps_per_epoch is not None else recipe.steps_per_epoch,
    )
    rank, world = rank_world()
    if recipe.batch_size % world:
        raise SslzooError(
            f"the batch of {recipe.batch_size} does not split over {world} processes; pick a multiple."
        )
    device = encoder.device
    encoder.eval()
    train_ds = LabelledImages(train_source, paper_train_transform(encoder, recipe.train_interpolation))
    test_ds = LabelledImages(test_source, encoder.transform)
    labels = np.concatenate([split_labels(train_source), split_labels(test_source)])
    num_classes = int(labels.max()) + 1
    sampler = torch.utils.data.DistributedSampler(
        train_ds, num_replicas=world, rank=rank, shuffle=True, seed=seed
    )
    loader_args = {
        "num_workers": num_workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": num_workers > 0,
    }
    train_loader = torch.utils.data.DataLoader(
        train_ds, batch_size=recipe.batch_size // world, sampler=sampler, **loader_args
    )
    test_loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(test_ds, range(rank, len(test_ds), world)),
        batch_size=recipe.batch_size // world,
        **loader_args,
    )

    # Step 3: one head per learning rate, as the official scripts initialise them.
    torch.manual_seed(seed)
    dim = encoder.feature_dim(features)
    heads = LinearHeads(dim, num_classes, len(recipe.lrs)).to(device)
    scale = recipe.batch_size / 256 if recipe.lr_scaling == "linear" else 1.0
    base_lrs = [lr * scale for lr in recipe.lrs]
    model: nn.Module = heads
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            heads, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.SGD(
        [{"params": h.parameters(), "lr": lr} for h, lr in zip(heads.heads, base_lrs)],
        lr=base_lrs[0],
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
    )
    steps = recipe.steps_per_epoch or len(train_loader)
    total = recipe.epochs * steps if recipe.schedule_per_step else recipe.epochs
    history: list[list[float]] = []
    top5_history: list[list[float]] = []
    batches = _cycle(train_loader, sampler)
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        heads.train()
        for step in tqdm(
            range(steps),
            desc=f"linear-paper epoch {epoch + 1}/{recipe.epochs}",
            disable=not progress or rank != 0,
            leave=False,
        ):
            t = epoch * steps + step if recipe.schedule_per_step else epoch
            for group, lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = lr * lr_factor(recipe, t, total)
            x, y = next(batches)
            with torch.no_grad():  # Step 2: frozen encoder
                feats = encoder.features(x.to(device, non_blocking=True), features).float()
            logits = model(feats)
            y = y.to(device, non_blocking=True)
            # Heads share no parameter: the gradient of the sum is each head's own cross-entropy gradient.
            loss = sum(F.cross_entropy(out, y) for out in logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if recipe.report == "best" or epoch == recipe.epochs - 1:  # Step 4
            heads.eval()
            counts = _score(encoder, heads, test_loader, features, device)
            history.append((100.0 * counts[:, 0] / counts[:, 2]).tolist())
            top5_history.append((100.0 * counts[:, 1] / counts[:, 2]).tolist())
    scored = np.asarray(history)
    if recipe.report == "best":
        epoch_i, head_i = np.unravel_index(int(np.argmax(scored)), scored.shape)
    else:
        epoch_i, head_i = len(history) - 1, int(np.argmax(scored[-1]))
    scored_epochs = list(range(1, recipe.epochs + 1)) if recipe.report == "best" else [recipe.epochs]
    return {
        "top1": float(scored[epoch_i, head_i]),
        "top5": float(top5_history[epoch_i][head_i]),
        "epoch": scored_epochs[epoch_i],
        "lr": base_lrs[head_i],
        "history": history,
        "heads": {k: v.detach().cpu() for k, v in heads.state_dict().items()},
        "seconds": time.perf_counter() - start,
        "params": {
            **dataclasses.asdict(recipe),
            "features": features,
            "world_size": world,
            "seed": seed,
            "lrs_scaled": base_lrs,
        },
    }


class LinearHeads(nn.Module):
    """One ``nn.Linear(D, C)`` per learning rate, initialised as the official scripts do; ``forward`` → list."""

    def __init__(self, dim: int, num_classes: int, n_heads: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(dim, num_classes) for _ in range(n_heads))
        for head in self.heads:
            nn.init.normal_(head.weight, std=HEAD_INIT_STD)
            nn.init.zeros_(head.bias)

    def forward(self, feats: torch.Tensor) -> list[torch.Tensor]:
        return [head(feats) for head in self.heads]


def _cycle(loader, sampler):
    """Batches forever, a new ``DistributedSampler`` epoch (shuffle) at every pass (DINOv2's infinite sampler)."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


class LabelledImages(torch.utils.data.Dataset):
    """``(transform(image), label)`` pairs of a :class:`FileSplit` or a ``datasets.Dataset``, decoded in workers."""

    def __init__(self, source: Any, transform: Any) -> None:
        self.source, self.transform = source, transform
        self.labels = split_labels(source)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        if isinstance(self.source, FileSplit):
            with Image.open(self.source.paths[i]) as image:
                return self.transform(image), int(self.labels[i])
        return self.transform(self.source[int(i)]["image"]), int(self.labels[i])
