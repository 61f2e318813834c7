"""The papers' recipes as data: ``sslzoo train --recipe NAME`` trains with a paper's published settings.

A :class:`Recipe` maps option names — fields of :class:`~trainers.config.TrainConfig` and of the method's
``Config`` — to the values of one paper table or official repository, and names the source of each value next to
it (``sources``). The recipe's values are the *defaults* of a run: any option given explicitly (command line or
``train(...)`` keyword) overrides it, and the run folder's ``train_config.json`` records the recipe's name with
every resolved value.

Learning rates are stated as the papers state them, per reference batch (``lr_batch_ref``): the engine scales the
peak linearly to the actual global batch (:func:`trainers.schedules.scaled_lr`), so ``--batch-size 512`` on one
GPU keeps the paper's per-image learning rate.

Where sslzoo cannot express a setting exactly, ``sources`` says so under the key ``"not reproduced"``.

>>> get_recipe("mocov2-resnet50").options["queue_size"]
65536
>>> method, opts = apply_recipe(None, {"recipe": "mocov2-resnet50", "batch_size": 2})
>>> method, opts["batch_size"], opts["lr"]
('moco', 2, 0.03)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zoo.errors import SslzooError

__all__ = [
    "RECIPES",
    "Recipe",
    "apply_recipe",
    "describe_recipe",
    "get_recipe",
    "list_recipes",
    "recipe_names",
]

NOT_REPRODUCED = "not reproduced"


@dataclass(frozen=True)
class Recipe:
    """One paper's settings for one method and architecture.

    Attributes:
        name: Registry name (``"dino-vits16"``).
        method: The method it trains (``"dino"``).
        summary: One line: what it reproduces and what the paper reports.
        options: Option name → value (TrainConfig fields and the method's Config fields).
        sources: Option name → where the value comes from (paper table or repository file and flag); the key
            ``"not reproduced"`` lists what differs from the reference.
    """

    name: str
    method: str
    summary: str
    options: Mapping[str, Any]
    sources: Mapping[str, str]


def _recipe(name: str, method: str, summary: str, *values: tuple[str, Any, str], differs: str = "") -> Recipe:
    """Build a recipe from ``(option, value, source)`` triples, so each value is written beside its source."""
    options = {key: value for key, value, _ in values}
    sources = {key: source for key, _, source in values}
    if len(options) != len(values):
        raise ValueError(f"recipe {name!r} sets an option twice")
    if differs:
        sources[NOT_REPRODUCED] = differs
    return Recipe(name, method, summary, options, sources)


# Sources are pinned where a repository has moved on: google-research/simclr README at commit 85e8552 (SimCLR v1,
# before the v2 update), facebookresearch/moco at 7397dfe (its last commit with code). Learning rates are per
# 256 images (lr_batch_ref) wherever the source states them that way.
_SIMCLR = "google-research/simclr@85e8552"
_MOCO = "facebookresearch/moco@7397dfe"
_BYOL = "deepmind/deepmind-research byol/"
_DINO = "facebookresearch/dino"
_DC = "facebookresearch/deepcluster"
_DRC = "facebookresearch/DeeperCluster"
_SELA = "yukimasano/self-label"

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        _recipe(
            "simclr-resnet50",
            "simclr",
            "SimCLR v1 ResNet-50, the paper's default setting (§2.3): LARS, batch 4096, 100 epochs (69.3% linear "
            "after 1000)",
            ("arch", "resnet50", "Chen et al. 2020 §2.3: ResNet-50 encoder"),
            ("image_size", 224, f"{_SIMCLR} README ImageNet command: --image_size=224"),
            ("optimizer", "lars", f"§2.3 'LARS optimizer'; {_SIMCLR} run.py --optimizer default lars"),
            (
                "lr",
                0.3,
                f"§2.3: 4.8 = 0.3 × BatchSize/256 (linear scaling); {_SIMCLR} README --learning_rate=0.3. "
                "App. B.1 also gives 0.075·√BatchSize (sqrt scaling), better for small batches: at 4096 both are "
                "4.8; sslzoo scales linearly",
            ),
            ("lr_batch_ref", 256, f"{_SIMCLR} run.py --learning_rate 'per batch size of 256'"),
            ("batch_size", 4096, f"§2.3 'batch size 4096'; {_SIMCLR} README --train_batch_size=4096"),
            ("epochs", 100, "§2.3 '100 epochs' (Table 6's 69.3% used 1000); README --train_epochs=100"),
            (
                "warmup_epochs",
                10.0,
                "§2.3 'linear warmup for the first 10 epochs'; run.py --warmup_epochs 10",
            ),
            ("min_lr", 0.0, "§2.3: cosine decay schedule without restarts (to 0)"),
            ("weight_decay", 1e-6, "§2.3 'weight decay of 10^-6'; README --weight_decay=1e-6"),
            ("sgd_momentum", 0.9, f"{_SIMCLR} run.py --momentum 0.9"),
            ("sync_bn", True, "§2.3 'Global BN' (statistics over all devices)"),
            ("temperature", 0.1, f"{_SIMCLR} README --temperature=0.1 (Table 5: best τ at batch 4096)"),
            (
                "proj_hidden_dim",
                2048,
                f"{_SIMCLR} model_util.py projection_head: hidden width = ResNet-50's 2048",
            ),
            ("proj_dim", 128, f"§2.3 / {_SIMCLR} run.py --head_proj_dim 128"),
            (
                "crop_min_scale",
                0.08,
                f"{_SIMCLR} data_util.py random_crop_with_resize area_range=(0.08, 1.0)",
            ),
            (
                "jitter",
                1.0,
                f"App. A colour distortion strength 1.0; {_SIMCLR} run.py --color_jitter_strength 1.0",
            ),
            differs="the projection head's hidden layer has no BN (the reference's has)",
        ),
        _recipe(
            "mocov2-resnet50",
            "moco",
            "MoCo v2 ResNet-50: SGD 0.03, batch 256, K 65536, m 0.999, τ 0.2, cosine, 200 epochs (67.5% linear)",
            ("arch", "resnet50", f"{_MOCO} README: ResNet-50 (main_moco.py -a resnet50)"),
            ("image_size", 224, f"{_MOCO} main_moco.py aug-plus RandomResizedCrop(224)"),
            ("optimizer", "sgd", f"{_MOCO} main_moco.py torch.optim.SGD"),
            ("lr", 0.03, f"{_MOCO} README command --lr 0.03; main_moco.py --lr default 0.03"),
            ("lr_batch_ref", 256, f"{_MOCO} README: 'linear lr scaling recipe: --lr 0.015 --batch-size 128'"),
            ("batch_size", 256, f"{_MOCO} README --batch-size 256"),
            ("epochs", 200, f"{_MOCO} main_moco.py --epochs 200; README table: 200 epochs, 67.5±0.1"),
            ("warmup_epochs", 0.0, f"{_MOCO} main_moco.py adjust_learning_rate: no warm-up"),
            ("min_lr", 0.0, f"{_MOCO} main_moco.py --cos: lr × 0.5·(1 + cos(π·epoch/epochs)) (to 0)"),
            ("weight_decay", 1e-4, f"{_MOCO} main_moco.py --wd default 1e-4"),
            ("sgd_momentum", 0.9, f"{_MOCO} main_moco.py --momentum 0.9"),
            ("queue_size", 65536, f"{_MOCO} main_moco.py --moco-k 65536"),
            ("momentum", 0.999, f"{_MOCO} main_moco.py --moco-m 0.999"),
            ("temperature", 0.2, f"{_MOCO} README: MoCo v2 is --mlp --moco-t 0.2 --aug-plus --cos"),
            (
                "proj_hidden_dim",
                2048,
                f"{_MOCO} moco/builder.py --mlp: Linear(dim_mlp, dim_mlp), 2048 for ResNet-50",
            ),
            ("proj_dim", 128, f"{_MOCO} main_moco.py --moco-dim 128"),
            ("crop_min_scale", 0.2, f"{_MOCO} main_moco.py aug-plus RandomResizedCrop(224, scale=(0.2, 1.))"),
            ("jitter", 0.5, f"{_MOCO} main_moco.py ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8 = strength 0.5"),
            differs="weight decay skips biases and BN parameters (the reference decays all); the cosine is per "
            "step (the reference's per epoch); Gaussian blur p is sslzoo's default",
        ),
        _recipe(
            "byol-resnet50",
            "byol",
            "BYOL ResNet-50, the 1000-epoch preset: LARS, batch 4096, lr 0.2·B/256, τ_base 0.996 (74.3% linear)",
            ("arch", "resnet50", f"{_BYOL}configs/byol.py encoder_class 'ResNet50'"),
            ("image_size", 224, f"{_BYOL}utils/dataset.py: 224 px training crops"),
            (
                "optimizer",
                "lars",
                f"{_BYOL}byol_experiment.py: LARS, biases and norms excluded from adaptation",
            ),
            ("lr", 0.2, f"{_BYOL}configs/byol.py _LR_PRESETS[1000] = 0.2"),
            (
                "lr_batch_ref",
                256,
                f"{_BYOL}utils/schedules.py: scaled_lr = base_learning_rate × batch_size / 256",
            ),
            ("batch_size", 4096, f"{_BYOL}main_loop.py --batch_size 4096"),
            ("epochs", 1000, f"{_BYOL}main_loop.py --pretrain_epochs 1000"),
            ("warmup_epochs", 10.0, f"{_BYOL}configs/byol.py warmup_steps = 10 epochs"),
            ("min_lr", 0.0, f"{_BYOL}utils/schedules.py: cosine decay to 0"),
            ("weight_decay", 1.5e-6, f"{_BYOL}configs/byol.py _WD_PRESETS[1000] = 1.5e-6"),
            ("sgd_momentum", 0.9, f"{_BYOL}configs/byol.py optimizer_config momentum .9"),
            ("sync_bn", True, f"{_BYOL}configs/byol.py bn_config cross_replica_axis (BN over all devices)"),
            ("momentum", 0.996, f"{_BYOL}configs/byol.py _EMA_PRESETS[1000] = 0.996 (τ_base)"),
            ("momentum_end", 1.0, "Grill et al. 2020 §3.2: τ increases to 1 (cosine)"),
            (
                "proj_hidden_dim",
                4096,
                f"{_BYOL}configs/byol.py projector_hidden_size / predictor_hidden_size 4096",
            ),
            ("proj_dim", 256, f"{_BYOL}configs/byol.py projector_output_size 256"),
            (
                "crop_min_scale",
                0.08,
                f"{_BYOL}utils/dataset.py _decode_and_random_crop area uniform(0.08, 1)",
            ),
            ("jitter", 0.5, f"{_BYOL}utils/augmentations.py brightness 0.4, contrast 0.4, hue 0.1"),
            differs="colour jitter saturation is 0.4 (the reference's 0.2): sslzoo has one jitter strength",
        ),
        _recipe(
            "dino-vits16",
            "dino",
            "DINO ViT-S/16, the repository's 300-epoch run (README 'Boosting DINO performance', 73.3% k-NN, "
            "76.0% linear), 2×224 + 10×96 crops",
            (
                "arch",
                "sslzoo_vit_small_patch16_dino",
                f"{_DINO} README --arch vit_small --patch_size 16: its vision_transformer.py, position "
                "embeddings interpolated at every forward (zoo/dino_vit.py; the zoo's dino-vits16 entry)",
            ),
            (
                "arch_args",
                ("drop_path_rate=0.1",),
                f"{_DINO} main_dino.py --drop_path_rate 0.1 (student only)",
            ),
            (
                "image_size",
                224,
                f"{_DINO} main_dino.py DataAugmentationDINO global crops RandomResizedCrop(224)",
            ),
            ("optimizer", "adamw", f"{_DINO} main_dino.py --optimizer adamw"),
            ("lr", 5e-4, f"{_DINO} main_dino.py --lr 0.0005"),
            ("lr_batch_ref", 256, f"{_DINO} main_dino.py: lr × batch_size_per_gpu × world_size / 256"),
            (
                "batch_size",
                1024,
                f"{_DINO} run_with_submitit.py --nodes 2 --ngpus 8 × main_dino.py --batch_size_per_gpu 64",
            ),
            ("epochs", 300, f"{_DINO} README boosted command --epochs 300"),
            ("warmup_epochs", 10.0, f"{_DINO} main_dino.py --warmup_epochs 10"),
            ("min_lr", 1e-6, f"{_DINO} main_dino.py --min_lr 1e-6 (cosine end)"),
            ("weight_decay", 0.04, f"{_DINO} main_dino.py --weight_decay 0.04"),
            ("weight_decay_end", 0.4, f"{_DINO} main_dino.py --weight_decay_end 0.4 (cosine)"),
            (
                "param_grad_clip",
                3.0,
                f"{_DINO} main_dino.py --clip_grad 3.0 (each parameter's norm, utils.clip_gradients)",
            ),
            (
                "amp",
                "auto",
                f"{_DINO} main_dino.py --use_fp16 True; auto = bf16 where CUDA has it, fp16 else",
            ),
            ("out_dim", 65536, f"{_DINO} main_dino.py --out_dim 65536"),
            ("hidden_dim", 2048, f"{_DINO} vision_transformer.py DINOHead hidden_dim=2048"),
            ("bottleneck_dim", 256, f"{_DINO} vision_transformer.py DINOHead bottleneck_dim=256"),
            (
                "n_local_crops",
                10,
                "issue 13 / the paper's best models (2×224² + 10×96²); main_dino.py --local_crops_number "
                "defaults to 8 and the README command keeps it",
            ),
            ("local_crop_size", 96, f"{_DINO} main_dino.py DataAugmentationDINO local RandomResizedCrop(96)"),
            ("global_crop_min_scale", 0.4, f"{_DINO} main_dino.py --global_crops_scale (0.4, 1.)"),
            ("local_crop_max_scale", 0.4, f"{_DINO} main_dino.py --local_crops_scale (0.05, 0.4)"),
            ("student_temp", 0.1, f"{_DINO} main_dino.py DINOLoss student_temp=0.1"),
            ("warmup_teacher_temp", 0.04, f"{_DINO} main_dino.py --warmup_teacher_temp 0.04"),
            ("teacher_temp", 0.07, f"{_DINO} README boosted command --teacher_temp 0.07"),
            (
                "warmup_teacher_temp_epochs",
                30.0,
                f"{_DINO} README boosted command --warmup_teacher_temp_epochs 30",
            ),
            ("center_momentum", 0.9, f"{_DINO} main_dino.py DINOLoss center_momentum=0.9"),
            ("momentum", 0.996, f"{_DINO} main_dino.py --momentum_teacher 0.996 (cosine to 1)"),
            ("momentum_end", 1.0, f"{_DINO} main_dino.py momentum_schedule cosine_scheduler(..., 1, ...)"),
            ("freeze_last_layer_epochs", 1.0, f"{_DINO} main_dino.py --freeze_last_layer 1"),
            (
                "norm_last_layer",
                False,
                f"{_DINO} README boosted command --norm_last_layer false (ViT-S only)",
            ),
            (
                "jitter",
                0.5,
                f"{_DINO} main_dino.py ColorJitter(0.4, 0.4, 0.2, 0.1) p=0.8 (saturation: 0.4 here)",
            ),
        ),
        _recipe(
            "deepcluster-vgg16",
            "deepcluster",
            "DeepCluster VGG-16 (BN) on Sobel input: k 10000, PCA 256, SGD 0.05, re-cluster every epoch",
            (
                "arch",
                "vgg16_bn",
                f"{_DC} models/vgg16.py vgg16(sobel, bn=True) (ARCH=vgg16 in main.sh; AlexNet, the "
                "paper's main network, is not in timm)",
            ),
            ("image_size", 224, f"{_DC} main.py RandomResizedCrop(224)"),
            ("sobel", True, f"{_DC} main.sh --sobel; Caron et al. 2018 §4 'Sobel filtering'"),
            ("k", 10000, f"{_DC} main.py --nmb_cluster/--k 10000; paper §4 'k = 10,000' on ImageNet"),
            ("pca_dim", 256, f"{_DC} clustering.py preprocess_features(pca=256)"),
            ("kmeans_iters", 20, f"{_DC} clustering.py run_kmeans clus.niter = 20"),
            ("cluster_every", 1, f"{_DC} main.py --reassign 1 (re-cluster every epoch)"),
            ("crop_min_scale", 0.08, f"{_DC} main.py RandomResizedCrop(224) default scale (0.08, 1)"),
            ("optimizer", "sgd", f"{_DC} main.py torch.optim.SGD"),
            ("lr", 0.05, f"{_DC} main.py --lr 0.05"),
            ("min_lr", 0.05, f"{_DC} main.py: constant learning rate (min_lr = lr: no decay)"),
            ("warmup_epochs", 0.0, f"{_DC} main.py: no warm-up"),
            ("weight_decay", 1e-5, f"{_DC} main.py --wd -5 (10^-5)"),
            ("sgd_momentum", 0.9, f"{_DC} main.py --momentum 0.9"),
            ("batch_size", 256, f"{_DC} main.py --batch 256"),
            ("epochs", 200, f"{_DC} main.py --epochs 200"),
            differs="uniform sampling draws N samples per epoch (--reassign 1); weight decay skips biases and BN "
            "parameters; the top layer is re-initialised and trained by the one optimiser",
        ),
        _recipe(
            "deepercluster-vgg16",
            "deepercluster",
            "DeeperCluster VGG-16 (BN) on Sobel input, main.py's defaults (DeepCluster + RotNet: k 10000, 4 "
            "rotation super-classes)",
            ("arch", "vgg16_bn", f"{_DRC} src/model/vgg16.py (README: 'a standard VGG-16 with batch-norm')"),
            ("image_size", 224, f"{_DRC} src/data/loader.py RandomResizedCrop(224)"),
            ("sobel", True, f"{_DRC} main.sh --sobel true (README: Sobel filters inside the models)"),
            (
                "super_clusters",
                1,
                f"{_DRC} main.py --super_classes 4 with --rotnet true: 4 // 4 = 1 super-cluster (src/utils.py); "
                "main.sh's YFCC100M run uses 16 (m = 4)",
            ),
            (
                "sub_clusters",
                10000,
                f"{_DRC} main.py --k 10000 total: k // nmb_super_clusters = 10000 sub-classes (main.py)",
            ),
            ("pca_dim", 4096, f"{_DRC} main.py --dim_pca 4096"),
            ("kmeans_iters", 10, f"{_DRC} main.py --niter 10"),
            ("cluster_every", 3, f"{_DRC} main.py --reassignment 3"),
            ("crop_min_scale", 0.08, f"{_DRC} src/data/loader.py RandomResizedCrop(224) default scale"),
            ("optimizer", "sgd", f"{_DRC} src/model/model_factory.py sgd_optimizer (momentum 0.9)"),
            ("lr", 0.1, f"{_DRC} main.py --lr 0.1"),
            ("min_lr", 0.1, f"{_DRC} main.py: constant learning rate (min_lr = lr)"),
            ("warmup_epochs", 0.0, f"{_DRC} main.py: no warm-up"),
            ("weight_decay", 1e-5, f"{_DRC} main.py --wd 1e-5"),
            ("sgd_momentum", 0.9, f"{_DRC} src/model/model_factory.py momentum=0.9"),
            ("batch_size", 48, f"{_DRC} main.py --batch_size 48 per process, --world-size 1"),
            ("epochs", 100, f"{_DRC} main.py --nepochs 100"),
            differs="the reference splits the network across super-class groups of GPUs; sslzoo trains one "
            "network on the whole batch",
        ),
        _recipe(
            "selflabel-resnet50",
            "selflabel",
            "Self-Label (SeLa) ResNet-50: 10 heads × K 3000, λ 25, 100 label updates, SGD, batch 256, 400 epochs",
            ("arch", "resnet50", f"{_SELA} scripts/resnet.sh (README: standard torchvision ResNet-50)"),
            ("image_size", 224, f"{_SELA} data.py RandomResizedCrop(224)"),
            ("num_clusters", 3000, f"{_SELA} scripts/resnet.sh ncl=3000"),
            ("num_heads", 10, f"{_SELA} scripts/resnet.sh hc=10"),
            ("lam", 25.0, f"{_SELA} main.py --lamb 25"),
            ("label_updates", 100, f"{_SELA} scripts/resnet.sh nopts=100 (square-law spaced, main.py)"),
            ("crop_min_scale", 0.08, f"{_SELA} data.py augs=3 RandomResizedCrop default scale (0.08, 1)"),
            ("jitter", 0.5, f"{_SELA} data.py augs=3 ColorJitter(0.4, 0.4, 0.4, 0.4), RandomGrayscale(0.2)"),
            ("optimizer", "sgd", f"{_SELA} main.py torch.optim.SGD"),
            (
                "lr",
                0.08,
                f"{_SELA} main.py --lr default 0.08, which scripts/resnet.sh uses (its help text and the paper "
                "say 0.05)",
            ),
            ("min_lr", 8e-5, f"{_SELA} main.py lr_schedule: ×0.1 every 150 epochs, ×10^-3 after 350"),
            ("warmup_epochs", 0.0, f"{_SELA} main.py: no warm-up"),
            ("weight_decay", 1e-5, f"{_SELA} main.py --wd -5 (10^-5)"),
            ("sgd_momentum", 0.9, f"{_SELA} main.py Optimizer.momentum 0.9"),
            ("batch_size", 256, f"{_SELA} scripts/resnet.sh bs=256"),
            ("epochs", 400, f"{_SELA} scripts/resnet.sh nepochs=400"),
            differs="cosine decay from 0.08 to 8e-5 instead of the reference's steps; colour jitter hue 0.1 with "
            "p 0.8 (reference: hue 0.4, always); label updates at epoch starts (reference: at iterations)",
        ),
    )
}


def recipe_names() -> list[str]:
    return list(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name is one line naming the closest ones."""
    if name in RECIPES:
        return RECIPES[name]
    close = difflib.get_close_matches(name, RECIPES, n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else f"choose one of {', '.join(RECIPES)}."
    raise SslzooError(f"unknown recipe {name!r}; {hint} (sslzoo recipes lists them)")


def apply_recipe(method: str | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Resolve ``options["recipe"]``: the recipe's values under the explicitly given options.

    Args:
        method: The method asked for, or ``None`` (the recipe's, else ``simclr``).
        options: Options given explicitly; ``recipe`` among them selects the recipe.

    Returns:
        ``(method, options)`` with the recipe's values filled in where ``options`` has none.
    """
    name = options.get("recipe")
    if name is None:
        return method or "simclr", dict(options)
    recipe = get_recipe(name)
    if method is not None and method != recipe.method:
        raise SslzooError(
            f"recipe {name!r} trains {recipe.method}, not {method}; drop --method or choose a {method} recipe."
        )
    merged = {**recipe.options, **options}
    if isinstance(merged.get("arch_args"), list):
        merged["arch_args"] = tuple(merged["arch_args"])
    return recipe.method, merged


def _batch_epochs(recipe: Recipe) -> tuple[Any, Any]:
    return recipe.options.get("batch_size", "-"), recipe.options.get("epochs", "-")


def list_recipes() -> str:
    """A table: name, method, architecture, batch, epochs, one-line summary."""
    rows = [("recipe", "method", "arch", "batch", "epochs", "summary")]
    for r in RECIPES.values():
        batch, epochs = _batch_epochs(r)
        rows.append((r.name, r.method, str(r.options.get("arch", "-")), str(batch), str(epochs), r.summary))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths)) + "  " + row[5] for row in rows
    )


def describe_recipe(name: str) -> str:
    """Every value of one recipe with its source, then what it does not reproduce."""
    recipe = get_recipe(name)
    lines = [f"{recipe.name}  (--method {recipe.method})", recipe.summary, ""]
    width = max(len(k) for k in recipe.options) + 2
    for key, value in recipe.options.items():
        flag = f"--{key.replace('_', '-')}"
        shown = " ".join(value) if isinstance(value, tuple) else str(value)
        lines.append(f"{flag.ljust(width + 2)} {shown.ljust(22)} {recipe.sources[key]}")
    if NOT_REPRODUCED in recipe.sources:
        lines += ["", f"not reproduced: {recipe.sources[NOT_REPRODUCED]}"]
    lines += [
        "",
        f"any option overrides the recipe: sslzoo train --recipe {recipe.name} --dataset DATA [--option V]",
    ]
    return "\n".join(lines)
