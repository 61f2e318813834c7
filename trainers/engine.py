"""The one training engine every method runs on: data, loop, DDP, AMP, schedules, checkpoints, logs, export.

A method (see :mod:`trainers.methods.base`) only says which crops a view is cut from, how views are coloured,
what the loss is and what happens around a step; this module does the rest once:

* images are read through the datasets door (:mod:`trainers.sources`: any size, mode and format; ``folder:``,
  ``hf:``, the named datasets) and cut into the method's crops per sample, from the full-resolution image, in
  DataLoader workers (:mod:`trainers.loader`, :mod:`trainers.views`); colour operations run batched on the
  device (:mod:`trainers.augment`). Each global batch is cut into contiguous per-rank slices, crops are seeded
  by ``(seed, epoch, index)`` and colours by ``(seed, step)``, so 2 processes × B and 1 process × 2B see the same
  views, whatever the number of workers;
* CPU by default, CUDA with bf16/fp16 autocast and optional ``torch.compile``; under ``torchrun`` (one node or
  ``--nnodes``) the method is wrapped in DDP (gloo on CPU, NCCL on GPU) and only rank 0 writes: its run folder is
  the run's, and it sends its options and checkpoint to the other ranks (no shared file system needed); a rank that
  dies or hangs past ``--dist-timeout`` stops the others with one line; an elastic restart resumes;
* learning rate: linear warm-up then cosine; weight decay: cosine from start to end value;
* an atomic checkpoint (:mod:`trainers.checkpoint`) at each epoch end and every ``checkpoint_every`` steps, so
  ``--resume`` after a kill reaches the same weights as an uninterrupted run;
* SIGTERM (preemption) stops the run at the next step boundary with that step's checkpoint written, exit status
  143 (:data:`PREEMPTED_EXIT`): ``--resume`` continues it as if it had not stopped;
* a non-finite loss stops the run before it touches the weights on the CPU, before any checkpoint of them on a
  GPU, keeping the last good checkpoint; an image that cannot be decoded is skipped, counted (``skipped_images``)
  and named once;
* no host sync in the hot loop on a GPU except at logging steps (and checkpoints): the loss, the methods' logged
  values and the NaN check stay on the device until a ``metrics.jsonl`` row is written (:func:`host_reads_deferred`);
* tqdm progress (loss, lr, images/s), ``metrics.jsonl``, ``curves.png`` (:mod:`trainers.metrics`), an online
  k-NN monitor on a bounded subset, and the encoder exported to ``RUN/encoder/`` (zoo format) at every checkpoint.

What is built before the first step lives in :mod:`trainers.setup`; the run folder's files (config, checkpoint,
export) in :mod:`trainers.run_files`.

>>> from trainers import train
>>> run = train("simclr", dataset="digits", epochs=1, out="/tmp/sslzoo-doctest", progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainers import distributed as dist_utils
from trainers.augment import BatchRandom
from trainers.config import (
    CHECKPOINT,
    RUN_CONFIG,
    TrainConfig,
    build_configs,
    default_run_dir,
    parse_arch_args,
)
from trainers.context import TrainContext
from trainers.extensions import SCHEDULE_POLICY, check_epochs, extension_record
from trainers.loader import ViewLoader, Views, default_workers
from trainers.methods import Batch, Method, StepInfo, get_method
from trainers.metrics import MetricsLog
from trainers.run_files import RunFiles
from trainers.safety import RunLock, validate_train_options
from trainers.schedules import cosine_schedule, scaled_lr
from trainers.setup import build_optimizer, check_crop_sizes, load_sources, unreadable_images
from trainers.sources import ImageSource, StreamSource
from trainers.views import EvalSpec
from zoo.atomic import write_json_atomic
from zoo.disk_full import is_disk_full, raw_disk_full
from zoo.errors import SslzooError

__all__ = ["TrainContext", "Trainer", "build_configs", "host_reads_deferred", "train"]

MIN_IMAGE_SIDE = 16
# Exit status after SIGTERM, once the checkpoint is written (128 + 15: "terminated", so a scheduler requeues it).
PREEMPTED_EXIT = 143
DEFAULT_MAX_SIDE = 224  # a file collection's default training side: its typical shorter side, at most this
# The evaluation view of the export: small images are resized whole; photos as ImageNet's Resize 256 + crop 224.
FULL_FRAME_BELOW = 64


def host_reads_deferred(device: torch.device) -> bool:
    """Whether the loop leaves the loss and logged values on ``device`` until a logging step.

    Reading a GPU tensor (``float(loss)``) waits for every queued kernel, so the loss is checked at logging steps
    and before each checkpoint instead of at every step. On the CPU reading costs nothing: the loss is checked at
    every step, before the weights change.
    """
    return device.type != "cpu"


class Trainer(RunFiles):
    """Train one method on one dataset; ``fit()`` returns the run folder.

    Args:
        cfg: Shared options.
        method_cfg: The method's own options (``Method.Config``); defaults when ``None``.
        strict_resume: ``cfg.resume`` with no checkpoint to continue is an error, not a new run.
    """

    def __init__(self, cfg: TrainConfig, method_cfg: Any | None = None, strict_resume: bool = False) -> None:
        self.cfg = cfg
        self.strict_resume = strict_resume
        self.method_cls = get_method(cfg.method)
        self.method_cfg = method_cfg if method_cfg is not None else self.method_cls.Config()
        self.run_dir = default_run_dir(cfg.method, cfg.dataset, cfg.out)

    # ----------------------------------------------------------------------------------------- setup
    def _setup(self) -> None:
        cfg = self.cfg
        self.device = dist_utils.resolve_device(cfg.device)
        self.distributed = dist_utils.init_distributed(self.device.type, cfg.dist_timeout)
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
        if self.distributed:  # rank 0's options are everyone's: only its run folder holds the saved ones
            self.cfg, self.method_cfg = dist_utils.broadcast_object((cfg, self.method_cfg))
            cfg = self.cfg
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        for name in ("batch_size", "epochs"):
            if getattr(cfg, name) < 1:
                raise SslzooError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}.")
        if cfg.batch_size % self.world:
            raise SslzooError(
                f"--batch-size {cfg.batch_size} must be divisible by the {self.world} processes."
            )
        if cfg.workers is not None and cfg.workers < 0:
            raise SslzooError(f"--workers must be 0 or more, got {cfg.workers}.")
        self.checkpoint = self._agreed_checkpoint()  # rank 0's, on every rank
        self.checkpointed = None if self.checkpoint is None else int(self.checkpoint["global_step"])

        train_src, bank_src, test_src = load_sources(cfg)
        self.unreadable = unreadable_images(cfg)  # left out by the indexes; --strict-images refuses them here
        if isinstance(train_src, StreamSource) and self.method_cls.needs_random_access:
            raise SslzooError(
                f"--method {cfg.method} revisits every image by its index (pseudo-labels), which a stream cannot "
                "do; drop streaming=1 to download the dataset, or use simclr, moco, byol or dino."
            )
        image_size = cfg.image_size or max(min(train_src.native_side, DEFAULT_MAX_SIDE), MIN_IMAGE_SIDE)
        global_batch = cfg.batch_size
        steps_per_epoch = len(train_src) // global_batch
        if steps_per_epoch == 0:
            raise SslzooError(
                f"--batch-size {global_batch} is larger than the {len(train_src)} training images of "
                f"{cfg.dataset!r}; use a smaller batch."
            )
        if self.checkpoint is not None:  # --epochs may grow on --resume (trainers/extensions.py), not shrink
            ckpt = self.checkpoint
            check_epochs(
                cfg.epochs, int(ckpt["epoch"]), int(ckpt["step_in_epoch"]), steps_per_epoch, self.run_dir
            )
        mean, std = train_src.mean_std()
        self.amp_dtype = dist_utils.amp_dtype(cfg.amp, self.device)
        if self.checkpoint is not None:  # --amp auto resolved when the run started: fp16 and bf16 never swap
            self.amp_dtype = dist_utils.resumed_amp_dtype(self.amp_dtype, self.checkpoint, self.device)
        self.ctx = TrainContext(
            cfg=cfg,
            run_dir=self.run_dir,
            device=self.device,
            rank=self.rank,
            world_size=self.world,
            in_chans=train_src.channels,
            image_size=image_size,
            mean=mean,
            std=std,
            train=train_src,
            test=test_src,
            bank=bank_src,
            eval_spec=EvalSpec(image_size, 1.0 if image_size < FULL_FRAME_BELOW else 0.875),
            workers=default_workers(train_src, self.device) if cfg.workers is None else cfg.workers,
            local_batch_size=global_batch // self.world,
            global_batch_size=global_batch,
            steps_per_epoch=steps_per_epoch,
            total_steps=steps_per_epoch * cfg.epochs,
            arch_args=parse_arch_args(cfg.arch_args),
            resumed=self.checkpoint is not None,
            amp_dtype=self.amp_dtype,
        )
        if test_src is not None and bank_src is not None and test_src.channels != train_src.channels:
            # The monitor decodes its images to the training channels (grey ↔ RGB), as the export's users will.
            test_src.channels = bank_src.channels = train_src.channels

        # Same seed on every rank: identical initial weights (DDP would broadcast them anyway).
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        method = self.method_cls(self.method_cfg, self.ctx).to(self.device)
        if not hasattr(method, "backbone"):
            raise TypeError(f"{type(method).__name__} must set self.backbone in __init__")
        self.specs = method.view_specs()
        check_crop_sizes(cfg.arch, method.backbone, self.specs)
        if cfg.sync_bn and self.distributed:
            if self.device.type != "cuda":
                raise SslzooError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel).")
            method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
        if cfg.channels_last:
            method = method.to(memory_format=torch.channels_last)
        self.method: Method = method
        self.loader = ViewLoader(
            train_src, self.specs, cfg.seed, self.ctx.workers, pin_memory=self.device.type == "cuda"
        )
        self.optimizer = build_optimizer(self.method, cfg)
        self.ctx.optimizer = self.optimizer
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        self.start_epoch, self.start_pos, self.global_step, self.order = 0, 0, 0, None
        self.skipped_total, self.skipped_named = 0, 0
        self.defer_reads = host_reads_deferred(self.device)
        # Left on the device between logging steps: this rank's unread count of skipped images (all ranks'),
        # and the first step whose loss was not finite with that loss.
        self._skipped_unread: torch.Tensor | None = None
        self._bad_loss: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.checkpoint is not None:
            self._restore(self.checkpoint)
        if cfg.compile:
            for child in self.method.children():
                child.compile()
        self.model: nn.Module = self.method
        if self.distributed:
            # Queues and centres are kept equal by the methods themselves: no buffer broadcast at every forward
            # (the argument was renamed in recent PyTorch).
            ddp_params = inspect.signature(nn.parallel.DistributedDataParallel).parameters
            no_sync = {
                "forward_sync_buffers" if "forward_sync_buffers" in ddp_params else "broadcast_buffers": False
            }
            self.model = nn.parallel.DistributedDataParallel(
                self.method,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.method_cls.find_unused_parameters,
                **no_sync,
            )
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(
            self.run_dir, enabled=self.ctx.is_main, logger=self.cfg.logger, resume=self.checkpoint is not None
        )
        self.extensions = self._extensions() if self.ctx.is_main else []
        if self.ctx.is_main:
            write_json_atomic(
                self.run_dir / RUN_CONFIG, {**self._config_record(), "extensions": self.extensions}
            )
            self._write_skipped_files()
        if self.checkpoint is not None:
            self.metrics.restore(self.global_step)
        elif self.ctx.is_main and self.metrics.path.exists():
            self.metrics.path.unlink()

    def _extensions(self) -> list[dict[str, Any]]:
        """``train_config.json``'s ``extensions``: the saved ones, plus this resume's when ``--epochs`` changed."""
        saved_path = self.run_dir / RUN_CONFIG
        if self.checkpoint is None or not saved_path.is_file():
            return []
        saved = json.loads(saved_path.read_text())
        records = extension_record(saved, self.cfg.epochs, self.global_step, self.ctx.steps_per_epoch)
        if len(records) > len(saved.get("extensions") or []):
            change = records[-1]
            print(
                f"sslzoo: {self.run_dir} continues from {change['from_epochs']} to {change['to_epochs']} epochs at "
                f"step {change['at_step']}; the schedule is {SCHEDULE_POLICY} (train_config.json: extensions)",
                file=sys.stderr,
            )
        return records

    # ----------------------------------------------------------------------------------------- loop
    def _default_order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch)
        return torch.randperm(self.ctx.num_train, generator=g)

    def _set_schedules(self, step: int) -> float:
        cfg, ctx = self.cfg, self.ctx
        # A warm-up longer than half the run would leave no room for the cosine decay (short test runs).
        warmup = min(round(cfg.warmup_epochs * ctx.steps_per_epoch), ctx.total_steps // 2)
        peak = scaled_lr(cfg.lr, cfg.lr_batch_ref, ctx.global_batch_size)  # --lr-batch-ref: linear scaling
        lr = cosine_schedule(step, ctx.total_steps, peak, cfg.min_lr, warmup_steps=warmup)
        wd_end = cfg.weight_decay if cfg.weight_decay_end is None else cfg.weight_decay_end
        wd = cosine_schedule(step, ctx.total_steps, cfg.weight_decay, wd_end)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
            g["weight_decay"] = wd if g.get("apply_wd", True) else 0.0
        self._wd = wd
        return lr

    def _knn(self, epoch: int) -> None:
        """k-NN accuracy on a bounded subset (``--knn-max-train`` bank × ``--knn-max-test`` queries)."""
        cfg, ctx = self.cfg, self.ctx
        if not cfg.knn_every or ctx.test is None or ctx.bank is None or (epoch + 1) % cfg.knn_every:
            return
        from trainers.knn import knn_accuracy

        def subset(source: ImageSource, most: int) -> torch.Tensor:
            labelled = torch.nonzero(source.labels >= 0).flatten()
            pick = torch.linspace(0, labelled.numel() - 1, min(labelled.numel(), most)).round().long()
            return labelled[pick]

        bank, queries = subset(ctx.bank, cfg.knn_max_train), subset(ctx.test, cfg.knn_max_test)
        encoder = self.method.encoder()
        train_feats = ctx.extract_features(encoder, "bank", bank)
        test_feats = ctx.extract_features(encoder, "test", queries)
        acc = knn_accuracy(
            train_feats,
            ctx.bank.labels[bank].to(train_feats.device),
            test_feats,
            ctx.test.labels[queries].to(test_feats.device),
            k=cfg.knn_k,
        )
        ctx.log(knn_acc=acc)

    def fit(self) -> Path:
        """Train (or continue training) and return the run folder with ``encoder/`` inside."""
        validate_train_options(self.cfg, self.method_cfg)
        # One writer per run folder (rank 0 of a torchrun job writes it; the other ranks only train).
        lock = RunLock(self.run_dir) if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext()
        # SIGTERM (a scheduler's preemption, torchrun's shutdown) is handled at the next step boundary.
        self._sigterm, previous = False, None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: setattr(self, "_sigterm", True))
        try:
            with lock:
                self._setup()
                self._loop()
        except RuntimeError as exc:
            if not dist_utils.lost_peer(exc):
                raise
            raise SslzooError(self._lost_peer_message(exc)) from None
        except OSError as exc:  # a full disk outside a checkpoint (a metrics row, the skipped-files list)
            if not is_disk_full(exc):
                raise
            raise raw_disk_full(exc, self._after_disk_full()) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if getattr(self, "metrics", None) is not None:
                self.metrics.close()
            if dist_utils.is_distributed():
                torch.distributed.destroy_process_group()
        return self.run_dir

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        ctx, method = self.ctx, self.method
        method.on_epoch_start(ctx, epoch)
        order = method.epoch_indices(ctx, epoch)
        order = self._default_order(epoch) if order is None else order.cpu().long()
        if order.numel() < ctx.steps_per_epoch * ctx.global_batch_size:
            raise ValueError(
                f"{type(method).__name__}.epoch_indices gave {order.numel()} indices; an epoch needs "
                f"{ctx.steps_per_epoch * ctx.global_batch_size}"
            )
        return order

    def _loop(self) -> None:
        from tqdm.auto import tqdm

        cfg, ctx, method = self.cfg, self.ctx, self.method
        method.train()
        method.on_train_start(ctx)
        loss_value = float("nan")
        for epoch in range(self.start_epoch, cfg.epochs):
            if epoch == self.start_epoch and self.start_pos > 0 and self.order is not None:
                order, first = self.order, self.start_pos  # resumed in the middle of this epoch
            else:
                order, first = self._epoch_order(epoch), 0
            bar = tqdm(
                total=ctx.steps_per_epoch,
                initial=first,
                desc=f"{cfg.method} {epoch + 1}/{cfg.epochs}",
                disable=not (cfg.progress and ctx.is_main),
                leave=False,
                dynamic_ncols=True,
            )
            tick, seen = time.perf_counter(), 0
            batches = self.loader.epoch(
                epoch, order, ctx.global_batch_size, first, self.rank, self.world, ctx.steps_per_epoch
            )
            for pos, views in enumerate(batches, start=first):
                info = StepInfo(self.global_step, epoch, pos, ctx.steps_per_epoch, ctx.total_steps)
                loss, logs, lr = self._step(views, info, epoch)
                self.global_step += 1
                ctx.global_step = self.global_step
                seen += ctx.global_batch_size
                rate = seen / max(time.perf_counter() - tick, 1e-9)
                bar.update(1)
                last = pos == ctx.steps_per_epoch - 1
                if self.global_step % cfg.log_every == 0 or last or ctx._pending_logs:
                    # The only reads of the step's values (each waits for the GPU): at logging steps.
                    self._read_device_values()
                    loss_value = float(loss)
                    bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}")
                    row = {"step": self.global_step, "epoch": epoch + (pos + 1) / ctx.steps_per_epoch}
                    logged = {k: float(v) for k, v in logs.items()}
                    row.update(loss=loss_value, lr=lr, wd=self._wd, samples_per_s=rate, **logged)
                    if self.skipped_total:
                        row["skipped_images"] = self.skipped_total
                    row.update(ctx._pending_logs)
                    ctx._pending_logs.clear()
                    self.metrics.write(row)
                if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0 and not last:
                    self._save_checkpoint(epoch, pos + 1, order)
                if not last and self._stop_requested():
                    self._save_checkpoint(epoch, pos + 1, order)
                    self._preempted()
            bar.close()
            method.on_epoch_end(ctx, epoch)
            self._knn(epoch)
            if ctx._pending_logs:
                self.metrics.write({"step": self.global_step, "epoch": epoch + 1.0, **ctx._pending_logs})
                ctx._pending_logs.clear()
            self._save_checkpoint(epoch + 1, 0, None)
            if epoch + 1 < cfg.epochs and self._stop_requested():
                self._preempted()
            self.metrics.plot(f"{cfg.method} on {cfg.dataset} ({cfg.arch})")
            if ctx.is_main and cfg.progress:
                last_row = self.metrics.rows[-1] if self.metrics.rows else {}
                knn = f", k-NN {100 * last_row['knn_acc']:.2f}%" if "knn_acc" in last_row else ""
                tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss_value:.4f}{knn}")
        if self.start_epoch >= cfg.epochs and ctx.is_main:
            self._export(cfg.epochs, 0)  # nothing left to train: make sure the export exists

    def _kept_checkpoint(self) -> str:
        """What a run that stops now leaves to ``--resume`` from (the same words on every rank)."""
        if self.checkpointed is None:
            return "no checkpoint was written yet"
        where = f"{self.run_dir / CHECKPOINT}" + (" on rank 0" if self.world > 1 else "")
        return f"the last good checkpoint (step {self.checkpointed}) is {where}"

    def _lost_peer_message(self, exc: BaseException) -> str:
        """One line for a collective that failed: another rank died, or hung past ``--dist-timeout``."""
        step = getattr(self, "global_step", 0)
        kept = self._kept_checkpoint() if hasattr(self, "checkpointed") else "no checkpoint was written yet"
        return (
            f"rank {self.rank} lost the other ranks at step {step} ({dist_utils.peer_error_summary(exc)}): one of "
            f"them died or did not answer within --dist-timeout {self.cfg.dist_timeout:g} s; {kept}. Restart every "
            "rank with --resume."
        )

    def _stop_requested(self) -> bool:
        """Whether SIGTERM reached this process (any rank under torchrun: all stop at the same step)."""
        if not dist_utils.is_distributed():
            return self._sigterm
        flag = torch.tensor([float(self._sigterm)], device=self.device)
        if dist_utils.is_distributed():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def _preempted(self) -> None:
        """Stop after SIGTERM, the checkpoint of this step boundary written: ``--resume`` continues from it."""
        self.metrics.plot(f"{self.cfg.method} on {self.cfg.dataset} ({self.cfg.arch})")
        if self.ctx.is_main:
            print(
                f"sslzoo: stopped by SIGTERM after step {self.global_step}; {self.run_dir / CHECKPOINT} is written, "
                f"continue with --resume (exit status {PREEMPTED_EXIT})",
                file=sys.stderr,
            )
        raise SystemExit(PREEMPTED_EXIT)

    def _count_skipped(self, views: Views) -> None:
        """Add this step's unreadable images (all ranks) to the total; name the first few on this rank.

        Under torchrun the ranks' counts are summed on the device and read at the next logging step or
        checkpoint (:meth:`_read_device_values`), so counting never waits for the GPU.
        """
        if not dist_utils.is_distributed():
            self.skipped_total += len(views.skipped)
        else:
            mine = torch.full((1,), float(len(views.skipped)), dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(mine)
            unread = self._skipped_unread
            self._skipped_unread = mine if unread is None else unread + mine
        for index in views.skipped[: max(0, 5 - self.skipped_named)]:
            print(
                f"sslzoo: skipped an unreadable image, {self.ctx.train.describe(index)} (counted in metrics as "
                "skipped_images)",
                file=sys.stderr,
            )
            self.skipped_named += 1

    def _check_loss(self, value: float, step: int) -> None:
        """Stop the run in one line if the loss ``value`` of ``step`` is not finite (before the weights change)."""
        if not math.isfinite(value):
            raise self._loss_error(value, step, stopped_at=None)

    def _watch_loss(self, loss: torch.Tensor, step: int) -> None:
        """Remember, on the device, the first step whose loss is not finite (read by :meth:`_read_device_values`)."""
        if self._bad_loss is None:
            self._bad_loss = (
                torch.full((), -1, dtype=torch.long, device=loss.device),
                torch.zeros_like(loss),
            )
        bad_step, bad_value = self._bad_loss
        first = ~torch.isfinite(loss) & (bad_step < 0)
        self._bad_loss = (torch.where(first, step, bad_step), torch.where(first, loss, bad_value))

    def _loss_error(self, value: float, step: int, stopped_at: int | None) -> SslzooError:
        epoch = step // self.ctx.steps_per_epoch
        if stopped_at is None:
            stopped = "training stopped before the weights changed"
        else:  # found at a logging step or checkpoint (host_reads_deferred): the weights since were not saved
            stopped = f"training stopped at step {stopped_at}, before any checkpoint of the weights after it,"
        return SslzooError(
            f"the {self.cfg.method} loss became {value} at step {step} (epoch {epoch + 1}); {stopped} and "
            f"{self._kept_checkpoint()}. Lower --lr, set --grad-clip, or use --amp bf16/none."
        )

    def _read_device_values(self) -> None:
        """Read what the loop left on the device (at logging steps and checkpoints): stop on a non-finite loss,
        add the unread count of skipped images to the total."""
        if self._bad_loss is not None:
            bad_step, bad_value = self._bad_loss
            if int(bad_step) >= 0:
                raise self._loss_error(float(bad_value), int(bad_step), stopped_at=self.global_step)
        if self._skipped_unread is not None:
            self.skipped_total += int(self._skipped_unread.item())
            self._skipped_unread = None

    def _save_checkpoint(self, epoch: int, pos: int, order: torch.Tensor | None) -> None:
        # A non-finite loss the loop has not read yet stops the run here, before its weights are written.
        self._read_device_values()
        super()._save_checkpoint(epoch, pos, order)

    def _step(
        self, views: Views, info: StepInfo, epoch: int
    ) -> tuple[torch.Tensor, dict[str, float | torch.Tensor], float]:
        """One optimiser step; returns the loss (a 0-d tensor, all ranks' mean), the method's logs and the lr.

        Nothing here reads a tensor back to the host where :func:`host_reads_deferred` (a GPU): the loss, the
        logs and the NaN check are read at logging steps.
        """
        ctx, method = self.ctx, self.method
        lr = self._set_schedules(info.global_step)
        self._count_skipped(views)
        lo = self.rank * ctx.local_batch_size
        rng = BatchRandom(
            self.cfg.seed, info.global_step, ctx.global_batch_size, lo, lo + len(views.indices), self.device
        )
        with torch.no_grad():
            coloured = method.make_views([ctx.to_float(c) for c in views.crops], rng)
        batch = Batch(
            views=coloured,
            indices=views.indices.to(self.device, non_blocking=True),
            labels=views.labels.to(self.device, non_blocking=True),
            rng=rng,
        )
        with ctx.autocast():
            out = self.model(batch, info)
        loss, logs = out if isinstance(out, tuple) else (out, {})
        # One all-reduce serves both the log and the NaN check: every rank stops together.
        loss_mean = dist_utils.all_reduce_mean(loss.detach().float())
        if self.defer_reads:
            self._watch_loss(loss_mean, info.global_step)
        else:
            self._check_loss(float(loss_mean), info.global_step)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        method.on_before_optimizer_step(info)
        if self.cfg.grad_clip:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        method.on_after_step(info)
        return loss_mean, logs, lr


def train(method: str = "simclr", *, strict_resume: bool = False, **options: Any) -> Path:
    """Train ``method`` and return the run folder (``zoo.load(folder)`` reads its ``encoder/``).

    Args:
        method: A registered method name (``simclr``, ``moco``, ``byol``, ``dino``, …).
        strict_resume: ``resume=True`` with no checkpoint to continue is an error (``sslzoo train --resume``);
            otherwise it starts the run (continue-or-start, as the benchmark's resumable runs use it).
        **options: Fields of :class:`~trainers.config.TrainConfig` and of the method's ``Config``.

    >>> run = train("simclr", dataset="digits", epochs=1, batch_size=128, out="runs/demo")  # doctest: +SKIP
    """
    run_dir = default_run_dir(method, options.get("dataset", TrainConfig.dataset), options.get("out"))
    cfg, method_cfg = build_configs(method, options, run_dir)
    return Trainer(cfg, method_cfg, strict_resume).fit()
