"""Each method's own options and its defaults of the shared ones: data, importable without torch.

``sslzoo train --help`` and ``sslzoo recipes`` are built from this module alone (no torch, no timm: a cheap command
stays cheap); the method's file (``trainers/methods/NAME.py``) holds its mechanism and says ``Config = NAMEConfig``.
A field becomes a ``--flag`` of ``sslzoo train`` (:func:`zoo.config.add_dataclass_arguments`).

>>> CONFIGS["simclr"]().temperature
0.2
>>> DEFAULTS["moco"]["optimizer"]
'sgd'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zoo.errors import SslzooError

__all__ = [
    "CONFIGS",
    "DEFAULTS",
    "BYOLConfig",
    "DINOConfig",
    "DeepClusterConfig",
    "DeeperClusterConfig",
    "MoCoConfig",
    "SelfLabelConfig",
    "SimCLRConfig",
    "check_minimums",
]

SHUFFLE_BN_CHOICES = ("auto", "ddp-shuffle", "split-bn", "off")


def check_minimums(cfg: Any, method: str, **minimums: float) -> None:
    """Raise one clear line when an option of ``cfg`` is below its minimum (``k=2`` → ``--k`` must be ≥ 2)."""
    for name, low in minimums.items():
        value = getattr(cfg, name)
        if value < low:
            flag = "--" + name.replace("_", "-")
            raise SslzooError(f"{flag} must be at least {low} for {method}, got {value}.")


@dataclass
class SimCLRConfig:
    """SimCLR's own options (:mod:`trainers.methods.simclr`)."""

    temperature: float = field(default=0.2, metadata={"help": "NT-Xent temperature τ"})
    proj_hidden_dim: int = field(default=512, metadata={"help": "hidden width of the projection MLP"})
    proj_dim: int = field(default=128, metadata={"help": "output width of the projection MLP"})
    bn_per_view: bool = field(
        default=False,
        metadata={
            "help": "forward each view alone, so BatchNorm normalises per view (lightly's loop; off: both "
            "views in one batch, as SimCLR's code)"
        },
    )
    # SimCLR's code normalises the head's hidden layer (lightly's head too). Measured on a validation split
    # (bench_vs_lightly, cnn4, 1 epoch of Fashion-MNIST): k-NN / linear 83.38 / 86.25 without, 83.73 / 86.50 with
    # (lightly 83.75 / 86.54 with, 83.03 / 86.55 without): the gap to lightly was this layer.
    proj_bn: bool = field(
        default=True,
        metadata={"help": "BatchNorm after the projection MLP's hidden layer (SimCLR's code has it)"},
    )
    crop_min_scale: float = field(default=0.2, metadata={"help": "smallest crop area fraction"})
    jitter: float = field(default=0.5, metadata={"help": "colour-distortion strength s (App. A)"})


@dataclass
class MoCoConfig:
    """MoCo v2's own options (:mod:`trainers.methods.moco`)."""

    temperature: float = field(default=0.2, metadata={"help": "InfoNCE temperature τ"})
    queue_size: int = field(default=4096, metadata={"help": "keys K in the queue"})
    momentum: float = field(default=0.99, metadata={"help": "key-encoder momentum m"})
    momentum_end: float | None = field(
        default=None, metadata={"help": "m at the end, cosine from --momentum (none: constant, as the paper)"}
    )
    proj_hidden_dim: int = field(default=512, metadata={"help": "hidden width of the MLP head"})
    proj_dim: int = field(default=128, metadata={"help": "embedding width"})
    crop_min_scale: float = field(default=0.2, metadata={"help": "smallest crop area fraction"})
    jitter: float = field(default=0.5, metadata={"help": "colour-distortion strength"})
    shuffle_bn: str = field(
        default="auto",
        metadata={
            "help": "what keeps BN statistics from identifying the positive key (auto: ddp-shuffle under torchrun, "
            "split-bn in one process, off without BatchNorm; the run config records the choice)",
            "choices": SHUFFLE_BN_CHOICES,
        },
    )
    bn_splits: int = field(
        default=8,
        metadata={"help": "sub-batches of --shuffle-bn split-bn (8 × 32 at batch 256, like 8 GPUs)"},
    )

    def __post_init__(self) -> None:
        if isinstance(self.shuffle_bn, bool):  # run configs written before the choices existed
            self.shuffle_bn = "auto" if self.shuffle_bn else "off"
        if self.shuffle_bn not in SHUFFLE_BN_CHOICES:
            raise SslzooError(
                f"--shuffle-bn must be one of {', '.join(SHUFFLE_BN_CHOICES)}, got {self.shuffle_bn!r}."
            )
        if self.bn_splits < 1:
            raise SslzooError(f"--bn-splits must be at least 1, got {self.bn_splits}.")


