"""The options of ``sslzoo eval`` (:class:`EvalConfig`) and the protocols' names: data, importable without torch.

``sslzoo eval --help`` and ``sslzoo reproduce --help`` build their options from here alone; running a protocol
imports :mod:`evaluators.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zoo.config import DEVICE_HELP
from zoo.errors import SslzooError

# The fast linear probe's L2 penalties, tried on a validation split (evaluators.linear).
DEFAULT_WEIGHT_DECAYS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)

# Protocols on cached features, then protocols that read images (their features change every epoch).
FEATURE_PROTOCOLS = ("knn", "linear", "clustering")
IMAGE_PROTOCOLS = ("linear-paper",)
PROTOCOLS = (*FEATURE_PROTOCOLS, *IMAGE_PROTOCOLS)
PROTOCOL_DESCRIPTIONS = {
    "knn": "DINO's weighted k-NN on cached features",
    "linear": "fast linear probe: Newton-CG logistic regression on cached features (not the papers')",
    "clustering": "k-means of the test split's features: NMI, AMI, ARI, accuracy",
    "linear-paper": "the paper's linear evaluation: SGD on augmented images, its recipe (slow; GPUs, torchrun)",
}


@dataclass
class EvalConfig:
    """Options of ``sslzoo eval`` (protocol parameters, then how to run)."""

    protocols: str = field(
        default="knn,linear,clustering",
        metadata={
            "help": "comma-separated: knn, linear (the fast Newton-CG probe), clustering, linear-paper (the paper's "
            "SGD recipe on augmented images)"
        },
    )
    k: int = field(default=20, metadata={"help": "k-NN: neighbours that vote"})
    temperature: float = field(default=0.07, metadata={"help": "k-NN: vote weight exp(sim / T)"})
    weight_decays: tuple[float, ...] = field(
        default=DEFAULT_WEIGHT_DECAYS,
        metadata={"help": "linear probe: L2 penalties tried on the validation split"},
    )
    extend_grid: bool = field(
        default=True,
        metadata={
            "help": "linear probe: while the smallest penalty tried is the best, try a tenth of it (to 1e-10)"
        },
    )
    val_fraction: float = field(
        default=0.2, metadata={"help": "linear probe: share of train held out to pick λ"}
    )
    max_iter: int = field(default=200, metadata={"help": "linear (fast) probe: Newton steps per fit at most"})
    seed: int = field(default=0, metadata={"help": "linear probe: seed of the validation split"})
    n_clusters: int | None = field(
        default=None, metadata={"help": "clustering: k (none = number of classes)"}
    )
    cluster_seeds: int = field(default=3, metadata={"help": "clustering: k-means runs averaged"})
    cluster_niter: int = field(default=25, metadata={"help": "clustering: k-means iterations"})
    linear_recipe: str | None = field(
        default=None,
        metadata={
            "help": "linear-paper: recipe (dino, dinov2, mocov2, mocov3, mocov3-vit, swav; none = the entry's)"
        },
    )
    probe_features: str | None = field(
        default=None,
        metadata={"help": "linear-paper: features (default, last4_cls, cls_avgpool, …; none = the entry's)"},
    )
    paper_epochs: int | None = field(
        default=None, metadata={"help": "linear-paper: epochs (none = the recipe's)"}
    )
    paper_batch_size: int | None = field(
        default=None,
        metadata={"help": "linear-paper: total batch (none = the recipe's; LR rescaled if it scales)"},
    )
    paper_steps_per_epoch: int | None = field(
        default=None,
        metadata={"help": "linear-paper: iterations per epoch (none = the recipe's or one pass)"},
    )
    batch_size: int = field(default=256, metadata={"help": "images per forward pass when embedding"})
    num_workers: int = field(default=0, metadata={"help": "DataLoader workers decoding images (per rank)"})
    amp: str | None = field(
        default=None,
        metadata={
            "help": "embed under autocast in bf16 or fp16 (none = full precision); the error is recorded"
        },
    )
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    cache: bool = field(default=True, metadata={"help": "read/write the feature cache"})
    strict_images: bool = field(
        default=False,
        metadata={
            "help": "refuse a folder: dataset holding any unreadable image file (default: leave them out and "
            "record how many; more than 1 in 10 unreadable is refused either way)"
        },
    )

    def validate(self) -> None:
        """Check every option before anything is loaded or embedded: one line naming the first bad one."""
        from evaluators._inputs import as_int, as_positive_float
        from zoo.devices import resolve_device
        from zoo.encoder import AMP_DTYPES

        self.protocol_names()
        as_int(self.k, "--k", 1)
        as_positive_float(self.temperature, "--temperature")
        if not self.weight_decays:
            raise SslzooError("--weight-decays needs at least one value.")
        for wd in self.weight_decays:
            as_positive_float(wd, "each of --weight-decays", allow_zero=True)
        if not 0 < as_positive_float(self.val_fraction, "--val-fraction") < 1:
            raise SslzooError(f"--val-fraction must be between 0 and 1, got {self.val_fraction}.")
        as_int(self.max_iter, "--max-iter", 1)
        as_int(self.seed, "--seed", 0)
        if self.n_clusters is not None:
            as_int(self.n_clusters, "--n-clusters", 1)
        as_int(self.cluster_seeds, "--cluster-seeds", 1)
        as_int(self.cluster_niter, "--cluster-niter", 1)
        as_int(self.batch_size, "--batch-size", 1)
        resolve_device(self.device)
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise SslzooError(f"unknown --amp {self.amp!r}; choose from {', '.join(AMP_DTYPES)} (or none).")

    def protocol_names(self) -> list[str]:
        names = [p.strip() for p in self.protocols.split(",") if p.strip()]
        unknown = [p for p in names if p not in PROTOCOLS]
        if unknown or not names:
            raise SslzooError(
                f"unknown protocol {', '.join(unknown) or '(none given)'}; choose from {', '.join(PROTOCOLS)}."
            )
        return names
