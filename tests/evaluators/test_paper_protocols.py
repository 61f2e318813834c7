"""The papers' evaluation protocols: probe features, ImageNet-layout folders, the SGD linear evaluation end to end,
``sslzoo reproduce``, and the ImageNet-scale plumbing (chunked k-NN, memory-mapped, sharded embedding)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _imagenet_folder import build_imagenet_folder, tiny_encoder

from evaluators.knn import knn_classify
from evaluators.knn_chunked import knn_classify_chunked
from evaluators.paper_linear import lr_factor, paper_train_transform, run_paper_linear
from evaluators.sources import FileSplit, imagenet_splits, open_split, split_labels
from zoo.errors import SslzooError
from zoo.registry import LINEAR_RECIPES, MODELS

NANO = "sslzoo_vit_nano_patch4"  # 4 blocks: last4_cls reads every block


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory) -> Path:
    return build_imagenet_folder(tmp_path_factory.mktemp("imagenet"), flat_val="txt")


# ------------------------------------------------------------------------------------------ probe features
def test_vit_feature_kinds_are_the_normed_cls_tokens_of_the_last_blocks_and_the_mean_patch_token():
    enc = tiny_encoder(NANO, 16)
    vit, x = enc.model, torch.randn(3, 3, 16, 16)
    # Reference, as DINO's get_intermediate_layers writes it: run the blocks, norm each of the last n outputs.
    with torch.no_grad():
        tokens = vit.norm_pre(vit._pos_embed(vit.patch_embed(x)))
        normed = []
        for block in vit.blocks:
            tokens = block(tokens)
            normed.append(vit.norm(tokens))
        last4_cls = torch.cat([t[:, 0] for t in normed[-4:]], dim=1)
        cls_avgpool = torch.cat([normed[-1][:, 0], normed[-1][:, 1:].mean(dim=1)], dim=1)
        torch.testing.assert_close(enc.features(x, "last4_cls"), last4_cls)
        torch.testing.assert_close(enc.features(x, "cls_avgpool"), cls_avgpool)
        torch.testing.assert_close(enc.features(x, "cls_avgpool")[:, :96], enc(x))  # [CLS] = the embedding
    assert enc.feature_dim("last4_cls_avgpool") == 5 * 96
    assert enc.embed(x, kind="last4_cls").shape == (3, 4 * 96)


def test_cnn_refuses_vit_feature_kinds_in_one_line():
    with pytest.raises(SslzooError, match="reads a ViT's"):
        tiny_encoder("resnet18", 32).features(torch.zeros(1, 3, 32, 32), "last4_cls")


def test_every_paper_entry_names_a_known_recipe_and_feature_kind():
    from zoo.encoder import FEATURE_KINDS

    for entry in MODELS.values():
        assert entry.linear_features in FEATURE_KINDS
        assert entry.linear_recipe is None or entry.linear_recipe in LINEAR_RECIPES
    assert (
        MODELS["dino-vits16"].linear_features == "last4_cls"
    )  # DINO eval_linear.py: n_last_blocks=4 for ViT-S
    assert MODELS["dino-vitb16"].linear_features == "cls_avgpool"
    assert MODELS["swav-resnet50"].linear_recipe == "swav"


# ------------------------------------------------------------------------------------------ ImageNet folders
def test_flat_val_labels_from_the_csv_or_the_devkit_match_the_class_folders(tmp_path):
    def labels_by_stem(root):
        val = imagenet_splits(root)["test"]
        if isinstance(val, FileSplit):  # flat val/: labelled by the csv or the devkit
            paths = val.paths
        else:  # class folders: zoo.load_dataset's folder door
            paths = [row["path"] for row in val.cast_column("image", datasets.Image(decode=False))["image"]]
        return {Path(p).stem: int(y) for p, y in zip(paths, split_labels(val))}

    folders = labels_by_stem(build_imagenet_folder(tmp_path / "folders", per_class=1))
    assert len(folders) == 12 and len(set(folders.values())) == 4
    assert labels_by_stem(build_imagenet_folder(tmp_path / "csv", per_class=1, flat_val="csv")) == folders
    # The devkit numbers classes by ILSVRC2012_ID (shuffled here): meta.mat must map them back to wnids.
    assert labels_by_stem(build_imagenet_folder(tmp_path / "txt", per_class=1, flat_val="txt")) == folders


def test_flat_val_without_labels_says_what_it_needs(tmp_path):
    root = build_imagenet_folder(tmp_path / "x", per_class=1, flat_val="csv")
    (root / "LOC_val_solution.csv").unlink()
    with pytest.raises(
        SslzooError, match=r"LOC_val_solution\.csv or ILSVRC2012_validation_ground_truth\.txt"
    ):
        open_split(f"folder:{root}", "test")


# ------------------------------------------------------------------------------------------ linear-paper
@pytest.mark.parametrize(
    ("name", "scheduler"),
    [
        ("dino", lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, 100, eta_min=0)),
        ("mocov2", lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, [60, 80], gamma=0.1)),
    ],
)
def test_schedules_equal_the_torch_schedulers_the_official_scripts_step(name, scheduler):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = scheduler(opt)
    for epoch in range(100):
        assert math.isclose(
            opt.param_groups[0]["lr"], lr_factor(LINEAR_RECIPES[name], epoch, 100), abs_tol=1e-9
        )
        opt.step()
        sched.step()


def test_train_augmentation_keeps_the_eval_crop_size_and_normalisation():
    from PIL import Image

    enc = tiny_encoder("resnet18", 32)
    grey = Image.new(
        "RGB", (50, 40), (120, 60, 200)
    )  # a constant image: any crop or flip gives the same pixels
    train = paper_train_transform(enc, "bicubic")
    torch.testing.assert_close(train(grey), enc.transform(grey), atol=2e-2, rtol=0)
    names = [type(t).__name__ for t in train.transforms]
    assert "RandomResizedCrop" in names and "RandomHorizontalFlip" in names and "CenterCrop" not in names


def test_paper_linear_runs_end_to_end_on_a_tiny_imagenet_folder(imagenet):
    splits = imagenet_splits(imagenet)
    recipe = LINEAR_RECIPES["dino"]
    out = run_paper_linear(
        tiny_encoder(NANO, 16),
        splits["train"],
        splits["test"],
        recipe,
        features="last4_cls",
        epochs=2,
        batch_size=8,
        progress=False,
    )
    assert len(out["history"]) == 2 and len(out["history"][0]) == 1  # scored every epoch, one LR
    assert out["top1"] == max(out["history"][0] + out["history"][1])  # DINO reports the best epoch
    assert out["lr"] == pytest.approx(0.001 * 8 / 256)  # linear scaling rule
    assert 0 <= out["top1"] <= out["top5"] <= 100
    assert out["params"]["epochs"] == 2 and out["params"]["features"] == "last4_cls"


def test_paper_linear_sweep_trains_one_head_per_lr_and_reports_the_last_epoch(imagenet):
    splits = imagenet_splits(imagenet)
    out = run_paper_linear(
        tiny_encoder(NANO, 16),
        splits["train"],
        splits["test"],
        "dinov2",
        epochs=2,
        batch_size=8,
        steps_per_epoch=2,
        progress=False,
    )
    lrs = LINEAR_RECIPES["dinov2"].lrs
    assert len(out["history"]) == 1 and len(out["history"][0]) == len(lrs)  # "last": scored once, every head
    assert out["top1"] == max(out["history"][0])
    assert out["lr"] in [lr * 8 / 256 for lr in lrs]


# ------------------------------------------------------------------------------------------ CLI
def _save_tiny(folder: Path) -> Path:
    import timm

    import zoo

    torch.manual_seed(0)
    model = timm.create_model(NANO, img_size=16, in_chans=3, num_classes=0)
    return zoo.save_encoder(
        model,
        folder,
        model_args={"img_size": 16, "in_chans": 3},
        pretrained_cfg={"input_size": (3, 16, 16), "crop_pct": 0.875, "mean": (0.5,) * 3, "std": (0.25,) * 3},
    )


def test_eval_runs_knn_and_linear_paper_on_an_imagenet_folder_with_flat_val(
    imagenet, tmp_path, monkeypatch, capsys
):
    from app.cli import main

    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path / "cache"))
    model = _save_tiny(tmp_path / "tiny")
    argv = [
        "eval",
        str(model),
        f"folder:{imagenet}",
        "--protocols",
        "knn,linear-paper",
        "--k",
        "3",
        "--linear-recipe",
        "swav",
        "--paper-epochs",
        "1",
        "--paper-batch-size",
        "8",
        "--leaderboard",
        str(tmp_path / "lb"),
        "--json",
    ]
    assert main(argv) == 0
    records = {r["protocol"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["knn"]["splits"] == {
        "train": 24,
        "test": 12,
    }  # val/ is the test split, labelled by the devkit
    paper = records["linear-paper"]
    assert paper["params"]["recipe"] == "swav" and paper["details"]["run"]["weight_decay"] == 1e-6
    assert paper["feature_dim"] == 96


def test_linear_paper_on_raw_pixels_is_one_line(imagenet, capsys):
    from app.cli import main

    argv = [
        "eval",
        "raw-pixels",
        f"folder:{imagenet}",
        "--protocols",
        "linear-paper",
        "--linear-recipe",
        "dino",
    ]
    assert main([*argv, "--no-record"]) == 2
    assert "linear-paper trains on a zoo.Encoder's features" in capsys.readouterr().err


def test_reproduce_without_imagenet_says_what_it_needs(tmp_path, capsys):
    from app.cli import main

    assert main(["reproduce", "dino-vits16"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train/<wnid>" in err and "LOC_val_solution.csv" in err
    assert main(["reproduce", "dino-vits16", "--dataset", f"folder:{tmp_path}"]) == 2


def test_reproduce_prints_measured_vs_published_and_records(imagenet, tmp_path, monkeypatch, capsys):
    from app.cli import main
    from zoo.registry import ModelEntry

    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path / "cache"))
    folder = _save_tiny(tmp_path / "tiny")
    entry = ModelEntry(
        name="tiny-dino",
        method="dino",
        arch=NANO,
        source=f"folder:{folder}",
        dim=96,
        preprocessing=None,
        published={"imagenet_knn": 74.5, "imagenet_linear": 77.0},
        linear_features="last4_cls",
        linear_recipe="dino",
    )
    monkeypatch.setitem(MODELS, "tiny-dino", entry)
    argv = [
        "reproduce",
        "tiny-dino",
        "--dataset",
        f"folder:{imagenet}",
        "--paper-epochs",
        "1",
        "--paper-batch-size",
        "8",
        "--leaderboard",
        str(tmp_path / "lb"),
        "--json",
    ]
    assert main(argv) == 0  # not ImageNet-1k, a short run: reported, not judged
    out = json.loads(capsys.readouterr().out)
    rows = {c["metric"]: c for c in out["comparisons"]}
    assert rows["imagenet_knn"]["published"] == 74.5 and rows["imagenet_linear"]["protocol"] == "linear-paper"
    assert not any(c["comparable"] for c in rows.values())
    assert any("not ImageNet-1k" in n for n in out["notes"])
    written = (tmp_path / "lb").glob("*.jsonl")
    assert {json.loads(line)["protocol"] for f in written for line in f.read_text().splitlines()} == {
        "knn",
        "linear-paper",
    }


# ------------------------------------------------------------------------------------------ scale
def test_chunked_knn_equals_knn_classify_on_a_memory_mapped_bank(tmp_path):
    g = torch.Generator().manual_seed(0)
    bank, labels = torch.randn(2000, 24, generator=g), torch.randint(0, 9, (2000,), generator=g)
    queries, query_labels = torch.randn(300, 24, generator=g), torch.randint(0, 9, (300,), generator=g)
    np.save(tmp_path / "bank.npy", bank.numpy())
    mapped = np.load(tmp_path / "bank.npy", mmap_mode="r")
    ks = (1, 7, 20)
    expected = knn_classify(bank, labels, queries, query_labels, k=ks)
    got = knn_classify_chunked(mapped, labels, queries, query_labels, k=ks, bank_rows=123, memory_mb=0.02)
    for k in ks:
        assert got[k]["top1"] == expected[k]["top1"] and got[k]["top5"] == expected[k]["top5"]
        np.testing.assert_array_equal(got[k]["predictions"], expected[k]["predictions"])


def test_large_splits_are_embedded_into_a_memory_mapped_cache_entry(imagenet, tmp_path, monkeypatch):
    import evaluators.features as features

    enc = tiny_encoder(NANO, 16)
    expected = enc.embed(imagenet_splits(imagenet)["train"], kind="last4_cls").numpy()
    monkeypatch.setattr(features, "MMAP_OVER_MB", 0.0)  # every split counts as large
    kwargs = {"progress": False, "cache_dir": tmp_path / "cache", "kind": "last4_cls", "num_workers": 2}
    first = features.extract_features(enc, f"folder:{imagenet}", "train", **kwargs)
    assert isinstance(first.feats, np.memmap) and not first.cached
    np.testing.assert_allclose(first.feats, expected, atol=1e-5)
    again = features.extract_features(enc, f"folder:{imagenet}", "train", **kwargs)
    assert again.cached and isinstance(again.feats, np.memmap)
    np.testing.assert_array_equal(np.asarray(again.feats), np.asarray(first.feats))


def _ddp_embed_worker(rank, world, init_file, root, out_dir):
    import torch.distributed as dist

    import evaluators.features as features

    features.MMAP_OVER_MB = 0.0
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        got = features.extract_features(
            tiny_encoder(NANO, 16),
            f"folder:{root}",
            "train",
            progress=False,
            cache_dir=f"{out_dir}/cache",
            kind="cls_avgpool",
        )
        np.save(f"{out_dir}/rank{rank}.npy", np.asarray(got.feats))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_embedding_with_two_gloo_processes_equals_one_process(imagenet, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_embed_worker, args=(2, tmp_path / "init", imagenet, tmp_path), nprocs=2, join=True)
    expected = tiny_encoder(NANO, 16).embed(imagenet_splits(imagenet)["train"], kind="cls_avgpool").numpy()
    for rank in range(2):
        np.testing.assert_allclose(np.load(tmp_path / f"rank{rank}.npy"), expected, atol=1e-5)


def _constant_split(folder: Path, n: int):
    """Constant-colour images (class = colour): every random crop and flip of one is the same tensor, so a DDP run
    and a one-process run see identical inputs despite their different random streams."""
    from PIL import Image

    folder.mkdir()
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (120, 120, 120)]
    paths, labels = [], []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.new("RGB", (24, 20), colours[i % 4]).save(path)
        paths.append(str(path))
        labels.append(i % 4)
    return FileSplit(paths, np.asarray(labels), ["a", "b", "c", "d"])


def _train_heads(train, test) -> dict[str, torch.Tensor]:
    """MoCo v3's recipe for 2 epochs of batch 8 on the constant images: the trained heads' state dict."""
    out = run_paper_linear(
        tiny_encoder(NANO, 16),
        train,
        test,
        "mocov3",
        features="last4_cls",
        epochs=2,
        batch_size=8,
        progress=False,
    )
    return out["heads"]


def _ddp_linear_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        train, test = (
            _constant_split(Path(out_dir) / f"{s}{rank}", n) for s, n in (("train", 16), ("test", 8))
        )
        torch.save(_train_heads(train, test), f"{out_dir}/heads{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_linear_heads_with_two_gloo_processes_equal_one_process(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_linear_worker, args=(2, tmp_path / "init", tmp_path), nprocs=2, join=True)
    train, test = _constant_split(tmp_path / "train", 16), _constant_split(tmp_path / "test", 8)
    single = _train_heads(train, test)
    for rank in range(2):
        ddp = torch.load(tmp_path / f"heads{rank}.pt")
        assert not torch.equal(ddp["heads.0.weight"], torch.zeros_like(ddp["heads.0.weight"]))
        for key, value in single.items():
            torch.testing.assert_close(ddp[key], value, atol=1e-5, rtol=1e-4)
