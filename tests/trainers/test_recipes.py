"""Named recipes: every value resolves into valid configs, explicit options win, and every recipe runs one
optimiser step of its full-size networks at full resolution (batch 2) on a folder of real photos."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _photos import unlabelled_folder

import zoo
from app.cli import main
from trainers import train
from trainers.config import TrainConfig
from trainers.engine import build_configs
from trainers.methods import get_method
from trainers.recipes import NOT_REPRODUCED, RECIPES, apply_recipe, get_recipe
from trainers.schedules import scaled_lr
from zoo.errors import SslzooError

# Options that make one optimiser step and nothing else: 3 photos, batch 2 (one step, the last image dropped),
# one epoch, no k-NN monitor (the collection is unlabelled), crops cut in this process (no worker start-up). The
# networks, crops and image side stay the recipe's.
ONE_STEP = {"batch_size": 2, "epochs": 1, "knn_every": 0, "progress": False, "log_every": 1, "amp": "none"}
ONE_STEP["workers"] = 0
# k-means cannot make 10,000 clusters of 3 images (that is one clear error, tested below): the clustering
# recipes' cluster counts and PCA shrink to the folder; their networks do not.
SMALL_DATA = {
    "deepcluster-vgg16": {"k": 2, "pca_dim": 2},
    "deepercluster-vgg16": {"sub_clusters": 2, "pca_dim": 2},
}
# Fast enough for the default suite (seconds each on two cores); the VGG-16 recipes write ~1.6 GB of checkpoint.
DEFAULT_SUITE = {"dino-vits16", "mocov2-resnet50"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> str:
    """An unlabelled ``folder:`` collection of three photos of mixed sizes, modes and formats, nested."""
    return f"folder:{unlabelled_folder(tmp_path_factory.mktemp('photos'), count=3)}"


# ------------------------------------------------------------------------------------------------ the table
@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_resolves_into_valid_configs_with_a_source_per_value(name):
    recipe = get_recipe(name)
    assert set(recipe.sources) - {NOT_REPRODUCED} == set(recipe.options), "every value names its source"
    assert all(recipe.sources[k].strip() for k in recipe.options)
    method, options = apply_recipe(None, {"recipe": name})
    assert method == recipe.method
    cfg, method_cfg = build_configs(method, options)
    values = {**dataclasses.asdict(cfg), **dataclasses.asdict(method_cfg)}
    for key, value in recipe.options.items():
        assert values[key] == value, key  # no option is dropped or renamed on the way
    assert cfg.recipe == name


def test_every_option_name_is_a_config_field():
    for recipe in RECIPES.values():
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        fields |= {f.name for f in dataclasses.fields(get_method(recipe.method).Config)}
        assert set(recipe.options) <= fields, recipe.name


def test_a_recipe_named_like_a_zoo_entry_trains_that_entrys_architecture():
    entries = {e.name: e for e in zoo.list_models()}
    shared = [r for r in RECIPES.values() if r.name in entries]
    assert {r.name for r in shared} >= {"dino-vits16", "mocov2-resnet50", "selflabel-resnet50"}
    for recipe in shared:  # so the trained encoder compares with the official checkpoint of that name
        assert recipe.options["arch"] == entries[recipe.name].arch, recipe.name


def test_papers_key_values():
    assert get_recipe("dino-vits16").options["out_dim"] == 65536
    assert get_recipe("dino-vits16").options["n_local_crops"] == 10
    assert get_recipe("mocov2-resnet50").options["queue_size"] == 65536
    assert get_recipe("byol-resnet50").options["momentum"] == 0.996
    assert get_recipe("deepcluster-vgg16").options["k"] == 10000
    assert get_recipe("deepcluster-vgg16").options["sobel"] is True
    sela = get_recipe("selflabel-resnet50").options
    assert (sela["num_clusters"], sela["num_heads"]) == (3000, 10)


def test_explicit_options_override_the_recipe():
    method, options = apply_recipe(None, {"recipe": "simclr-resnet50", "batch_size": 2, "temperature": 0.5})
    cfg, method_cfg = build_configs(method, options)
    assert (cfg.batch_size, method_cfg.temperature) == (2, 0.5)
    assert cfg.lr == 0.3 and cfg.optimizer == "lars"  # the rest stays the recipe's
    # A recipe's values beat the method's own defaults (MoCo's default lr is 0.06).
    assert build_configs(*apply_recipe(None, {"recipe": "mocov2-resnet50"}))[0].lr == 0.03


def test_cli_options_override_the_recipe_and_absent_ones_do_not(monkeypatch, tmp_path):
    import trainers.engine

    seen = {}
    monkeypatch.setattr(
        trainers.engine, "train", lambda method, **o: seen.update(o, method=method) or tmp_path
    )
    assert main(["train", "--recipe", "mocov2-resnet50", "--lr", "0.1", "--temperature", "0.5"]) == 0
    assert seen["method"] == "moco" and seen["recipe"] == "mocov2-resnet50"
    assert (seen["lr"], seen["temperature"]) == (0.1, 0.5)  # given: they win
    assert (seen["queue_size"], seen["epochs"], seen["batch_size"]) == (
        65536,
        200,
        256,
    )  # not given: the recipe's


def test_recipe_and_another_method_is_an_error():
    with pytest.raises(SslzooError, match="trains dino, not moco"):
        apply_recipe("moco", {"recipe": "dino-vits16"})


def test_unknown_recipe_suggests_close_names(capsys):
    with pytest.raises(SslzooError, match="did you mean dino-vits16"):
        get_recipe("dino-vit16")
    assert main(["train", "--recipe", "mocov2-resnet5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mocov2-resnet50" in err[0]


def test_train_needs_a_method_or_a_recipe(capsys):
    assert main(["train", "--dataset", "digits"]) == 2
    assert "--method METHOD or --recipe NAME" in capsys.readouterr().err


def test_sslzoo_recipes_lists_and_shows(capsys):
    assert main(["recipes"]) == 0
    listing = capsys.readouterr().out
    for recipe in RECIPES.values():
        assert recipe.name in listing
    assert "sslzoo_vit_small_patch16_dino" in listing and "4096" in listing
    assert main(["recipes", "byol-resnet50"]) == 0
    shown = capsys.readouterr().out
    assert "--momentum" in shown and "_EMA_PRESETS[1000]" in shown
    assert shown.count("\n--") == len(get_recipe("byol-resnet50").options)


def test_scaled_lr_is_the_linear_rule():
    assert scaled_lr(5e-4, 256, 1024) == pytest.approx(2e-3)  # DINO: 0.0005 × 1024/256
    assert scaled_lr(0.3, 256, 4096) == pytest.approx(4.8)  # SimCLR §2.3
    assert scaled_lr(0.1, None, 4096) == 0.1
    with pytest.raises(ValueError):
        scaled_lr(0.1, 0, 256)


def test_engine_scales_the_peak_lr_to_the_global_batch(tmp_path):
    opts = {"dataset": "digits", "image_size": 16, "arch_args": ("widths=(8,8,8,8)",), "epochs": 2}
    opts.update(progress=False, knn_every=0, log_every=1, warmup_epochs=1.0, lr=0.01, batch_size=1024)
    plain = train("simclr", out=str(tmp_path / "plain"), **opts)
    scaled = train("simclr", out=str(tmp_path / "scaled"), lr_batch_ref=64, **opts)
    peak = [
        max(json.loads(r)["lr"] for r in (run / "metrics.jsonl").read_text().splitlines())
        for run in (plain, scaled)
    ]
    assert peak[1] == pytest.approx(16 * peak[0])  # 1024 / 64


# ------------------------------------------------------------------------------------------------ bad input
def test_views_the_backbone_cannot_take_are_one_line_before_training(photos, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--recipe", "dino-vits16", "--dataset", photos, "--out", str(out), "--batch-size", "2"]
    args += ["--arch", "vit_small_patch16_224", "--arch-args", "dynamic_img_size=False"]  # timm's, fixed size
    args += ["--epochs", "1", "--no-progress", "--knn-every", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "96 px" in err[0] and "vit_small_patch16_224" in err[0]
    assert not (out / "checkpoints").exists()


def test_more_clusters_than_images_is_one_line(photos, tmp_path):
    with pytest.raises(SslzooError, match="--k 10000 clusters is more than the 3 training images"):
        train(recipe="deepcluster-vgg16", dataset=photos, out=str(tmp_path / "r"), **ONE_STEP)


# ------------------------------------------------------------------------------------------------ full size
def _one_step(name: str, photos: str, tmp_path: Path) -> Path:
    run = train(recipe=name, dataset=photos, out=str(tmp_path / name), **ONE_STEP, **SMALL_DATA.get(name, {}))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1] and np.isfinite(rows[0]["loss"])
    saved = json.loads((run / "train_config.json").read_text())
    assert saved["train"]["recipe"] == name
    for key, value in get_recipe(name).options.items():
        if key not in ONE_STEP and key not in SMALL_DATA.get(name, {}):
            got = {**saved["train"], **saved["method"]}[key]
            assert got == (list(value) if isinstance(value, tuple) else value), key
    return run


def _n_params(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@pytest.mark.parametrize(
    "name",
    [n if n in DEFAULT_SUITE else pytest.param(n, marks=pytest.mark.slow) for n in RECIPES],
)
def test_recipe_runs_one_full_size_step(name, photos, tmp_path, monkeypatch):
    recipe = get_recipe(name)
    cls = get_method(recipe.method)
    views = []
    make_views = cls.make_views
    monkeypatch.setattr(cls, "make_views", lambda self, *a: views.append(v := make_views(self, *a)) or v)
    run = _one_step(name, photos, tmp_path)

    side = recipe.options["image_size"]
    crops = [(2, 3, side, side)] * (2 if recipe.method in ("simclr", "moco", "byol", "dino") else 1)
    if recipe.method == "dino":  # DINO: 2 global crops at 224 and 10 local crops at 96
        crops += [(2, 3, 96, 96)] * 10
    assert [tuple(v.shape) for v in views[0]] == crops
    encoder = zoo.load(str(run))
    assert encoder.model.pretrained_cfg["input_size"][-1] == side
    # The full-size backbone (head removed): timm's ResNet-50, ViT-S/16, VGG-16-BN parameter counts.
    expected = {"resnet50": 23.5, "sslzoo_vit_small_patch16_dino": 21.7, "vgg16_bn": 134.3}[
        recipe.options["arch"]
    ]
    assert _n_params(encoder.model) == pytest.approx(expected, abs=0.3)
    if recipe.method == "dino":
        state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["method"]
        assert state["head.last_layer.weight"].shape == (65536, 256)
        assert state["head.last_layer_g"].shape == (65536, 1)  # --norm-last-layer false: g is trained


def test_dino_teacher_has_no_stochastic_depth():
    """main_dino.py gives drop_path_rate to the student only: the teacher, in train mode, is deterministic."""
    from types import SimpleNamespace

    import timm

    from trainers.methods.dino import DINO, DINOConfig

    def vit():
        return timm.create_model("sslzoo_vit_nano_patch4", in_chans=1, num_classes=0, drop_path_rate=0.5)

    ctx = SimpleNamespace(create_backbone=vit, image_size=28, mean=(0.5,), std=(0.5,))
    dino = DINO(DINOConfig(out_dim=8, hidden_dim=8, bottleneck_dim=4), ctx).train()
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(0)
    assert not torch.equal(dino.backbone(x), dino.backbone(x))  # the student drops blocks at random
    assert torch.equal(dino.teacher_backbone(x), dino.teacher_backbone(x))


def test_dino_head_norm_last_layer_false_trains_the_weight_norm_scale():
    from trainers.methods.dino import DINOHead

    torch.manual_seed(0)
    fixed = DINOHead(16, out_dim=8, hidden_dim=16, bottleneck_dim=4)
    free = DINOHead(16, out_dim=8, hidden_dim=16, bottleneck_dim=4, norm_last_layer=False)
    free.load_state_dict({**fixed.state_dict(), "last_layer_g": torch.ones(8, 1)})
    x = torch.randn(5, 16)
    torch.testing.assert_close(free(x), fixed(x))  # g starts at 1: the same function
    with torch.no_grad():
        free.last_layer_g[3] = 2.0
    scale = torch.ones(8)
    scale[3] = 2.0
    torch.testing.assert_close(free(x), fixed(x) * scale)  # logit k is scaled by g_k
    free(x).sum().backward()
    assert free.last_layer_g.grad is not None and "last_layer_g" not in dict(fixed.named_parameters())


@pytest.mark.parametrize("arch", ["vgg16_bn", "resnet50", "vit_small_patch16_224"])
def test_feature_dim_is_the_width_of_the_pooled_output(arch):
    import timm

    from trainers.methods.base import feature_dim

    with torch.device("meta"):  # shapes only: no memory, no compute
        net = timm.create_model(arch, num_classes=0)
        out = net(torch.empty(1, 3, 224, 224))
    assert feature_dim(net) == out.shape[1]  # VGG: 4096, not its num_features 512