@dataclass
class BYOLConfig:
    """BYOL's own options (:mod:`trainers.methods.byol`)."""

    proj_hidden_dim: int = field(default=1024, metadata={"help": "hidden width of projector and predictor"})
    proj_dim: int = field(default=256, metadata={"help": "projection width"})
    momentum: float = field(default=0.99, metadata={"help": "τ_base of the target EMA"})
    momentum_end: float = field(default=1.0, metadata={"help": "τ at the end of training (cosine)"})
    crop_min_scale: float = field(default=0.2, metadata={"help": "smallest crop area fraction"})
    bn_per_view: bool = field(
        default=False,
        metadata={
            "help": "forward each view alone, so BatchNorm normalises per view (lightly's loop; off: both "
            "views in one batch)"
        },
    )
    jitter: float = field(default=0.5, metadata={"help": "colour-distortion strength"})


@dataclass
class DINOConfig:
    """DINO's own options (:mod:`trainers.methods.dino`)."""

    out_dim: int = field(default=1024, metadata={"help": "prototypes K of the head's output"})
    hidden_dim: int = field(default=512, metadata={"help": "hidden width of the head's MLP"})
    bottleneck_dim: int = field(default=128, metadata={"help": "L2-normalised bottleneck width"})
    n_local_crops: int = field(default=6, metadata={"help": "local crops per image"})
    local_crop_size: int | None = field(
        default=None, metadata={"help": "local crop side (default: 96/224 of the image side, at least 8)"}
    )
    global_crop_min_scale: float = field(default=0.4, metadata={"help": "smallest global crop area"})
    local_crop_max_scale: float = field(default=0.4, metadata={"help": "largest local crop area"})
    student_temp: float = field(default=0.1, metadata={"help": "student temperature τ_s"})
    teacher_temp: float = field(default=0.07, metadata={"help": "teacher temperature τ_t after warm-up"})
    warmup_teacher_temp: float = field(default=0.04, metadata={"help": "teacher temperature at step 0"})
    warmup_teacher_temp_epochs: float = field(default=10.0, metadata={"help": "epochs of τ_t warm-up"})
    center_momentum: float = field(default=0.9, metadata={"help": "centre EMA momentum m"})
    centering: bool = field(default=True, metadata={"help": "centre the teacher (off only to show collapse)"})
    momentum: float = field(default=0.996, metadata={"help": "teacher EMA λ at the start"})
    momentum_end: float = field(default=1.0, metadata={"help": "teacher EMA λ at the end (cosine)"})
    freeze_last_layer_epochs: float = field(
        default=1.0, metadata={"help": "keep the last layer fixed this long"}
    )
    norm_last_layer: bool = field(
        default=True,
        metadata={"help": "fix the weight-norm scale g of the head's last layer to 1 (off: g is trained)"},
    )
    jitter: float = field(default=0.5, metadata={"help": "colour-distortion strength"})
    param_grad_clip: float = field(
        default=3.0,
        metadata={
            "help": "clip each parameter's gradient norm at this, separately (the DINO repository's clip_grad; "
            "0: off); --grad-clip clips the global norm instead"
        },
    )


@dataclass
class DeepClusterConfig:
    """DeepCluster's own options (:mod:`trainers.methods.deepcluster`)."""

    k: int = field(default=100, metadata={"help": "k-means clusters (pseudo-classes); ~10x the true classes"})
    pca_dim: int = field(
        default=32, metadata={"help": "PCA-whitening dimension before k-means (256 on ImageNet)"}
    )
    kmeans_iters: int = field(default=20, metadata={"help": "Lloyd iterations of each k-means"})
    cluster_every: int = field(default=1, metadata={"help": "re-cluster every N epochs"})
    crop_min_scale: float = field(
        default=0.3, metadata={"help": "smallest random-resized-crop area fraction"}
    )
    sobel: bool = field(
        default=False,
        metadata={"help": "fixed grayscale + Sobel filters before the backbone (the paper's §4 input)"},
    )

    def __post_init__(self) -> None:
        check_minimums(
            self, "deepcluster", k=2, pca_dim=1, kmeans_iters=1, cluster_every=1, crop_min_scale=0.01
        )


