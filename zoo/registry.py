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

from zoo import _hub
from zoo._keymaps import IDENTITY, KeyMapping
from zoo.errors import SslzooError

# timm.data's IMAGENET_DEFAULT_MEAN / _STD, written out: the registry is data and imports neither torch nor timm
# (`sslzoo models` stays cheap); tests/zoo/test_registry.py checks they are timm's.
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)

__all__ = [
    "LINEAR_RECIPES",
    "MODELS",
    "LinearRecipe",
    "ModelEntry",
    "Preprocessing",
    "entry_folder",
    "get_entry",
    "is_cached",
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


@dataclass(frozen=True)
class LinearRecipe:
    """A paper's linear evaluation: a linear layer trained by SGD on frozen features of augmented images.

    The numbers are those of the official script behind the published accuracy (``source``); the evaluators run
    it as ``sslzoo eval --protocols linear-paper`` (:mod:`evaluators.paper_linear`).

    Attributes:
        name: Key in :data:`LINEAR_RECIPES`.
        source: The official file (and README/CONFIG line) this recipe is read from.
        epochs: Training epochs.
        batch_size: Total batch size of the published run (all GPUs together).
        lrs: Base learning rate(s); several = one head per value trained on the same features, the best reported
            (DINOv2's sweep).
        lr_scaling: ``"linear"``: ``lr × batch / 256`` with the batch actually used; ``"none"``: as given.
        schedule: ``"cosine"`` (to 0 over the run) or ``"step"`` (× 0.1 at each of ``milestones``).
        milestones: Epochs of the step schedule.
        steps_per_epoch: Iterations per epoch when the script counts its own (DINOv2: 1250); ``None`` = one pass.
        schedule_per_step: Cosine over iterations instead of epochs.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        train_interpolation: ``RandomResizedCrop``'s interpolation (the flip is always there).
        report: ``"best"``: best validation top-1 over epochs (what DINO, MoCo and SwAV print at the end);
            ``"last"``: after the last epoch.
        tolerance: Points within which a reproduction counts as matching the published number.
        note: What the recipe leaves open.
    """

    name: str
    source: str
    epochs: int
    batch_size: int
    lrs: tuple[float, ...]
    lr_scaling: str = "linear"
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    steps_per_epoch: int | None = None
    schedule_per_step: bool = False
    momentum: float = 0.9
    weight_decay: float = 0.0
    train_interpolation: str = "bilinear"
    report: str = "best"
    tolerance: float = 0.5
    note: str = ""


LINEAR_RECIPES: dict[str, LinearRecipe] = {
    r.name: r
    for r in (
        LinearRecipe(
            name="dino",
            source="facebookresearch/dino eval_linear.py (defaults; README: 8 GPUs × 128)",
            epochs=100,
            batch_size=1024,
            lrs=(0.001,),
            note="DINO's README advises tweaking the LR per checkpoint; its eval logs hold the values used.",
        ),
        LinearRecipe(
            name="dinov2",
            source="facebookresearch/dinov2 dinov2/eval/linear.py (defaults)",
            epochs=10,
            batch_size=1024,
            lrs=(1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1),
            steps_per_epoch=1250,
            schedule_per_step=True,
            train_interpolation="bicubic",
            report="last",
            note="Upstream also sweeps the features ({1, 4} blocks × avgpool) and keeps the best classifier on "
            "the evaluation split; here the features are the entry's linear_features.",
        ),
        LinearRecipe(
            name="mocov2",
            source="facebookresearch/moco main_lincls.py (README: --lr 30.0 --batch-size 256)",
            epochs=100,
            batch_size=256,
            lrs=(30.0,),
            lr_scaling="none",
            schedule="step",
            milestones=(60, 80),
        ),
        LinearRecipe(
            name="mocov3",
            source="facebookresearch/moco-v3 main_lincls.py (defaults; CONFIG.md: ResNet-50 default LR)",
            epochs=90,
            batch_size=1024,
            lrs=(0.1,),
        ),
        LinearRecipe(
            name="mocov3-vit",
            source="facebookresearch/moco-v3 main_lincls.py (CONFIG.md: -a vit_small/vit_base --lr=3)",
            epochs=90,
            batch_size=1024,
            lrs=(3.0,),
        ),
        LinearRecipe(
            name="swav",
            source="facebookresearch/swav eval_linear.py (defaults; README: 8 GPUs × 32)",
            epochs=100,
            batch_size=256,
            lrs=(0.3,),
            lr_scaling="none",
            weight_decay=1e-6,
        ),
    )
}

# DINO and DINOv2 evaluate with Resize(256, interpolation=3 (bicubic)) + CenterCrop(224) (eval_linear.py).
BICUBIC_224 = Preprocessing(interpolation="bicubic")
IMAGENET_224 = Preprocessing()
# SwAV, DeepCluster-v2 and SeLa-v2 normalise with std 0.228 for red, not 0.229: facebookresearch/swav
# eval_linear.py (and src/multicropdataset.py in training), Resize(256) + CenterCrop(224) bilinear.
SWAV_224 = Preprocessing(std=(0.228, 0.224, 0.225))


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
        sha256: Expected SHA-256 of the weights file (hex, or a prefix of it), checked before the file is read.
        md5: Expected MD5 of the weights file where no SHA-256 is published (a full hex digest, or a prefix).
        unpinned: Why an official file has neither a hash nor a Hub revision pinned (empty when it is pinned).
        licence: Licence of the weights.
        paper: Citation and link.
        published: Published numbers, e.g. ``{"imagenet_knn": 74.5, "imagenet_linear": 77.0}`` (top-1 %).
        published_source: Where the numbers come from.
        embedding: What :meth:`Encoder.forward` returns, in words.
        linear_features: The features the paper's linear probe read (a ``zoo.encoder.FEATURE_KINDS`` key).
        linear_recipe: The paper's linear evaluation (a :data:`LINEAR_RECIPES` key), or ``None`` when unknown.
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
    md5: str | None = None
    unpinned: str = ""
    licence: str = "unknown"
    paper: str = ""
    published: dict[str, float] = field(default_factory=dict)
    published_source: str = ""
    embedding: str = ""
    linear_features: str = "default"
    linear_recipe: str | None = None

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
# SwAV's eval_linear.py: descend into "state_dict" when the file has one (a training checkpoint), strip "module.".
_SWAV_MAP = KeyMapping(
    container=("state_dict",),
    container_optional=True,
    prefix="module.",
    drop=("projection_head.", "prototypes"),
)
_DL = "https://dl.fbaipublicfiles.com"

# Why an official file is not pinned (stated per entry, listed by `sslzoo models`' tests): nothing to check against.
_NO_HUB_REVISION = (
    "the commit of timm's Hub repo could not be looked up offline when this entry was written, so the repo's main "
    "branch is loaded; the identity records the commit actually read"
)
_NO_PUBLISHED_HASH = (
    "upstream publishes no checksum for this file (README and hubconf give only the URL) and it could not be "
    "downloaded to hash it when this entry was written; the file is identified by its own SHA-256 instead"
)


def _dino_vit(name: str, timm_arch: str, arch: str, dim: int, knn: float, linear: float) -> ModelEntry:
    return ModelEntry(
        name=name,
        method="dino",
        # Same weights and keys as timm's arch, with DINO's per-forward position interpolation (zoo.dino_vit).
        arch=arch,
        source=f"hf-hub:timm/{timm_arch}.dino",
        dim=dim,
        preprocessing=BICUBIC_224,
        unpinned=_NO_HUB_REVISION,
        licence="apache-2.0",
        paper=_DINO_PAPER,
        published={"imagenet_knn": knn, "imagenet_linear": linear},
        published_source=_DINO_NUMBERS,
        embedding=_CLS,
        # eval_linear.py's help: n_last_blocks=4 for ViT-Small, n=1 + avgpool_patchtokens for ViT-Base.
        linear_features="last4_cls" if "small" in arch else "cls_avgpool",
        linear_recipe="dino",
    )


def _dinov2(
    size: str, dim: int, knn: float, linear: float, revision: str | None = None, sha256: str | None = None
) -> ModelEntry:
    repo = f"timm/vit_{size}_patch14_dinov2.lvd142m"
    return ModelEntry(
        name=f"dinov2-vit{size[0]}14",
        method="dinov2",
        # Trained at 518 px (37×37 positions), evaluated at 224 px: the positions are interpolated at every
        # forward as dinov2/models/vision_transformer.py does (zoo.dino_vit), not resampled once on load.
        arch=f"sslzoo_vit_{size}_patch14_dinov2",
        source=f"hf-hub:{repo}@{revision}" if revision else f"hf-hub:{repo}",
        dim=dim,
        preprocessing=BICUBIC_224,
        sha256=sha256,
        unpinned="" if revision else _NO_HUB_REVISION,
        licence="apache-2.0",
        paper=_DINOV2_PAPER,
        published={"imagenet_knn": knn, "imagenet_linear": linear},
        published_source=_DINOV2_NUMBERS,
        embedding=_CLS,
        linear_features="cls_avgpool",  # the released 1-layer linear heads read [CLS] + mean patch token
        linear_recipe="dinov2",
    )


def _swav_family(name: str, method: str, file: str, linear: float) -> ModelEntry:
    return ModelEntry(
        name=name,
        method=method,
        arch="resnet50",
        source=f"{_DL}/deepcluster/{file}",
        dim=2048,
        key_mapping=_SWAV_MAP,
        preprocessing=SWAV_224,
        unpinned=_NO_PUBLISHED_HASH,
        licence="cc-by-nc-4.0",
        paper=_SWAV_PAPER,
        published={"imagenet_linear": linear},
        published_source="https://github.com/facebookresearch/swav#model-zoo",
        embedding=_GAP,
        linear_recipe="swav",
    )


_ENTRIES: tuple[ModelEntry, ...] = (
    _dino_vit("dino-vits16", "vit_small_patch16_224", "sslzoo_vit_small_patch16_dino", 384, 74.5, 77.0),
    _dino_vit("dino-vits8", "vit_small_patch8_224", "sslzoo_vit_small_patch8_dino", 384, 78.3, 79.7),
    _dino_vit("dino-vitb16", "vit_base_patch16_224", "sslzoo_vit_base_patch16_dino", 768, 76.1, 78.2),
    _dino_vit("dino-vitb8", "vit_base_patch8_224", "sslzoo_vit_base_patch8_dino", 768, 77.4, 80.1),
    ModelEntry(
        name="dino-resnet50",
        method="dino",
        arch="resnet50",
        source=f"{_DL}/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth",
        dim=2048,
        # A flat torchvision state dict of the backbone; its fc was replaced by Identity before saving.
        key_mapping=KeyMapping(drop=("fc.",)),
        preprocessing=BICUBIC_224,
        unpinned=_NO_PUBLISHED_HASH,
        licence="apache-2.0",
        paper=_DINO_PAPER,
        published={"imagenet_knn": 67.5, "imagenet_linear": 75.3},
        published_source=_DINO_NUMBERS,
        embedding=_GAP,
        linear_recipe="dino",
    ),
    # Revisions and SHA-256s (the LFS object ids) of timm's repos as pinned by independent projects that verify them.
    _dinov2(
        "small",
        384,
        79.0,
        81.1,
        revision="4610ca143709d58a633b6397a74412c2c3842454",
        sha256="04d27f3400d059fc0cfd7d17dd1909a75bf3ea8fb3eeb48b97cb99e57ee20081",
    ),
    _dinov2(
        "base",
        768,
        82.1,
        84.5,
        revision="4685c99dabffe5affac90bd99dbffd25801ae58d",
        sha256="55cbb5d887b336d430e649c277b85a1429e724871f9d02ac16203235886d8c7b",
    ),
    _dinov2(
        "large",
        1024,
        83.5,
        86.3,
        revision="4741e1cafbf45415e77074bb0cb42dba76c8684a",
        sha256="0424a5d1b515278cba3c6640ccbeaacc41de59d3a93df0dd5e494285eea2b355",
    ),
    _dinov2("giant", 1536, 83.5, 86.5),
    # MoCo's READMEs publish no checksum; these MD5s are those a third-party loader asserts after downloading the
    # same URLs (the only published digests found). MoCo v3's ResNet-50 has none.
    ModelEntry(
        name="mocov2-resnet50",
        method="mocov2",
        arch="resnet50",
        source=f"{_DL}/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar",
        dim=2048,
        key_mapping=_MOCOV2_MAP,
        md5="a04e12f8b0e44fdcac1fb4e06f33727b",
        licence="mit",
        paper=_MOCOV2_PAPER,
        published={"imagenet_linear": 71.1},
        published_source="https://github.com/facebookresearch/moco#models",
        embedding=_GAP,
        linear_recipe="mocov2",
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
        md5="f32f0062e8884e64bcd2044c67bd3e43",
        licence="cc-by-nc-4.0",
        paper=_MOCOV3_PAPER,
        published={"imagenet_linear": 73.2},
        published_source="https://github.com/facebookresearch/moco-v3/blob/main/CONFIG.md",
        embedding=_CLS,
        linear_recipe="mocov3-vit",
    ),
    ModelEntry(
        name="mocov3-vitb16",
        method="mocov3",
        arch="vit_base_patch16_224",
        source=f"{_DL}/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar",
        dim=768,
        key_mapping=_MOCOV3_VIT_MAP,
        md5="7fe6d104c5ba222fecc6dc838f2dbcf9",
        licence="cc-by-nc-4.0",
        paper=_MOCOV3_PAPER,
        published={"imagenet_linear": 76.7},
        published_source="https://github.com/facebookresearch/moco-v3/blob/main/CONFIG.md",
        embedding=_CLS,
        linear_recipe="mocov3-vit",
    ),
    ModelEntry(
        name="mocov3-resnet50",
        method="mocov3",
        arch="resnet50",
        source=f"{_DL}/moco-v3/r-50-1000ep/r-50-1000ep.pth.tar",
        dim=2048,
        key_mapping=_MOCOV3_R50_MAP,
        unpinned=_NO_PUBLISHED_HASH,
        licence="cc-by-nc-4.0",
        paper=_MOCOV3_PAPER,
        published={"imagenet_linear": 74.6},
        published_source="https://github.com/facebookresearch/moco-v3/blob/main/CONFIG.md",
        embedding=_GAP,
        linear_recipe="mocov3",
    ),
    _swav_family("swav-resnet50", "swav", "swav_800ep_pretrain.pth.tar", 75.3),
    _swav_family("deepclusterv2-resnet50", "deepclusterv2", "deepclusterv2_800ep_pretrain.pth.tar", 75.2),
    _swav_family("selav2-resnet50", "selav2", "selav2_400ep_pretrain.pth.tar", 71.8),
    ModelEntry(
        name="selflabel-resnet50",
        method="selflabel",
        arch="resnet50",
        source="https://www.robots.ox.ac.uk/~vgg/research/self-label/asset/new_models/resnet50-10x3k_pp.pth",
        dim=2048,
        key_mapping=KeyMapping(container=("state_dict",), drop=("fc.",)),
        unpinned=_NO_PUBLISHED_HASH,
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
# Relative ``folder:`` sources (encoders shipped with the repository) start here.
REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DIR = Path(os.environ.get("SSLZOO_MODELS_DIR") or REPO_ROOT / "models")


def shipped_entries(root: str | Path = SHIPPED_DIR) -> list[ModelEntry]:
    """Entries for the encoders shipped under ``root`` (``models/NAME/config.json`` + ``sslzoo.json``), by name.

    The entry is read from the folder itself: architecture, width and model arguments from timm's ``config.json``,
    method, licence and embedding from ``sslzoo.json``; preprocessing is the folder's own (``pretrained_cfg``).
    """
    import json

    entries = []
    for config_path in sorted(Path(root).glob("*/config.json")):
        folder = config_path.parent
        if folder.name.startswith("."):  # a writer's temporary folder (zoo.atomic), not a model
            continue
        try:
            config = json.loads(config_path.read_text())
            meta_path = folder / "sslzoo.json"
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            continue  # a half-copied folder is not an entry; zoo.load(folder) says what is wrong with it
        # Inside the repository the source is relative (``folder:models/NAME``), as a fresh clone resolves it.
        folder = folder.resolve()
        relative = folder.relative_to(REPO_ROOT) if folder.is_relative_to(REPO_ROOT) else folder
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


def entry_folder(entry: ModelEntry) -> Path | None:
    """The local folder of a ``folder:`` entry (relative paths from the repository root), else ``None``."""
    if not entry.source.startswith("folder:"):
        return None
    folder = Path(entry.source[len("folder:") :]).expanduser()
    return folder if folder.is_absolute() else REPO_ROOT / folder


def is_cached(entry: ModelEntry) -> bool:
    """Whether an entry's weights are already on this machine (no network access, no torch)."""
    folder = entry_folder(entry)
    if folder is not None:
        return any((f / "config.json").is_file() for f in (folder, folder / "encoder"))
    if entry.source.startswith(_hub.HUB_PREFIX):
        repo_id, revision = _hub.parse_hub_id(entry.source)
        return _hub.hub_cached_file(repo_id, entry.filename, revision) is not None
    return _hub.url_cached_file(entry.source).is_file()
