"""Feature extraction and its on-disk cache: a hit does not call the encoder; any key change misses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo
from evaluators import extract_features
from evaluators.baselines import RawPixels, resolve_encoder
from evaluators.features import cache_root
from zoo.errors import SslzooError


class CountingEncoder:
    """A stand-in with zoo.Encoder's attributes: features are the mean and max pixel of each image."""

    def __init__(self, identity="stand-in@sha256:0", transform="ToTensor()"):
        self.identity = identity
        self.transform = transform
        self.calls = 0
        self.images = 0

    def embed(self, images, batch_size=256, progress=False):
        self.calls += 1
        self.images += len(images)
        arrays, _ = zoo.to_arrays(images)
        flat = torch.from_numpy(np.asarray(arrays, dtype=np.float32).reshape(len(arrays), -1))
        return torch.stack([flat.mean(1), flat.amax(1)], dim=1)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path / "sslzoo"))
    return tmp_path / "sslzoo" / "features"


def test_cache_root_follows_sslzoo_cache(cache):
    assert cache_root() == cache


def test_a_cache_hit_does_not_call_the_encoder(cache):
    enc = CountingEncoder()
    first = extract_features(enc, "digits", "test", progress=False)
    assert enc.calls == 1 and not first.cached
    assert first.feats.shape == (360, 2) and first.feats.dtype == np.float32
    labels = np.asarray(zoo.load_dataset("digits", split="test")["label"])
    assert np.array_equal(first.labels, labels)

    second = extract_features(enc, "digits", "test", progress=False)
    assert enc.calls == 1 and second.cached
    assert np.array_equal(first.feats, second.feats) and np.array_equal(first.labels, second.labels)
    assert not list(cache.glob(".*"))  # no temporary folders left behind


@pytest.mark.parametrize(
    "change",
    [
        {"identity": "stand-in@sha256:1"},  # other weights
        {"transform": "Resize(32) ToTensor()"},  # other preprocessing
    ],
)
def test_other_weights_or_preprocessing_miss_the_cache(cache, change):
    extract_features(CountingEncoder(), "digits", "test", progress=False)
    other = CountingEncoder(**change)
    assert not extract_features(other, "digits", "test", progress=False).cached
    assert other.calls == 1


def test_other_split_misses_and_refresh_embeds_again(cache):
    enc = CountingEncoder()
    extract_features(enc, "digits", "test", progress=False)
    extract_features(enc, "digits", "train", progress=False)
    assert enc.calls == 2
    assert not extract_features(enc, "digits", "test", refresh=True, progress=False).cached
    assert enc.calls == 3


def test_a_damaged_entry_is_embedded_again(cache):
    enc = CountingEncoder()
    key = extract_features(enc, "digits", "test", progress=False).key
    (cache / key / "feats.npy").write_bytes(b"not a numpy file")
    again = extract_features(enc, "digits", "test", progress=False)
    assert enc.calls == 2 and again.feats.shape == (360, 2)


def test_raw_pixels_are_the_flattened_images_and_skip_the_cache(cache):
    feats = extract_features(RawPixels(), "digits", "test", progress=False)
    images, _ = zoo.to_arrays(zoo.load_dataset("digits", split="test"))
    assert np.array_equal(feats.feats, images.reshape(360, -1).astype(np.float32) / 255)
    assert not cache.exists()


def test_centred_pixels_subtract_the_train_mean_image(cache):
    enc = resolve_encoder("raw-pixels-centred", "digits")
    train, _ = zoo.to_arrays(zoo.load_dataset("digits", split="train"))
    test, _ = zoo.to_arrays(zoo.load_dataset("digits", split="test"))
    mean = train.reshape(len(train), -1).astype(np.float64).mean(0) / 255
    feats = extract_features(enc, "digits", "test", progress=False).feats
    np.testing.assert_allclose(feats, test.reshape(len(test), -1) / 255 - mean, atol=1e-6)
    assert enc.identity == "raw-pixels-centred-v1:digits" and not cache.exists()
    with pytest.raises(SslzooError, match="takes images of 64 values"):
        enc.embed(np.zeros((2, 28, 28), dtype=np.uint8))


def test_random_init_baseline_is_deterministic():
    a, b = resolve_encoder("random-sslzoo_cnn4", "digits"), resolve_encoder("random-sslzoo_cnn4", "digits")
    assert a.identity == b.identity and a.identity.startswith("random-sslzoo_cnn4@")
    assert a.in_chans == 1  # digits are grayscale


def test_encoder_without_identity_is_refused():
    class NoIdentity:
        def embed(self, images, batch_size=256, progress=False):
            raise AssertionError("must not be called")

    with pytest.raises(SslzooError, match="has no identity"):
        extract_features(NoIdentity(), "digits", "test")


