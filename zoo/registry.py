"""The model registry: one table of names → architecture, weights, key mapping, preprocessing and paper numbers.

Entries are data, gathered from the official repositories; :func:`zoo.load` reads them and nothing else decides
per name. Adding a model means adding one :class:`ModelEntry` to ``MODELS``.

>>> from zoo.registry import list_models
>>> [e.name for e in list_models("dino-vit")][:2]
['dino-vitb16', 'dino-vitb8']
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from zoo import architectures  # noqa: F401  (registers the sslzoo_* architectures the entries name)
from zoo._keymaps import IDENTITY, KeyMapping
from zoo.errors import SslzooError

__all__ = [
    "MODELS",
    "ModelEntry",
    "Preprocessing",
    "get_entry",
    "list_models",
    "model_names",
    "shipped_entries",
]


@dataclass(frozen=True)
class Preprocessing:
    """Evaluation preprocessing in timm's terms: resize to ``input_size / crop_pct``, centre-crop ``input_size``.

    The default is the ImageNet linear-probe protocol of MoCo and SwAV: ``Resize(256)``, ``CenterCrop(224)``,
    bilinear, ImageNet mean/std.
    """

    input_size: tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD

    def as_pretrained_cfg(self) -> dict[str, Any]:
        return {
            "input_size": tuple(self.input_size),
            "crop_pct": self.crop_pct,
            "crop_mode": "center",
            "interpolation": self.interpolation,
            "mean": tuple(self.mean),
            "std": tuple(self.std),
        }


# DINO and DINOv2 evaluate with Resize(256, interpolation=3 (bicubic)) + CenterCrop(224) (eval_linear.py).
BICUBIC_224 = Preprocessing(interpolation="bicubic")
IMAGENET_224 = Preprocessing()


@dataclass(frozen=True)
class ModelEntry:
    """Everything known about one encoder before its weights are read.

    Attributes:
        name: Registry name (``dino-vits16``), or the folder / Hub id for encoders loaded from elsewhere.
        method: Self-supervised method (``dino``, ``mocov2`` …).
        arch: timm architecture name, built with ``num_classes=0`` and ``model_args``.
        source: Where the weights come from: ``hf-hub:ORG/NAME[@REVISION]``, an ``https://`` URL, or
            ``folder:PATH`` (a :func:`zoo.save_encoder` folder; relative paths are relative to the repository root).
        dim: Embedding dimension ``D`` of :meth:`Encoder.forward`.
        model_args: Extra ``timm.create_model`` arguments (MoCo v3's ViT-S has 12 heads, DINOv2 runs at 224 px).
        filename: File inside a Hub repo (``model.safetensors``).
        key_mapping: From the checkpoint's layout to timm's keys.
        preprocessing: Evaluation preprocessing.
        sha256: Expected SHA-256 of the weights file, checked after download when given.
        licence: Licence of the weights.
        paper: Citation and link.
        published: Published numbers, e.g. ``{"imagenet_knn": 74.5, "imagenet_linear": 77.0}`` (top-1 %).
        published_source: Where the numbers come from.
        embedding: What :meth:`Encoder.forward` returns, in words.
    """

    name: str
    method: str
    arch: str
    source: str
    dim: int
    model_args: dict[str, Any] = field(default_factory=dict)
    filename: str = "model.safetensors"
    key_mapping: KeyMapping = IDENTITY
    preprocessing: Preprocessing | None = IMAGENET_224
    sha256: str | None = None
    licence: str = "unknown"
    paper: str = ""
    published: dict[str, float] = field(default_factory=dict)
    published_source: str = ""
    embedding: str = ""

    @property
    def is_vit(self) -> bool:
        return self.arch.startswith(("vit_", "sslzoo_vit"))

    def with_(self, **changes: Any) -> ModelEntry:
        return replace(self, **changes)


_DINO_PAPER = (
    "Caron et al. 2021, Emerging Properties in Self-Supervised Vision Transformers, arXiv:2104.14294"
)
_DINO_NUMBERS = "https://github.com/facebookresearch/dino#pretrained-models"
_DINOV2_PAPER = (
    "Oquab et al. 2023, DINOv2: Learning Robust Visual Features without Supervision, arXiv:2304.07193"
)
_DINOV2_NUMBERS = "https://github.com/facebookresearch/dinov2#pretrained-models"
_MOCOV2_PAPER = "Chen et al. 2020, Improved Baselines with Momentum Contrastive Learning, arXiv:2003.04297"
_MOCOV3_PAPER = (
    "Chen, Xie, He 2021, An Empirical Study of Training Self-Supervised Vision Transformers, arXiv:2104.02057"
)
_SWAV_PAPER = "Caron et al. 2020, Unsupervised Learning of Visual Features by Contrasting Cluster Assignments, arXiv:2006.09882"
_SELFLABEL_PAPER = "Asano, Rupprecht, Vedaldi 2020, Self-labelling via simultaneous clustering and representation learning, arXiv:1911.05371"
_CLS = "CLS token after the final LayerNorm"
_GAP = "global-average-pooled last ResNet stage"

_MOCOV2_MAP = KeyMapping(container=("state_dict",), prefix="module.encoder_q.", drop=("fc.",))
_MOCOV3_VIT_MAP = KeyMapping(container=("state_dict",), prefix="module.base_encoder.", drop=("head.",))
_MOCOV3_R50_MAP = KeyMapping(container=("state_dict",), prefix="module.base_encoder.", drop=("fc.",))
_SWAV_MAP = KeyMapping(prefix="module.", drop=("projection_head.", "prototypes"))
_DL = "https://dl.fbaipublicfiles.com"


def _dino_vit(name: str, arch: str, dim: int, knn: float, linear: float) -> ModelEntry:
    return ModelEntry(
        name=name,
        method="dino",
        arch=arch,
        source=f"hf-hub:timm/{arch}.dino",
        dim=dim,
        preprocessing=BICUBIC_224,
        licence="apache-2.0",
        paper=_DINO_PAPER,
        published={"imagenet_knn": knn, "imagenet_linear": linear},
        published_source=_DINO_NUMBERS,
        embedding=_CLS,
    )


def _dinov2(size: str, dim: int, knn: float, linear: float) -> ModelEntry:
    arch = f"vit_{size}_patch14_dinov2"
    return ModelEntry(
        name=f"dinov2-vit{size[0]}14",
        method="dinov2",
        arch=arch,
        source=f"hf-hub:timm/{arch}.lvd142m",
        dim=dim,
        # Trained at 518 px; the linear and k-NN protocol runs at 224 px (position embedding resampled on load).
        model_args={"img_size": 224},
        preprocessing=BICUBIC_224,
        licence="apache-2.0",
        paper=_DINOV2_PAPER,
        published={"imagenet_knn": knn, "imagenet_linear": linear},
        published_source=_DINOV2_NUMBERS,
        embedding=_CLS,
    )


def _swav_family(name: str, method: str, file: str, linear: float) -> ModelEntry:
    return ModelEntry(
        name=name,
        method=method,
        arch="resnet50",
        source=f"{_DL}/deepcluster/{file}",
        dim=2048,
        key_mapping=_SWAV_MAP,
        licence="cc-by-nc-4.0",
        paper=_SWAV_PAPER,
        published={"imagenet_linear": linear},
        published_source="https://github.com/facebookresearch/swav#model-zoo",
        embedding=_GAP,
    )


_ENTRIES: tuple[ModelEntry, ...] = (
    _dino_vit("dino-vits16", "vit_small_patch16_224", 384, 74.5, 77.0),
    _dino_vit("dino-vits8", "vit_small_patch8_224", 384, 78.3, 79.7),
    _dino_vit("dino-vitb16", "vit_base_patch16_224", 768, 76.1, 78.2),
    _dino_vit("dino-vitb8", "vit_base_patch8_224", 768, 77.4, 80.1),
    ModelEntry(
        name="dino-resnet50",
        method="dino",
        arch="resnet50",
        source=f"{_DL}/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth",
        dim=2048,
        # A flat torchvision state dict of the backbone; its fc was replaced by Identity before saving.
        key_mapping=KeyMapping(drop=("fc.",)),
        preprocessing=BICUBIC_224,
        licence="apache-2.0",
        paper=_DINO_PAPER,
        published={"imagenet_knn": 67.5, "imagenet_linear": 75.3},
        published_source=_DINO_NUMBERS,
        embedding=_GAP,
    ),
    _dinov2("small", 384, 79.0, 81.1),
    _dinov2("base", 768, 82.1, 84.5),
    _dinov2("large", 1024, 83.5, 86.3),
    _dinov2("giant", 1536, 83.5, 86.5),
    ModelEntry(
        name="mocov2-resnet50",
        method="mocov2",
        arch="resnet50",
        source=f"{_DL}/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar",
        dim=2048,
        key_mapping=_MOCOV2_MAP,
        licence="mit",
        paper=_MOCOV2_PAPER,
        published={"imagenet_linear": 71.1},
        published_source="https://github.com/facebookresearch/moco#models",
        embedding=_GAP,
    ),
    ModelEntry(
        name="mocov3-vits16",
        method="mocov3",
        arch="vit_small_patch16_224",
        source=f"{_DL}/moco-v3/vit-s-300ep/vit-s-300ep.pth.tar",
        dim=384,
        # MoCo v3's ViT-S has 12 heads (timm's has 6); its fixed sin-cos position embedding is in the checkpoint.
        model_args={"num_heads": 12},
        key_mapping=_MOCOV3_VIT_MAP,
        licence="cc-by-nc-4.0",
        paper=_MOCOV3_PAPER,
        published={"imagenet_linear": 73.2},
        published_source="https://github.com/facebookresearch/moco-v3/blob/main/CONFIG.md",
        embedding=_CLS,
    ),
    ModelEntry(
        name="mocov3-vitb16",
        method="mocov3",
        arch="vit_base_patch16_224",
        source=f"{_DL}/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar",
        dim=768,
        key_mapping=_MOCOV3_VIT_MAP,
        licence="cc-by-nc-4.0",
        paper=_MOCOV3_PAPER,
        published={"imagenet_linear": 76.7},
        published_source="https://github.com/facebookresearch/moco-v3/blob/main/CONFIG.md",
        embedding=_CLS,
    ),
    ModelEntry(
        name="mocov3-resnet50",
        method="mocov3",
        arch="resnet50",
        source=f"{_DL}/moco-v3/r-50-1000ep/r-50-1000ep.pth.tar",
        dim=2048,
        key_mapping=_MOCOV3_R50_MAP,
        licence="cc-by-nc-4.0",
        paper=_MOCOV3_PAPER,
        published={"imagenet_linear": 74.6},
        published_source="https://github.com/facebookresearch/moco-v3/blob/main/CONFIG.md",
        embedding=_GAP,
    ),
    _swav_family("swav-resnet50", "swav", "swav_800ep_pretrain.pth.tar", 75.3),
    _swav_family("deepclusterv2-resnet50", "deepclusterv2", "deepclusterv2_800ep_pretrain.pth.tar", 75.2),
    _swav_family("selav2-resnet50", "selav2", "selav2_400ep_pretrain.pth.tar", 71.8),
    ModelEntry(
        name="selflabel-resnet50",
        method="selflabel",
        arch="resnet50",
        source="http://www.robots.ox.ac.uk/~vgg/research/self-label/asset/new_models/resnet50-10x3k_pp.pth",
        dim=2048,
        key_mapping=KeyMapping(container=("state_dict",), drop=("fc.",)),
        licence="mit",
        paper=_SELFLABEL_PAPER,
        published={"imagenet_linear": 68.8},
        published_source="https://github.com/yukimasano/self-label#with-better-augmentations-all-single-crop",
        embedding=_GAP,
    ),
)

# Encoders trained by sslzoo ship in the repository as Hub-ready folders, ``models/NAME/`` (weights, timm config,
# sslzoo.json, model card); each one found there is registered as NAME, loading from ``folder:models/NAME``.
# $SSLZOO_MODELS_DIR points elsewhere (tests, a private zoo).
_REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DIR = Path(os.environ.get("SSLZOO_MODELS_DIR") or _REPO_ROOT / "models")


def shipped_entries(root: str | Path = SHIPPED_DIR) -> list[ModelEntry]:
    """Entries for the encoders shipped under ``root`` (``models/NAME/config.json`` + ``sslzoo.json``), by name.

    The entry is read from the folder itself: architecture, width and model arguments from timm's ``config.json``,
    method, licence and embedding from ``sslzoo.json``; preprocessing is the folder's own (``pretrained_cfg``).
    """
    import json

    entries = []
    for config_path in sorted(Path(root).glob("*/config.json")):
        folder = config_path.parent
        try:
            config = json.loads(config_path.read_text())
            meta_path = folder / "sslzoo.json"
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            continue  # a half-copied folder is not an entry; zoo.load(folder) says what is wrong with it
        # Inside the repository the source is relative (``folder:models/NAME``), as a fresh clone resolves it.
        folder = folder.resolve()
        relative = folder.relative_to(_REPO_ROOT) if folder.is_relative_to(_REPO_ROOT) else folder
        entries.append(
            ModelEntry(
                name=folder.name,
                method=str(meta.get("method") or "unknown"),
                arch=str(config.get("architecture")),
                source=f"folder:{relative}",
                dim=int(config.get("num_features") or 0),
                model_args=dict(config.get("model_args") or {}),
                preprocessing=None,
                licence=str(meta.get("licence") or "apache-2.0"),
                paper=str(meta.get("paper") or ""),
                published_source=str(meta.get("published_source") or ""),
                embedding=str(meta.get("embedding") or "global-average-pooled features"),
            )
        )
    return entries


MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}
MODELS.update({e.name: e for e in shipped_entries() if e.name not in MODELS})


def model_names() -> list[str]:
    """All registered names, sorted."""
    return sorted(MODELS)


def list_models(filter: str | None = None) -> list[ModelEntry]:
    """Registered entries, sorted by name; ``filter`` keeps names (or methods) containing it, or matching a glob.

    >>> [e.name for e in list_models("mocov3")]
    ['mocov3-resnet50', 'mocov3-vitb16', 'mocov3-vits16']
    """
    import fnmatch

    entries = [MODELS[name] for name in model_names()]
    if not filter:
        return entries
    if any(c in filter for c in "*?["):
        return [e for e in entries if fnmatch.fnmatch(e.name, filter)]
    return [e for e in entries if filter in e.name or filter == e.method]


def get_entry(name: str) -> ModelEntry:
    """The entry registered as ``name``.

    Raises:
        SslzooError: unknown name, with the closest registered names.
    """
    if name in MODELS:
        return MODELS[name]
    close = difflib.get_close_matches(name, MODELS, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise SslzooError(
        f"unknown model {name!r}.{hint} See `sslzoo models` for the registry; "
        "or pass hf-hub:ORG/NAME[@REVISION] or a folder written by zoo.save_encoder."
    )