@dataclass
class DeeperClusterConfig:
    """DeeperCluster's own options (:mod:`trainers.methods.deepercluster`)."""

    super_clusters: int = field(
        default=4, metadata={"help": "m: super-clusters (4m super-classes with rotations)"}
    )
    sub_clusters: int = field(default=16, metadata={"help": "k: sub-classes per super-cluster"})
    pca_dim: int = field(default=32, metadata={"help": "PCA-whitening dimension before k-means"})
    kmeans_iters: int = field(default=20, metadata={"help": "Lloyd iterations of each k-means"})
    cluster_every: int = field(default=2, metadata={"help": "T: re-cluster every T epochs"})
    crop_min_scale: float = field(
        default=0.3, metadata={"help": "smallest random-resized-crop area fraction"}
    )
    sobel: bool = field(
        default=False,
        metadata={"help": "fixed grayscale + Sobel filters before the backbone (the paper's §4 input)"},
    )

    def __post_init__(self) -> None:
        check_minimums(
            self,
            "deepercluster",
            super_clusters=1,
            sub_clusters=1,
            pca_dim=1,
            kmeans_iters=1,
            cluster_every=1,
        )


@dataclass
class SelfLabelConfig:
    """Self-Label's (SeLa's) own options (:mod:`trainers.methods.selflabel`)."""

    num_clusters: int = field(default=100, metadata={"help": "K: classes of each head (equipartitioned)"})
    num_heads: int = field(default=1, metadata={"help": "heads, each with its own pseudo-labels"})
    lam: float = field(
        default=25.0, metadata={"help": "λ: Sinkhorn-Knopp sharpness, P^λ (inverse entropy weight)"}
    )
    label_updates: int = field(
        default=10, metadata={"help": "label optimisations over the run (square-law spaced)"}
    )
    sinkhorn_iters: int = field(
        default=1000, metadata={"help": "most Sinkhorn-Knopp rescalings per label step"}
    )
    crop_min_scale: float = field(
        default=0.3, metadata={"help": "smallest random-resized-crop area fraction"}
    )
    jitter: float = field(default=0.4, metadata={"help": "colour-distortion strength"})

    def __post_init__(self) -> None:
        check_minimums(
            self, "selflabel", num_clusters=2, num_heads=1, lam=1e-3, label_updates=1, sinkhorn_iters=1
        )


CONFIGS: dict[str, type] = {
    "simclr": SimCLRConfig,
    "moco": MoCoConfig,
    "byol": BYOLConfig,
    "dino": DINOConfig,
    "deepcluster": DeepClusterConfig,
    "deepercluster": DeeperClusterConfig,
    "selflabel": SelfLabelConfig,
}

# A method's defaults of the shared options (trainers.config.TrainConfig); options the user gives win.
_ADAMW = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4}
DEFAULTS: dict[str, dict[str, Any]] = {
    "simclr": {**_ADAMW},
    "moco": {"optimizer": "sgd", "lr": 0.06, "weight_decay": 5e-4},
    "byol": {**_ADAMW},
    # No global --grad-clip: the repository clips per parameter (param_grad_clip).
    "dino": {"optimizer": "adamw", "lr": 5e-4, "min_lr": 1e-6, "weight_decay": 0.04, "weight_decay_end": 0.4},
    # The paper trains AlexNet/VGG with SGD (lr 0.05, wd 1e-5) for 500 epochs; for a few CPU epochs of a small
    # CNN, AdamW learns each round's classifier within the round.
    "deepcluster": {**_ADAMW},
    "deepercluster": {**_ADAMW},
    # The paper uses SGD (lr 0.05, wd 1e-5) for 400 epochs; AdamW suits a few CPU epochs of a small CNN.
    "selflabel": {**_ADAMW},
}
