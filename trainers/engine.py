"""The one training engine every method runs on: data, loop, DDP, AMP, schedules, checkpoints, logs, export.

A method (see :mod:`trainers.methods.base`) only says how to make views, what the loss is and what happens
around a step; this module does the rest once:

* the train split lives in memory as a uint8 tensor; each global batch is cut into contiguous per-rank slices,
  and augmentation randomness is drawn per sample for the global batch (:class:`~trainers.augment.BatchRandom`),
  so 2 processes × B and 1 process × 2B see the same views;
* CPU by default, CUDA with bf16/fp16 autocast and optional ``torch.compile``; under ``torchrun`` the method is
  wrapped in DDP (gloo on CPU, NCCL on GPU) and only rank 0 writes;
* learning rate: linear warm-up then cosine; weight decay: cosine from start to end value;
* an atomic checkpoint (``RUN/checkpoints/last.pt``) at each epoch end and every ``checkpoint_every`` steps holds
  weights, optimiser, scaler, RNG states, the epoch's sample order and the position in it, so ``--resume`` after
  a kill reaches the same weights as an uninterrupted run;
* a non-finite loss stops the run before it touches the weights, keeping the last good checkpoint;
* tqdm progress (loss, lr, images/s), ``metrics.jsonl``, ``curves.png``, an online k-NN monitor, and the encoder
  exported to ``RUN/encoder/`` (zoo format) at every checkpoint.

>>> from trainers import train
>>> run = train("simclr", dataset="digits", epochs=1, out="/tmp/sslzoo-doctest", progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
import json
import math
import os
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainers import distributed as dist_utils
from trainers.augment import BatchRandom, normalize
from trainers.config import TrainConfig
from trainers.data import ImageTensors, load_splits
from trainers.methods import Batch, Method, StepInfo, get_method
from trainers.schedules import cosine_schedule, scaled_lr
from trainers.view_sizes import check_view_sizes
from zoo.atomic import atomic_file, save_figure_atomic, write_json_atomic, write_lines_atomic
from zoo.errors import SslzooError

__all__ = ["TrainContext", "Trainer", "build_configs", "train"]

CHECKPOINT = "checkpoints/last.pt"
# Not config.json: that name belongs to exported encoders, and zoo.load(RUN) looks for one in RUN first.
RUN_CONFIG = "train_config.json"
# Options that may change when a run is resumed: they do not change what is computed.
RESUMABLE_CHANGES = {
    "resume",
    "progress",
    "out",
    "device",
    "log_every",
    "knn_every",
    "checkpoint_every",
    "compile",
    "channels_last",
}
MIN_IMAGE_SIDE = 16


# --------------------------------------------------------------------------------------------------- configs
def _parse_arch_args(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SslzooError(f"--arch-args expects KEY=VALUE items, got {item!r}.")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def build_configs(
    method: str, options: dict[str, Any], run_dir: Path | None = None
) -> tuple[TrainConfig, Any]:
    """Split ``options`` into the shared :class:`TrainConfig` and the method's ``Config``.

    Defaults come from the method (``Method.defaults``) over the shared ones; with ``resume=True`` and a run folder
    holding ``train_config.json``, the saved options are the defaults and a changed option is an error.
    """
    cls = get_method(method)
    shared = {f.name for f in dataclasses.fields(TrainConfig)}
    own = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = set(options) - shared - own
    if unknown:
        raise SslzooError(
            f"unknown option(s) for method {method!r}: {', '.join(sorted(unknown))}; "
            f"its own options are: {', '.join(sorted(own)) or 'none'}."
        )
    train_values = {**cls.defaults, **{k: v for k, v in options.items() if k in shared}, "method": method}
    method_values = {k: v for k, v in options.items() if k in own}
    saved_path = run_dir / RUN_CONFIG if run_dir else None
    if options.get("resume") and saved_path and saved_path.is_file() and (run_dir / CHECKPOINT).is_file():
        saved = json.loads(saved_path.read_text())
        if saved["train"]["method"] != method:
            raise SslzooError(
                f"{run_dir} is a {saved['train']['method']!r} run; resume it with --method {saved['train']['method']}."
            )
        for given, old in ((options, saved["train"]), (options, saved["method"])):
            for key, value in given.items():
                if key in old and key not in RESUMABLE_CHANGES and _jsonable(value) != _jsonable(old[key]):
                    raise SslzooError(
                        f"{run_dir} was trained with {key}={old[key]!r}, not {value!r}; resume with the same "
                        "options or start a new run with another --out."
                    )
        train_values = {**saved["train"], **{k: v for k, v in options.items() if k in shared}}
        method_values = {**saved["method"], **method_values}
    for key in ("arch_args",):
        if key in train_values and train_values[key] is not None:
            train_values[key] = tuple(train_values[key])
    cfg = TrainConfig(**{k: v for k, v in train_values.items() if k in shared})
    return cfg, cls.config_from_dict(method_values)


def default_run_dir(method: str, dataset: str, out: str | None = None) -> Path:
    """``out``, or ``runs/METHOD-DATASET`` when it is not given."""
    return Path(out) if out else Path("runs") / f"{method}-{dataset.replace('/', '_').replace(':', '_')}"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# --------------------------------------------------------------------------------------------------- context
@dataclass
class TrainContext:
    """What a method may use: run facts, the data, and a few collective helpers.

    Attributes:
        cfg: The shared options.
        run_dir: The run folder.
        device: Where the networks live.
        rank, world_size: This process among all (0 and 1 without ``torchrun``).
        in_chans, image_size: Channels and training side of the views.
        mean, std: Per-channel normalisation of the train split (also saved in the export).
        train: The train split (uint8 images and true labels; labels only for monitoring).
        test: The test split when the dataset has one.
        local_batch_size, global_batch_size: Samples per rank and in total per step.
        steps_per_epoch, total_steps: Optimiser steps.
        resumed: Whether this process continued a checkpoint.
        optimizer: The optimiser (set once the method's parameters are known).
        global_step: Optimiser steps done so far.
    """

    cfg: TrainConfig
    run_dir: Path
    device: torch.device
    rank: int
    world_size: int
    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: ImageTensors
    test: ImageTensors | None
    local_batch_size: int
    global_batch_size: int
    steps_per_epoch: int
    total_steps: int
    arch_args: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False
    optimizer: torch.optim.Optimizer | None = None
    global_step: int = 0
    amp_dtype: torch.dtype | None = None
    _pending_logs: dict[str, float] = field(default_factory=dict)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def num_classes(self) -> int:
        return int(self.train.labels.max()) + 1

    def create_backbone(self) -> nn.Module:
        """A fresh timm encoder of ``cfg.arch`` (``num_classes=0``; ``.num_features`` is its width)."""
        import timm

        import zoo  # noqa: F401  (registers the sslzoo_* architectures)

        try:
            return timm.create_model(self.cfg.arch, pretrained=False, **self.model_args())
        except RuntimeError as exc:
            if "Unknown model" in str(exc):
                raise SslzooError(
                    f"unknown architecture {self.cfg.arch!r}; see timm.list_models() or use sslzoo_cnn4, "
                    "sslzoo_resnet18_small, sslzoo_vit_tiny_patch4."
                ) from None
            raise
        except TypeError as exc:  # an --arch-args key the architecture does not take
            raise SslzooError(f"--arch-args do not fit {self.cfg.arch!r}: {exc}") from None

    def model_args(self) -> dict[str, Any]:
        """Arguments ``timm.create_model`` needs to rebuild the encoder (saved in the export)."""
        args: dict[str, Any] = {"num_classes": 0, "in_chans": self.in_chans}
        if _is_vit(self.cfg.arch):
            # Views of several sizes (DINO's local crops) need position embeddings interpolated on the fly.
            args.update(img_size=self.image_size, dynamic_img_size=True)
        return {**args, **self.arch_args}

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) floats in [0, 1] → normalised with the train split's mean and std."""
        return normalize(images, self.mean, self.std)

    def eval_images(self, images: torch.Tensor) -> torch.Tensor:
        """The evaluation view: resized to ``image_size`` (no crop) and normalised — what the export declares."""
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(
                images,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        return self.normalize(images)

    @torch.no_grad()
    def extract_features(
        self,
        module: nn.Module,
        split: str = "train",
        indices: torch.Tensor | None = None,
        batch_size: int = 512,
    ) -> torch.Tensor:
        """(N, D) float32 features of a whole split, in eval mode without augmentation, on every rank.

        Each rank computes a contiguous shard and the shards are all-gathered, so every rank returns the same
        tensor, in the order of ``indices`` (default: the whole split). Call it on every rank.
        """
        data = self.train if split == "train" else self.test
        if data is None:
            raise SslzooError(f"dataset {self.cfg.dataset!r} has no {split!r} split.")
        idx = torch.arange(len(data)) if indices is None else indices.cpu()
        n = idx.numel()
        per_rank = math.ceil(n / self.world_size)
        padded = torch.cat([idx, idx[: per_rank * self.world_size - n]]) if n else idx
        mine = padded[self.rank * per_rank : (self.rank + 1) * per_rank]
        was_training = module.training
        module.eval()
        feats = []
        try:
            for chunk in mine.split(batch_size):
                images, _ = data.batch(chunk, self.device)
                with self.autocast():
                    feats.append(module(self.eval_images(images)).float())
        finally:
            module.train(was_training)
        local = torch.cat(feats) if feats else torch.zeros(0, device=self.device)
        return dist_utils.all_gather_no_grad(local)[:n]

    def all_gather(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate (B, ...) tensors of equal shape from all ranks (no gradient)."""
        return dist_utils.all_gather_no_grad(x)

    def broadcast(self, x: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Rank ``src``'s tensor on every rank (in place)."""
        return dist_utils.broadcast(x, src)

    def log(self, **values: float) -> None:
        """Add values to the next ``metrics.jsonl`` row (``ctx.log(nmi=0.61)``)."""
        self._pending_logs.update({k: float(v) for k, v in values.items()})

    def reset_optimizer_state(self, module: nn.Module) -> None:
        """Forget the optimiser's momentum / Adam moments of ``module``'s parameters (after re-initialising it)."""
        if self.optimizer is None:
            return
        for p in module.parameters():
            self.optimizer.state.pop(p, None)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def _is_vit(arch: str) -> bool:
    return "vit" in arch or "deit" in arch


# --------------------------------------------------------------------------------------------------- logging
class MetricsLog:
    """``metrics.jsonl`` rows (rank 0 only) and the ``curves.png`` drawn from them."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.png = run_dir / "curves.png"
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []

    def restore(self, upto_step: int) -> None:
        """Keep the rows of steps a resumed run has already done; drop those the killed run did after."""
        if not self.path.is_file():
            return
        self.rows = [
            r for r in map(json.loads, self.path.read_text().splitlines()) if r.get("step", 0) <= upto_step
        ]
        if self.enabled:
            self._rewrite()

    def _rewrite(self) -> None:
        write_lines_atomic(self.path, (json.dumps(r) + "\n" for r in self.rows))

    def write(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    def plot(self, title: str) -> None:
        if not self.enabled or not self.rows:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        # nmi_true: the clustering methods' pseudo-labels against the true labels, one point per round.
        keys = [k for k in ("loss", "lr", "knn_acc", "nmi_true") if any(k in r for r in self.rows)]
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
        for ax, key in zip(axes[0], keys):
            pts = [(r["step"], r[key]) for r in self.rows if key in r]
            ax.plot(*zip(*pts), marker="o" if key in ("knn_acc", "nmi_true") else None, markersize=3)
            ax.set_xlabel("step")
            ax.set_title(key)
            ax.grid(alpha=0.3)
        fig.suptitle(title)
        fig.tight_layout()
        save_figure_atomic(fig, self.png)


# --------------------------------------------------------------------------------------------------- trainer
def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SslzooError("--device cuda was asked for but CUDA is not available; use --device cpu.")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "none":
        return None
    if device.type != "cuda":
        # CPU autocast only pays where the CPU has bf16 matrix units (AMX, AVX512-BF16): opt-in with --amp bf16.
        if amp == "fp16":
            raise SslzooError("--amp fp16 is for CUDA; on a CPU use --amp bf16 or --amp none.")
        return torch.bfloat16 if amp == "bf16" else None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Train one method on one dataset; ``fit()`` returns the run folder.

    Args:
        cfg: Shared options.
        method_cfg: The method's own options (``Method.Config``); defaults when ``None``.
    """

    def __init__(self, cfg: TrainConfig, method_cfg: Any | None = None) -> None:
        self.cfg = cfg
        self.method_cls = get_method(cfg.method)
        self.method_cfg = method_cfg if method_cfg is not None else self.method_cls.Config()
        self.run_dir = default_run_dir(cfg.method, cfg.dataset, cfg.out)

    # ----------------------------------------------------------------------------------------- setup
    def _setup(self) -> None:
        cfg = self.cfg
        self.device = _resolve_device(cfg.device)
        self.distributed = dist_utils.init_distributed(self.device.type)
        self.rank, self.world = dist_utils.rank(), dist_utils.world_size()
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
        ckpt_path = self.run_dir / CHECKPOINT
        self.checkpoint = None
        if ckpt_path.is_file():
            if not cfg.resume:
                raise SslzooError(
                    f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --out."
                )
            self.checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)

        train_data, test_data = load_splits(cfg.dataset)
        image_size = cfg.image_size or max(train_data.side, MIN_IMAGE_SIDE)
        global_batch = cfg.batch_size
        steps_per_epoch = len(train_data) // global_batch
        if steps_per_epoch == 0:
            raise SslzooError(
                f"--batch-size {global_batch} is larger than the {len(train_data)} training images of "
                f"{cfg.dataset!r}; use a smaller batch."
            )
        mean, std = train_data.mean_std()
        self.amp_dtype = _amp_dtype(cfg.amp, self.device)
        self.ctx = TrainContext(
            cfg=cfg,
            run_dir=self.run_dir,
            device=self.device,
            rank=self.rank,
            world_size=self.world,
            in_chans=train_data.channels,
            image_size=image_size,
            mean=mean,
            std=std,
            train=train_data.to(self.device),
            test=test_data.to(self.device) if test_data is not None else None,
            local_batch_size=global_batch // self.world,
            global_batch_size=global_batch,
            steps_per_epoch=steps_per_epoch,
            total_steps=steps_per_epoch * cfg.epochs,
            arch_args=_parse_arch_args(cfg.arch_args),
            resumed=self.checkpoint is not None,
            amp_dtype=self.amp_dtype,
        )

        # Same seed on every rank: identical initial weights (DDP would broadcast them anyway).
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        check_view_sizes(self.ctx, self.method_cls.view_sizes(self.method_cfg, image_size))
        method = self.method_cls(self.method_cfg, self.ctx).to(self.device)
        if not hasattr(method, "backbone"):
            raise TypeError(f"{type(method).__name__} must set self.backbone in __init__")
        if cfg.sync_bn and self.distributed:
            if self.device.type != "cuda":
                raise SslzooError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel).")
            method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
        if cfg.channels_last:
            method = method.to(memory_format=torch.channels_last)
        self.method: Method = method
        self.optimizer = self._build_optimizer()
        self.ctx.optimizer = self.optimizer
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        self.start_epoch, self.start_pos, self.global_step, self.order = 0, 0, 0, None
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
        self.metrics = MetricsLog(self.run_dir, enabled=self.ctx.is_main)
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(
                self.run_dir / RUN_CONFIG,
                {"train": dataclasses.asdict(cfg), "method": dataclasses.asdict(self.method_cfg)},
            )
        if self.checkpoint is not None:
            self.metrics.restore(self.global_step)
        elif self.ctx.is_main and self.metrics.path.exists():
            self.metrics.path.unlink()

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        groups = [g for g in self.method.param_groups() if g["params"]]
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

    # ----------------------------------------------------------------------------------------- checkpoints
    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.method.load_state_dict(ckpt["method"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.global_step = int(ckpt["global_step"])
        self.start_epoch, self.start_pos = int(ckpt["epoch"]), int(ckpt["step_in_epoch"])
        self.order = ckpt.get("order")
        _set_rng_state(ckpt["rng"])
        self.ctx.global_step = self.global_step

    def _save_checkpoint(self, epoch: int, pos: int, order: torch.Tensor | None) -> None:
        if not self.ctx.is_main:
            return
        state = {
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "global_step": self.global_step,
            "epoch": epoch,
            "step_in_epoch": pos,
            "order": order,
            "rng": _rng_state(),
            "config": {"train": dataclasses.asdict(self.cfg), "method": dataclasses.asdict(self.method_cfg)},
        }
        with atomic_file(self.run_dir / CHECKPOINT) as tmp:
            torch.save(state, tmp)
        self._export(epoch, pos)

    def _export(self, epoch: int, pos: int) -> Path:
        import zoo

        ctx = self.ctx
        encoder = self.method.encoder()
        pretrained_cfg = {
            "input_size": (ctx.in_chans, ctx.image_size, ctx.image_size),
            "mean": ctx.mean,
            "std": ctx.std,
            "crop_pct": 1.0,
            "interpolation": "bilinear",
            "num_classes": 0,
        }
        metadata = {
            "method": self.cfg.method,
            "dataset": self.cfg.dataset,
            "arch": self.cfg.arch,
            "epochs_done": epoch + pos / ctx.steps_per_epoch,
            "global_step": self.global_step,
            "seed": self.cfg.seed,
            "commit": _git_commit(),
            "config": {"train": dataclasses.asdict(self.cfg), "method": dataclasses.asdict(self.method_cfg)},
        }
        model_args = self.method.encoder_model_args(
            {k: v for k, v in ctx.model_args().items() if k != "num_classes"}
        )
        return zoo.save_encoder(
            encoder,
            self.run_dir / "encoder",
            model_args=model_args,
            pretrained_cfg=pretrained_cfg,
            metadata=metadata,
        )

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
        cfg, ctx = self.cfg, self.ctx
        if not cfg.knn_every or ctx.test is None or (epoch + 1) % cfg.knn_every:
            return
        from trainers.knn import knn_accuracy

        n = ctx.num_train
        bank = torch.linspace(0, n - 1, min(n, cfg.knn_max_train)).round().long()
        encoder = self.method.encoder()
        train_feats = ctx.extract_features(encoder, "train", bank)
        test_feats = ctx.extract_features(encoder, "test")
        acc = knn_accuracy(
            train_feats,
            ctx.train.labels[bank.to(ctx.train.labels.device)],
            test_feats,
            ctx.test.labels,
            k=cfg.knn_k,
        )
        ctx.log(knn_acc=acc)

    def fit(self) -> Path:
        """Train (or continue training) and return the run folder with ``encoder/`` inside."""
        try:
            self._setup()
            self._loop()
        finally:
            if dist_utils.is_distributed():
                torch.distributed.destroy_process_group()
        return self.run_dir

    def _loop(self) -> None:
        from tqdm.auto import tqdm

        cfg, ctx, method = self.cfg, self.ctx, self.method
        method.train()
        method.on_train_start(ctx)
        B, GB, lo = ctx.local_batch_size, ctx.global_batch_size, self.rank * ctx.local_batch_size
        for epoch in range(self.start_epoch, cfg.epochs):
            resuming_mid_epoch = epoch == self.start_epoch and self.start_pos > 0 and self.order is not None
            if resuming_mid_epoch:
                order, first = self.order, self.start_pos
            else:
                method.on_epoch_start(ctx, epoch)
                order = method.epoch_indices(ctx, epoch)
                order = self._default_order(epoch) if order is None else order.cpu().long()
                if order.numel() < ctx.steps_per_epoch * GB:
                    raise ValueError(
                        f"{type(method).__name__}.epoch_indices gave {order.numel()} indices; an epoch needs "
                        f"{ctx.steps_per_epoch * GB}"
                    )
                first = 0
            bar = tqdm(
                total=ctx.steps_per_epoch,
                initial=first,
                desc=f"{cfg.method} {epoch + 1}/{cfg.epochs}",
                disable=not (cfg.progress and ctx.is_main),
                leave=False,
                dynamic_ncols=True,
            )
            tick, seen = time.perf_counter(), 0
            for pos in range(first, ctx.steps_per_epoch):
                info = StepInfo(self.global_step, epoch, pos, ctx.steps_per_epoch, ctx.total_steps)
                indices = order[pos * GB : (pos + 1) * GB][lo : lo + B]
                loss_value, logs, lr = self._step(indices, info, epoch, pos, order)
                self.global_step += 1
                ctx.global_step = self.global_step
                seen += GB
                rate = seen / max(time.perf_counter() - tick, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}")
                last = pos == ctx.steps_per_epoch - 1
                if self.global_step % cfg.log_every == 0 or last or ctx._pending_logs:
                    row = {"step": self.global_step, "epoch": epoch + (pos + 1) / ctx.steps_per_epoch}
                    row.update(loss=loss_value, lr=lr, wd=self._wd, samples_per_s=rate, **logs)
                    row.update(ctx._pending_logs)
                    ctx._pending_logs.clear()
                    self.metrics.write(row)
                if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0 and not last:
                    self._save_checkpoint(epoch, pos + 1, order)
            bar.close()
            method.on_epoch_end(ctx, epoch)
            self._knn(epoch)
            if ctx._pending_logs:
                self.metrics.write({"step": self.global_step, "epoch": epoch + 1.0, **ctx._pending_logs})
                ctx._pending_logs.clear()
            self._save_checkpoint(epoch + 1, 0, None)
            self.metrics.plot(f"{cfg.method} on {cfg.dataset} ({cfg.arch})")
            if ctx.is_main and cfg.progress:
                last_row = self.metrics.rows[-1] if self.metrics.rows else {}
                knn = f", k-NN {last_row['knn_acc']:.3f}" if "knn_acc" in last_row else ""
                tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss_value:.4f}{knn}")
        if self.start_epoch >= cfg.epochs and ctx.is_main:
            self._export(cfg.epochs, 0)  # nothing left to train: make sure the export exists

    def _step(
        self, indices: torch.Tensor, info: StepInfo, epoch: int, pos: int, order: torch.Tensor
    ) -> tuple[float, dict[str, float], float]:
        ctx, method = self.ctx, self.method
        lr = self._set_schedules(info.global_step)
        images, labels = ctx.train.batch(indices, self.device)
        lo = self.rank * ctx.local_batch_size
        rng = BatchRandom(
            self.cfg.seed, info.global_step, ctx.global_batch_size, lo, lo + len(indices), self.device
        )
        with torch.no_grad():
            views = method.make_views(images, rng)
        batch = Batch(images=images, views=views, indices=indices.to(self.device), labels=labels, rng=rng)
        with ctx.autocast():
            out = self.model(batch, info)
        loss, logs = out if isinstance(out, tuple) else (out, {})
        # One all-reduce serves both the log and the NaN check: every rank stops together.
        loss_value = float(dist_utils.all_reduce_mean(loss.detach().float()))
        if not math.isfinite(loss_value):
            ckpt = self.run_dir / CHECKPOINT
            kept = (
                f"the last good checkpoint is {ckpt}" if ckpt.is_file() else "no checkpoint was written yet"
            )
            raise SslzooError(
                f"the {self.cfg.method} loss became {loss_value} at step {info.global_step} (epoch {epoch + 1}); "
                f"training stopped before the weights changed and {kept}. Lower --lr, set --grad-clip, or "
                "use --amp bf16/none."
            )
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
        return loss_value, {k: float(v) for k, v in logs.items()}, lr


def train(method: str = "simclr", **options: Any) -> Path:
    """Train ``method`` and return the run folder (``zoo.load(folder)`` reads its ``encoder/``).

    Args:
        method: A registered method name (``simclr``, ``moco``, ``byol``, ``dino``, …).
        **options: Fields of :class:`~trainers.config.TrainConfig` and of the method's ``Config``.

    >>> run = train("simclr", dataset="digits", epochs=1, batch_size=128, out="runs/demo")  # doctest: +SKIP
    """
    run_dir = default_run_dir(method, options.get("dataset", TrainConfig.dataset), options.get("out"))
    cfg, method_cfg = build_configs(method, options, run_dir)
    return Trainer(cfg, method_cfg).fit()
