"""The input pipeline: any image folder trains every method; views depend only on (seed, epoch, index); bad files
are skipped and counted during training and named in one line before it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _photos import huge_png_header, labelled_folder, truncated_jpeg, unlabelled_folder
from _tiny_runs import final_state

import zoo
from app.cli import main as sslzoo
from trainers import train
from trainers.loader import ViewLoader
from trainers.sources import ArraySource, FileSource, load_source
from trainers.views import CropSpec, EvalSpec, render_crops, render_crops_batch, sample_rng

METHODS = ("simclr", "moco", "byol", "dino", "deepcluster", "deepercluster", "selflabel")
# A few steps at 64 px on a small CNN; clustering methods with fewer clusters than the 16 photos.
FOLDER_RUN = {
    "arch_args": ("widths=(8,16,16,32)",),
    "image_size": 64,
    "batch_size": 8,
    "epochs": 1,
    "progress": False,
    "knn_every": 1,
    "log_every": 1,
    "warmup_epochs": 0.0,
}
SMALL = {
    "simclr": {},
    "moco": {"queue_size": 16},
    "byol": {"proj_hidden_dim": 64, "proj_dim": 16},
    "dino": {"out_dim": 32, "n_local_crops": 2, "local_crop_size": 32, "warmup_teacher_temp_epochs": 0},
    "deepcluster": {"k": 4, "pca_dim": 4},
    "deepercluster": {"super_clusters": 2, "sub_clusters": 2, "pca_dim": 4},
    "selflabel": {"num_clusters": 4},
}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return labelled_folder(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    return unlabelled_folder(tmp_path_factory.mktemp("collection"))


def _crops(loader: ViewLoader, order: torch.Tensor, batch: int, **kw) -> list[torch.Tensor]:
    views = list(loader.epoch(3, order, batch, **kw))
    return [torch.cat([v.crops[i] for v in views]) for i in range(len(views[0].crops))]


def test_a_folder_of_mixed_photos_is_one_labelled_source(photos):
    source = load_source(f"folder:{photos}", "train")
    assert isinstance(source, FileSource) and source.channels == 3 and source.labelled
    crops = render_crops(source.open(0), [CropSpec(64), CropSpec(32, (0.05, 0.4))], sample_rng(0, 0, 0), 3)
    assert [c.shape for c in crops] == [(3, 64, 64), (3, 32, 32)] and all(c.dtype == np.uint8 for c in crops)


def test_views_depend_only_on_seed_epoch_and_index_not_on_workers_or_ranks(photos):
    source = load_source(f"folder:{photos}", "train")
    specs = [CropSpec(48), CropSpec(24, (0.05, 0.4))]
    order = torch.randperm(len(source), generator=torch.Generator().manual_seed(1))[:8]
    by_workers = [_crops(ViewLoader(source, specs, seed=5, workers=w), order, 4) for w in (0, 1, 3)]
    for other in by_workers[1:]:
        assert all(torch.equal(a, b) for a, b in zip(by_workers[0], other))
    # Two ranks each take a contiguous half of every global batch: together, the one-process views.
    halves = [_crops(ViewLoader(source, specs, seed=5), order, 4, rank=r, world_size=2) for r in (0, 1)]
    interleaved = [
        torch.cat([h[i].view(2, 2, *h[i].shape[1:]) for h in halves], 1).flatten(0, 1) for i in (0, 1)
    ]
    assert all(torch.equal(a, b) for a, b in zip(by_workers[0], interleaved))
    # Another epoch or seed gives other crops.
    again = _crops(ViewLoader(source, specs, seed=6), order, 4)
    assert not torch.equal(again[0], by_workers[0][0])


def test_in_memory_arrays_take_the_batched_path_with_the_same_boxes():
    source = load_source("digits", "train")
    assert isinstance(source, ArraySource)
    images = np.asarray(source.images[:16])
    specs = [CropSpec(16, (0.3, 1.0)), CropSpec(8, (0.05, 0.4))]
    batched = render_crops_batch(images, specs, [sample_rng(0, 2, i) for i in range(16)], 1)
    one_by_one = [render_crops(source.open(i), specs, sample_rng(0, 2, i), 1) for i in range(16)]
    for v in range(2):
        pil = np.stack([crops[v] for crops in one_by_one]).astype(float)
        # Same boxes and flips; roi_align vs PIL's resampling filter differ by a few grey levels at most.
        assert np.abs(batched[v].astype(float) - pil).mean() < 6.0
        assert np.corrcoef(batched[v].ravel(), pil.ravel())[0, 1] > 0.97


def test_jpegs_are_drafted_when_every_crop_can_afford_it(tmp_path):
    import skimage.data
    from PIL import Image

    path = tmp_path / "big.jpg"
    Image.fromarray(skimage.data.hubble_deep_field()).save(path, quality=95)
    spec = EvalSpec(64)
    from trainers.views import render_eval

    drafted = render_eval(Image.open(path), spec, 3)  # 872 px → draft at 1/8 gives 109 px ≥ 64
    full = render_eval(Image.open(path).convert("RGB"), spec, 3)  # decoded already: no draft
    assert np.abs(drafted.astype(float) - full.astype(float)).mean() < 4.0


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_on_mixed_photos_and_on_an_unlabelled_nested_folder(
    method, photos, collection, tmp_path
):
    options = {**FOLDER_RUN, **SMALL[method]}
    run = train(method, dataset=f"folder:{photos}", out=str(tmp_path / "labelled"), **options)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("knn_acc" in r for r in rows)  # labelled: the monitor ran on the carved test split
    encoder = zoo.load(run)
    feats = encoder.embed(_some_photos(photos))
    assert feats.shape[0] == 2 and torch.isfinite(feats).all()

    run = train(method, dataset=f"folder:{collection}", out=str(tmp_path / "unlabelled"), **options)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert not any("knn_acc" in r or "nmi_true" in r for r in rows)  # no labels: nothing to monitor
    assert zoo.load(run).dim == zoo.load(tmp_path / "labelled").dim


def _some_photos(folder):
    from PIL import Image

    return [Image.open(p) for p in sorted(folder.rglob("*.jpg"))[:2]]


def test_a_folder_run_killed_mid_epoch_resumes_to_the_same_weights(photos, tmp_path, monkeypatch):
    from trainers.methods.byol import BYOL

    options = {**FOLDER_RUN, **SMALL["byol"], "epochs": 2, "batch_size": 4, "knn_every": 0, "workers": 2}
    reference = train("byol", dataset=f"folder:{photos}", out=str(tmp_path / "reference"), **options)
    original = BYOL.on_after_step

    def killed_at_step_4(self, step):
        original(self, step)
        if step.global_step == 4:
            raise RuntimeError("killed")

    monkeypatch.setattr(BYOL, "on_after_step", killed_at_step_4)
    with pytest.raises(RuntimeError, match="killed"):
        train("byol", dataset=f"folder:{photos}", out=str(tmp_path / "run"), checkpoint_every=2, **options)
    monkeypatch.setattr(BYOL, "on_after_step", original)
    resumed = train(
        "byol",
        dataset=f"folder:{photos}",
        out=str(tmp_path / "run"),
        checkpoint_every=2,
        resume=True,
        **{**options, "workers": 0},  # another number of workers: the same views
    )
    want, got = final_state(reference), final_state(resumed)
    for key in want:
        assert torch.equal(want[key], got[key]), key


def test_a_file_broken_or_deleted_after_indexing_is_skipped_and_counted_not_a_crash(
    tmp_path, capsys, monkeypatch
):
    import trainers.engine as engine

    folder = unlabelled_folder(tmp_path / "photos", count=8)
    from zoo.folders import index_folder

    paths = index_folder(folder).paths
    # Not neighbours: each one's stand-in (the next index) is readable.
    truncated, deleted = folder / paths[0], folder / paths[4]
    real = engine.unreadable_images

    def index_then_break(cfg):  # the files change after the last look at the index, before any decoding
        found = real(cfg)
        truncated_jpeg(truncated)
        deleted.unlink()
        return found

    monkeypatch.setattr(engine, "unreadable_images", index_then_break)
    run = train(
        "simclr", dataset=f"folder:{folder}", out=str(tmp_path / "run"), **{**FOLDER_RUN, "batch_size": 8}
    )
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 1  # the batch still formed
    assert max(r.get("skipped_images", 0) for r in rows) == 2
    err = capsys.readouterr().err
    assert paths[0] in err and paths[4] in err


def test_unreadable_files_are_left_out_listed_in_the_run_and_strict_images_refuses_them(tmp_path, capsys):
    from _messy import BAD, messy_folder

    folder = messy_folder(tmp_path / "photos")
    run = tmp_path / "run"
    argv = ["train", "--method", "simclr", "--dataset", f"folder:{folder}"]
    argv += [
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--image-size",
        "32",
        "--arch-args",
        "widths=(8,16,16,32)",
        "--no-progress",
    ]
    assert sslzoo([*argv, "--out", str(run)]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "left out" in line]
    assert len(notes) == 1 and "3 of the 31 image files" in notes[0] and "skipped_files.txt" in notes[0]
    listed = dict(line.split("\t") for line in (run / "skipped_files.txt").read_text().splitlines()[1:])
    assert sorted(listed) == sorted(BAD)
    for path, pattern in BAD.items():
        assert pattern.lower() in listed[path].lower(), listed[path]
    config = json.loads((run / "train_config.json").read_text())["resolved"]
    assert config["unreadable_files"] == {f"folder:{folder.resolve()}": 3}
    assert config["train_images"] == 22  # the 28 readable ones less the 6 (20%) carved out as the test split
    assert zoo.load(run).dim > 0

    strict = tmp_path / "strict"
    assert sslzoo([*argv, "--out", str(strict), "--strict-images"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cats/cut.jpg" in err
    assert "3 of its 31 image files are not readable" in err
    assert not strict.exists()


def test_a_folder_is_indexed_once_and_reindexed_only_where_it_changed(tmp_path):
    from zoo.folders import index_folder

    folder = unlabelled_folder(tmp_path / "photos", count=6)
    first = index_folder(folder)
    assert first.verified_now == 6
    again = index_folder(folder)
    assert again.verified_now == 0 and again.fingerprint == first.fingerprint
    changed = sorted(folder.rglob("*.png"))[0]
    changed.write_bytes(changed.read_bytes() + b"\0")  # same name, other content
    third = index_folder(folder)
    assert third.verified_now == 1 and third.fingerprint != first.fingerprint
    # The dataset built on it follows the content: caches keyed by its fingerprint see the change.
    before = zoo.load_dataset(f"folder:{folder}", split="train")._fingerprint
    (folder / "new.png").write_bytes(changed.read_bytes())
    assert zoo.load_dataset(f"folder:{folder}", split="train")._fingerprint != before


def test_an_imagenet_layout_folder_works_as_is(tmp_path):
    pytest.importorskip("skimage")
    from _photos import fashion_imagenet_layout

    try:
        folder = fashion_imagenet_layout(tmp_path / "imagenet")
    except zoo.SslzooError as exc:  # Fashion-MNIST not installed here
        pytest.skip(str(exc))
    splits = zoo.load_dataset(f"folder:{folder}")
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "test": 20}
    assert splits["train"].features["label"].names == [f"n{c:08d}" for c in range(10)]
    run = train(
        "simclr", dataset=f"folder:{folder}", out=str(tmp_path / "run"), **{**FOLDER_RUN, "image_size": 28}
    )
    assert zoo.load(run).dim > 0


def _bad_folders(tmp_path):
    from PIL import Image

    empty = tmp_path / "empty"
    empty.mkdir()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no images here")
    zero = tmp_path / "zero"
    zero.mkdir()
    Image.new("RGB", (40, 40)).save(zero / "fine.png")
    (zero / "empty.jpg").write_bytes(b"")
    huge = tmp_path / "huge"
    huge.mkdir()
    huge_png_header(huge / "bomb.png")
    from _messy import BAD, write_bad

    for rel in BAD:
        write_bad(tmp_path / "all-bad", rel)
    return [
        (empty, "holds no images"),
        (notes, "holds no images"),
        (zero, "empty.jpg"),  # 1 of 2 unreadable: more than the 10% left out
        (huge, "bomb.png"),
        (tmp_path / "all-bad", "none of its 3 image file(s) is readable"),
    ]


def test_bad_folders_get_one_line_and_exit_2_with_nothing_written(tmp_path, capsys):
    for folder, expected in _bad_folders(tmp_path):
        out = tmp_path / f"run-{folder.name}"
        code = sslzoo(["train", "--method", "simclr", "--dataset", f"folder:{folder}", "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2, (folder, err)
        assert err.count("\n") == 0 and expected in err and "Traceback" not in err, err
        assert not out.exists()


def _local_stream(folder, shards=4):
    """A real ``datasets.IterableDataset`` over local files: what ``hf:ORG/NAME?streaming=1`` yields, without the
    Hub (unreachable here) — sharded, shuffled, split over ranks and workers by ``datasets`` itself."""
    from zoo.datasets import prepare_stream

    ds = zoo.load_dataset(f"folder:{folder}", split="train")
    return prepare_stream(ds.to_iterable_dataset(num_shards=shards), "local"), len(ds)


def test_a_stream_is_sharded_over_ranks_and_reproducible_for_the_same_layout(photos):
    from trainers.sources import StreamSource

    stream, length = _local_stream(photos)
    source = StreamSource(stream, length, "local:train")
    assert source.channels == 3 and len(source) == length
    specs = [CropSpec(32), CropSpec(32)]

    def epoch(rank=0, world=1, workers=0, first=0):
        loader = ViewLoader(source, specs, seed=0, workers=workers)
        return list(loader.epoch(0, torch.arange(0), 2 * world, first=first, rank=rank, world_size=world))

    one = epoch()
    assert len(one) == length // 2 and all(v.crops[0].shape == (2, 3, 32, 32) for v in one)
    again = epoch()
    assert all(torch.equal(a.crops[0], b.crops[0]) for a, b in zip(one, again))
    # Resuming after 3 batches gives the uninterrupted epoch's remaining batches.
    resumed = epoch(first=3)
    assert all(torch.equal(a.crops[1], b.crops[1]) for a, b in zip(one[3:], resumed))
    # Two ranks read disjoint halves of the stream.
    seen = [set(torch.cat([v.labels for v in epoch(rank=r, world=2)]).tolist()) for r in (0, 1)]
    assert sum(len(epoch(rank=r, world=2)) for r in (0, 1)) == 2 * (length // 4)
    assert seen[0] and seen[1]


def test_streamed_training_runs_and_refuses_methods_that_need_random_access(photos, tmp_path, monkeypatch):
    import zoo.datasets

    monkeypatch.setattr(zoo.datasets, "load_stream", lambda name, split: _local_stream(photos))
    name = "hf:someone/photos?streaming=1"
    run = train("simclr", dataset=name, out=str(tmp_path / "run"), **{**FOLDER_RUN, "knn_every": 0})
    assert zoo.load(run).dim > 0
    with pytest.raises(zoo.SslzooError, match="cannot do"):
        train("deepcluster", dataset=name, out=str(tmp_path / "dc"), **{**FOLDER_RUN, **SMALL["deepcluster"]})


def test_a_crop_the_backbone_cannot_take_is_one_line_before_training(tmp_path):
    options = {**FOLDER_RUN, **SMALL["dino"], "arch": "sslzoo_vit_nano_patch4", "image_size": 28}
    options["arch_args"] = ("dynamic_img_size=False",)  # fixed 28-px position embeddings, 16-px local crops
    out = tmp_path / "run"
    with pytest.raises(zoo.SslzooError, match="takes 28-px inputs only, but a view is 32 px"):
        train("dino", dataset="digits", out=str(out), **options)
    assert not out.exists()


def test_what_workers_receive_pickles_for_spawned_workers(photos):
    import pickle

    from trainers.loader import _Collate, _ViewDataset

    source = load_source(f"folder:{photos}", "train")
    dataset = pickle.loads(pickle.dumps(_ViewDataset(source, [CropSpec(32)], seed=0, epoch=1)))
    collate = pickle.loads(pickle.dumps(_Collate(source.labels)))
    views = collate([dataset[0], dataset[1]])
    assert views.crops[0].shape == (2, 3, 32, 32) and views.labels.tolist() == source.labels[:2].tolist()
