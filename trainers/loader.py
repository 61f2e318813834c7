"""The one way the engine gets views: a ``DataLoader`` over a source, crops cut in worker processes.

Each step the engine takes the next global batch of the epoch's order and this rank's contiguous slice of it
(DDP sharding of the global order); a worker decodes those images and cuts their views (:mod:`trainers.views`),
seeded by ``(seed, epoch, index)``. So 0, 1 or 8 workers, 1 or 4 ranks and a resumed run all see the same views,
and nothing but the batches in flight is held in memory.

An image that cannot be decoded during training (a truncated JPEG, a file replaced since indexing) does not stop
a three-hour run: the sample is replaced by the next readable index (deterministically, so every rank agrees),
counted in ``Views.skipped`` and named once in the log.

>>> from trainers.sources import load_source
>>> from trainers.views import CropSpec
>>> loader = ViewLoader(load_source("digits", "train"), [CropSpec(16), CropSpec(16)], seed=0)
>>> batch = next(loader.epoch(0, torch.arange(8), batch_size=4))
>>> [tuple(c.shape) for c in batch.crops], batch.indices.tolist()
([(4, 1, 16, 16), (4, 1, 16, 16)], [0, 1, 2, 3])
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from trainers.sources import ArraySource, ImageSource, StreamSource
from trainers.views import (
    CropSpec,
    EvalSpec,
    render_crops,
    render_crops_batch,
    render_eval,
    render_eval_batch,
    sample_rng,
)
from zoo.errors import SslzooError

__all__ = ["ViewLoader", "Views", "default_workers"]

MAX_REPLACEMENTS = 16  # consecutive unreadable images before a batch gives up


@dataclass
class Views:
    """This rank's share of one global batch, as the workers deliver it.

    Attributes:
        crops: One (B, C, S, S) uint8 tensor per view (its own side S), in the method's spec order.
        indices: (B,) int64 positions in the source (a replaced sample carries its replacement's index).
        labels: (B,) int64 true labels (-1 unlabelled), for monitoring only.
        skipped: Source positions of unreadable images replaced in this batch.
    """

    crops: list[torch.Tensor]
    indices: torch.Tensor
    labels: torch.Tensor
    skipped: list[int] = field(default_factory=list)

    def pin_memory(self) -> Views:
        return Views([c.pin_memory() for c in self.crops], self.indices, self.labels, self.skipped)


class _ViewDataset(torch.utils.data.Dataset):
    def __init__(self, source: ImageSource, specs: list[CropSpec] | EvalSpec, seed: int, epoch: int) -> None:
        self.source, self.specs, self.seed, self.epoch = source, specs, seed, epoch

    def __len__(self) -> int:
        return len(self.source)

    def _render(self, index: int) -> list[np.ndarray]:
        image = self.source.open(index)
        try:
            if isinstance(self.specs, EvalSpec):
                return [render_eval(image, self.specs, self.source.channels)]
            return render_crops(
                image, self.specs, sample_rng(self.seed, self.epoch, index), self.source.channels
            )
        finally:
            image.close()

    def __getitem__(self, index: int) -> tuple[list[np.ndarray], int, list[int]]:
        skipped = []
        for attempt in range(MAX_REPLACEMENTS):
            candidate = (index + attempt) % len(self.source)
            try:
                return self._render(candidate), candidate, skipped
            except (OSError, ValueError, SyntaxError, SslzooError):
                skipped.append(candidate)  # truncated or vanished file: the next index stands in
        raise SslzooError(
            f"{MAX_REPLACEMENTS} images in a row could not be decoded, from {self.source.describe(index)} on; "
            "check the dataset's files."
        )

    def __getitems__(self, indices: list[int]):
        """A whole batch at once: in-memory arrays take the batched path (one ``roi_align`` per view)."""
        if not isinstance(self.source, ArraySource):
            return [self[i] for i in indices]
        images = np.asarray(self.source.images[np.asarray(indices)])
        channels = self.source.channels
        if isinstance(self.specs, EvalSpec):
            crops = [render_eval_batch(images, self.specs, channels)]
        else:
            rngs = [sample_rng(self.seed, self.epoch, i) for i in indices]
            crops = render_crops_batch(images, self.specs, rngs, channels)
        return _Batched(crops, indices)


@dataclass
class _Batched:
    crops: list[np.ndarray]
    indices: list[int]


class _StreamViews(torch.utils.data.IterableDataset):
    """Samples of a :class:`StreamSource`: shuffled with a buffer, split over ranks, then over workers (by
    ``datasets`` itself), each worker skipping the samples of the batches a resumed epoch already did."""

    def __init__(
        self, source: StreamSource, specs, seed: int, epoch: int, rank: int, world: int, skip: list[int]
    ):
        self.source, self.specs, self.seed, self.epoch = source, specs, seed, epoch
        self.rank, self.world, self.skip = rank, world, skip

    def __iter__(self):
        from datasets.distributed import split_dataset_by_node

        from zoo.imaging import open_image

        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        stream = self.source.stream.shuffle(seed=self.seed, buffer_size=1000)
        stream.set_epoch(self.epoch)
        stream = split_dataset_by_node(stream, rank=self.rank, world_size=self.world)
        for position, row in enumerate(stream):
            if position < self.skip[worker]:
                continue
            rng = np.random.Generator(np.random.PCG64([self.seed, self.epoch, self.rank, worker, position]))
            try:
                image = open_image(row["image"], what=self.source.describe(position))
                crops = render_crops(image, self.specs, rng, self.source.channels)
            except (OSError, ValueError, SyntaxError, SslzooError):
                continue  # an undecodable image in a stream: the next one takes its place
            yield crops, position, [], int(row.get("label", -1))


class _Collate:
    """Samples (or a pre-cut :class:`_Batched`) → :class:`Views`; a class, so spawned workers can pickle it."""

    def __init__(self, labels: torch.Tensor) -> None:
        self.labels = labels

    def __call__(self, samples: list[tuple] | _Batched) -> Views:
        if isinstance(samples, _Batched):
            indices = torch.tensor(samples.indices, dtype=torch.int64)
            return Views([torch.from_numpy(c) for c in samples.crops], indices, self.labels[indices])
        crops = [torch.from_numpy(np.stack([s[0][v] for s in samples])) for v in range(len(samples[0][0]))]
        indices = torch.tensor([s[1] for s in samples], dtype=torch.int64)
        # Streamed samples carry their own label; indexed ones look it up.
        own = torch.tensor([s[3] for s in samples]) if len(samples[0]) > 3 else self.labels[indices]
        return Views(crops, indices, own, [i for s in samples for i in s[2]])


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # PIL does the work; a worker must not compete with the training threads


def default_workers(source: ImageSource, device: torch.device) -> int:
    """0 for in-memory small images on a CPU (forking costs more than cutting 28-px crops), otherwise one per
    spare core of this rank, at most 8."""
    if isinstance(source, ArraySource) and device.type == "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    per_rank = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(8, per_rank - 1))


class ViewLoader:
    """Views of ``source`` for the engine, batch by batch.

    Args:
        source: The images.
        specs: The method's crops (training) or an :class:`EvalSpec` (features, k-NN monitor).
        seed: The run's seed.
        workers: DataLoader worker processes (0: in this process).
        pin_memory: Pin batches for asynchronous copies to a GPU.
    """

    def __init__(
        self,
        source: ImageSource,
        specs: list[CropSpec] | EvalSpec,
        seed: int = 0,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.source, self.specs, self.seed = source, specs, seed
        self.workers, self.pin_memory = workers, pin_memory

    def _loader(self, epoch: int, batches: list[list[int]]) -> torch.utils.data.DataLoader:
        workers = min(self.workers, len(batches))
        return torch.utils.data.DataLoader(
            _ViewDataset(self.source, self.specs, self.seed, epoch),
            batch_sampler=batches,
            num_workers=workers,
            collate_fn=_Collate(self.source.labels),
            pin_memory=self.pin_memory,
            worker_init_fn=_worker_init if workers else None,
            prefetch_factor=4 if workers else None,
            # Its own generator: creating an iterator must not draw from the global RNG, or a resumed run
            # (which creates one more) would diverge from an uninterrupted one. Views never use it.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def epoch(
        self,
        epoch: int,
        order: torch.Tensor,
        batch_size: int,
        first: int = 0,
        rank: int = 0,
        world_size: int = 1,
        steps: int | None = None,
    ) -> Iterator[Views]:
        """This rank's slice of each global batch of ``order``, from global batch ``first`` on.

        Args:
            epoch: Seeds the views (with the run's seed and each sample's index).
            order: (M,) int64 source positions in the order of the epoch.
            batch_size: The global batch (all ranks); each rank takes ``batch_size // world_size`` contiguous rows.
            first: Global batches already done (a resumed epoch).
            steps: Global batches in the epoch (default: as many full ones as ``order`` holds).
        """
        per_rank = batch_size // world_size
        if isinstance(self.source, StreamSource):
            yield from self._stream_epoch(epoch, per_rank, first, rank, world_size, steps)
            return
        steps = len(order) // batch_size if steps is None else steps
        rows = order.tolist()
        batches = [
            rows[s * batch_size + rank * per_rank : s * batch_size + (rank + 1) * per_rank]
            for s in range(first, steps)
        ]
        if batches:
            yield from self._loader(epoch, batches)

    def _stream_epoch(
        self, epoch: int, per_rank: int, first: int, rank: int, world: int, steps: int | None
    ) -> Iterator[Views]:
        import itertools

        workers = max(1, self.workers)
        # DataLoader takes batches from its workers in turn: worker w made batches w, w + W, … of the epoch.
        skip = [len(range(w, first, workers)) * per_rank for w in range(workers)]
        loader = torch.utils.data.DataLoader(
            _StreamViews(self.source, self.specs, self.seed, epoch, rank, world, skip),
            batch_size=per_rank,
            drop_last=True,
            num_workers=self.workers,
            collate_fn=_Collate(self.source.labels),
            pin_memory=self.pin_memory,
            worker_init_fn=_worker_init if self.workers else None,
            generator=torch.Generator().manual_seed(self.seed),
        )
        total = (len(self.source) // (per_rank * world) if steps is None else steps) - first
        yield from itertools.islice(loader, max(0, total))

    def sequential(self, indices: torch.Tensor, batch_size: int) -> Iterator[Views]:
        """Views of ``indices`` in order, ``batch_size`` at a time (the last batch may be smaller)."""
        rows = indices.tolist()
        batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
        if batches:
            yield from self._loader(0, batches)
