"""The options every method shares; each method adds its own dataclass (``Method.Config``).

``sslzoo train`` is generated from these dataclasses (:mod:`zoo.config`), and the run folder keeps both as
``train_config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
            "help": "autocast dtype (auto: bf16 where CUDA supports it, none on CPU; bf16 pays on CPUs with AMX)",
            "choices": ("auto", "none", "bf16", "fp16"),
        },
    )
    compile: bool = field(default=False, metadata={"help": "torch.compile the networks"})
    channels_last: bool = field(
        default=False, metadata={"help": "keep conv weights channels-last (faster convs with --amp bf16)"}
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
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