def _sharded_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    from evaluators.features import embed_split

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        enc = CountingEncoder()
        ds = zoo.load_dataset("digits", split="test")
        feats = embed_split(enc, ds, progress=False)
        np.save(f"{out_dir}/rank{rank}.npy", feats)
        np.save(f"{out_dir}/images{rank}.npy", np.array([enc.images]))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_torchrun_ranks_embed_shards_and_gather_the_full_split_in_order(tmp_path):
    import torch.multiprocessing as mp

    world = 2
    mp.spawn(_sharded_worker, args=(world, tmp_path / "init", tmp_path), nprocs=world, join=True)
    expected = CountingEncoder().embed(zoo.load_dataset("digits", split="test")).numpy()
    for rank in range(world):
        assert np.load(tmp_path / f"images{rank}.npy")[0] == 180  # each rank embedded half of the 360
        assert np.array_equal(np.load(tmp_path / f"rank{rank}.npy"), expected)


def _image_folder(root, shade: int):
    from PIL import Image

    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(5):
            Image.new("L", (8, 8), color=shade + 10 * i + (cls == "b")).save(root / cls / f"{i}.png")


def test_changed_images_of_a_folder_dataset_are_embedded_again(cache, tmp_path, monkeypatch):
    import os

    _image_folder(tmp_path / "imgs", shade=0)
    monkeypatch.chdir(tmp_path)
    enc = CountingEncoder()
    first = extract_features(enc, "folder:imgs", "train", progress=False)
    assert extract_features(enc, "folder:imgs", "train", progress=False).cached
    _image_folder(tmp_path / "imgs", shade=100)  # same names, new pixels
    for path in (tmp_path / "imgs").rglob("*.png"):  # and a new time even on a coarse-clock file system
        os.utime(path, (path.stat().st_atime + 5, path.stat().st_mtime + 5))
    again = extract_features(enc, "folder:imgs", "train", progress=False)
    assert not again.cached and enc.calls == 2
    assert again.feats[:, 0].min() >= 100 > first.feats[:, 0].max()


def test_the_same_relative_folder_from_another_working_folder_is_another_dataset(
    cache, tmp_path, monkeypatch
):
    for where, shade in (("one", 0), ("two", 100)):
        _image_folder(tmp_path / where / "imgs", shade=shade)
    enc = CountingEncoder()
    monkeypatch.chdir(tmp_path / "one")
    first = extract_features(enc, "folder:imgs", "train", progress=False)
    monkeypatch.chdir(tmp_path / "two")
    second = extract_features(enc, "folder:imgs", "train", progress=False)
    assert not second.cached and second.key != first.key
    assert second.feats[:, 0].min() >= 100 > first.feats[:, 0].max()


class PathEncoder(CountingEncoder):
    """Reads a list of file paths (ImageNet's flat val split): features are each image's mean and max pixel."""

    def embed(self, images, batch_size=256, progress=False):
        from PIL import Image

        self.calls += 1
        rows = [np.asarray(Image.open(path).convert("L"), dtype=np.float32) for path in images]
        return torch.tensor([[row.mean(), row.max()] for row in rows])


def test_a_replaced_file_of_a_flat_val_split_is_embedded_again(cache, tmp_path):
    import os

    from _imagenet_folder import build_imagenet_folder
    from PIL import Image

    root = build_imagenet_folder(tmp_path / "imagenet", per_class=2, val_per_class=2, flat_val="csv")
    enc = PathEncoder()
    first = extract_features(enc, f"folder:{root}", "test", progress=False)
    assert extract_features(enc, f"folder:{root}", "test", progress=False).cached and enc.calls == 1
    victim = sorted((root / "val").glob("*.JPEG"))[0]  # same name, other pixels, later time
    Image.new("RGB", Image.open(victim).size, (255, 255, 255)).save(victim, quality=90)
    os.utime(victim, (victim.stat().st_atime + 5, victim.stat().st_mtime + 5))
    again = extract_features(enc, f"folder:{root}", "test", progress=False)
    assert not again.cached and enc.calls == 2 and again.key != first.key
    assert again.feats[0, 0] > first.feats[0, 0]


def _node_local_cache_worker(rank, world, init_file, out_dir):
    import datetime

    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=20)  # a rank left waiting fails the test instead of hanging it
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timeout
    )
    try:
        enc = CountingEncoder()
        got = extract_features(enc, "digits", "test", cache_dir=f"{out_dir}/cache{rank}", progress=False)
        np.save(f"{out_dir}/rank{rank}.npy", got.feats)
        np.save(f"{out_dir}/images{rank}.npy", np.array([enc.images]))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ranks_agree_on_a_cache_hit_that_only_rank_0_has(tmp_path):
    """Caches on node-local disks: rank 0 has the entry, rank 1 not. Every rank embeds (none waits for a
    rank that returned from its cache), and all return the same features."""
    import torch.multiprocessing as mp

    expected = extract_features(CountingEncoder(), "digits", "test", cache_dir=tmp_path / "cache0").feats
    mp.spawn(_node_local_cache_worker, args=(2, tmp_path / "init", tmp_path), nprocs=2, join=True)
    for rank in range(2):
        assert np.load(tmp_path / f"images{rank}.npy")[0] == 180  # both embedded their half
        assert np.array_equal(np.load(tmp_path / f"rank{rank}.npy"), expected)
