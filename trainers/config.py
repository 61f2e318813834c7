"""The options every method shares; each method adds its own dataclass (``Method.Config``).

``sslzoo train`` is generated from these dataclasses (:mod:`zoo.config`), and the run folder keeps both as
``train_config.json``.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.config import option
from zoo.errors import SslzooError

RUN_CONFIG = "train_config.json"  # not config.json: that name belongs to exported encoders
CHECKPOINT = "checkpoints/last.pt"
SKIPPED_FILES = "skipped_files.txt"  # the image files the datasets left out, and why
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
    "workers",
    "strict_images",
    "dist_timeout",
}
# Options that may change on resume and change the plan: recorded in train_config.json (trainers.extensions).
SCHEDULE_CHANGES = {"epochs"}


@dataclass
class TrainConfig:
    """Shared training options. A method may change some defaults (``Method.defaults``)."""

    method: str = field(default="simclr", metadata={"help": "self-supervised method"})
    recipe: str | None = field(
        default=None,
        metadata={
            "help": "a paper's recipe (sslzoo recipes): its options are the defaults, yours override them"
        },
    )
    dataset: str = field(default="digits", metadata={"help": "dataset name (sslzoo datasets list)"})
    arch: str = field(
        default="sslzoo_cnn4",
        metadata={
            "help": "timm architecture: sslzoo_cnn4, sslzoo_resnet18_small, sslzoo_vit_tiny_patch4, resnet18, …"
        },
    )
    arch_args: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "extra timm.create_model arguments as KEY=VALUE (Python literals), e.g. widths=(16,32)"
        },
    )
    out: str | None = field(default=None, metadata={"help": "run folder (default: runs/METHOD-DATASET)"})
    resume: bool = field(
        default=False, metadata={"help": "continue the run in --out from its last checkpoint"}
    )
    epochs: int = field(default=30, metadata={"help": "training epochs"})
    batch_size: int = field(default=256, metadata={"help": "global batch size (split over ranks)"})
    image_size: int | None = field(
        default=None, metadata={"help": "training side in pixels (default: the dataset's, at least 16)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of initialisation, sample order and augmentations"})
    optimizer: str = field(
        default="adamw", metadata={"help": "optimiser", "choices": ("sgd", "adamw", "lars")}
    )
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (after warm-up)"})
    lr_batch_ref: int | None = field(
        default=None,
        metadata={
            "help": "--lr is for this global batch size: the peak is scaled linearly to the actual batch "
            "(none: --lr as is)"
        },
    )
    min_lr: float = field(default=0.0, metadata={"help": "learning rate at the end of the cosine decay"})
    warmup_epochs: float = field(
        default=2.0, metadata={"help": "linear learning-rate warm-up from 0 (at most half the run)"}
    )
    weight_decay: float = field(default=1e-4, metadata={"help": "weight decay (at the start)"})
    weight_decay_end: float | None = field(
        default=None,
        metadata={"help": "weight decay at the end, cosine from --weight-decay (none: constant)"},
    )
    sgd_momentum: float = field(default=0.9, metadata={"help": "momentum of SGD and LARS"})
    grad_clip: float | None = field(
        default=None, metadata={"help": "clip the gradient norm to this (none: off)"}
    )
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:1 or auto (CUDA when present)"})
    amp: str = field(
        default="auto",
        metadata={
            "help": "autocast dtype (auto: bf16 on GPUs with native bf16, compute capability 8.0+, else fp16 with "
            "a GradScaler; none on CPU; a resumed run keeps the dtype it started with; bf16 pays on CPUs with AMX)",
            "choices": ("auto", "none", "bf16", "fp16"),
        },
    )
    compile: bool = field(default=False, metadata={"help": "torch.compile the networks"})
    channels_last: bool = field(
        default=False, metadata={"help": "keep conv weights channels-last (faster convs with --amp bf16)"}
    )
    dist_timeout: float = field(
        default=1800.0,
        metadata={
            "help": "under torchrun: seconds a rank waits for the others in a collective before it stops with an "
            "error (one died or hangs); may change on --resume"
        },
    )
    sync_bn: bool = field(default=False, metadata={"help": "SyncBatchNorm across ranks (CUDA only)"})
    checkpoint_every: int = field(
        default=0, metadata={"help": "also checkpoint every N steps (0: only at the end of each epoch)"}
    )
    log_every: int = field(default=10, metadata={"help": "write a metrics.jsonl row every N steps"})
    knn_every: int = field(
        default=1, metadata={"help": "online k-NN accuracy on the test split every N epochs (0: off)"}
    )
    knn_k: int = field(default=20, metadata={"help": "neighbours of the k-NN monitor"})
    knn_max_train: int = field(
        default=10000, metadata={"help": "train samples the k-NN monitor uses at most"}
    )
    knn_max_test: int = field(default=10000, metadata={"help": "test samples the k-NN monitor uses at most"})
    strict_images: bool = field(
        default=False,
        metadata={
            "help": "refuse a folder: dataset holding any unreadable image file (default: leave them out, listed "
            "in RUN/skipped_files.txt; more than 1 in 10 unreadable is refused either way)"
        },
    )
    eval_dataset: str | None = field(
        default=None,
        metadata={
            "help": "labelled dataset of the k-NN monitor (default: the training dataset, if labelled)"
        },
    )
    workers: int | None = field(
        default=None,
        metadata={
            "help": "DataLoader worker processes per rank that decode and crop images (default: 0 for small "
            "in-memory datasets on a CPU, else one per spare core, at most 8)"
        },
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    logger: str = field(
        default="none",
        metadata={
            "help": "also send metrics.jsonl's rows, as written, to: none, tensorboard (RUN/tensorboard/) or trackio (project "
            "sslzoo)"
        },
    )


def parse_arch_args(items: tuple[str, ...]) -> dict[str, Any]:
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
    from trainers.methods import get_method

    cls = get_method(method)
    shared = {f.name for f in dataclasses.fields(TrainConfig)}
    own = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = set(options) - shared - own
    if unknown:
        raise SslzooError(
            f"unknown option(s) for method {method!r}: {', '.join(option(k) for k in sorted(unknown))}; "
            f"its own options are: {', '.join(option(k) for k in sorted(own)) or 'none'}."
        )
    train_values = {**cls.defaults, **{k: v for k, v in options.items() if k in shared}, "method": method}
    method_values = {k: v for k, v in options.items() if k in own}
    saved_path = run_dir / RUN_CONFIG if run_dir else None
    if options.get("resume") and saved_path and saved_path.is_file() and (run_dir / CHECKPOINT).is_file():
        saved = json.loads(saved_path.read_text())
        if saved["train"]["method"] != method:
            raise SslzooError(
                f"{run_dir} is a {saved['train']['method']!r} run; resume it with "
                f"{option('method', saved['train']['method'])}."
            )
        for given, old in ((options, saved["train"]), (options, saved["method"])):
            for key, value in given.items():
                if (
                    key in old
                    and key not in RESUMABLE_CHANGES | SCHEDULE_CHANGES
                    and _jsonable(value) != _jsonable(old[key])
                ):
                    raise SslzooError(
                        f"{run_dir} was trained with {option(key, old[key])}, not {option(key, value)}; resume "
                        f"with the same options or start a new run with another {option('out')}."
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
