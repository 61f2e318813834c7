"""Specification of the dataset registry: fixed splits, real counts, caching, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zoo import datasets
from zoo.errors import SslzooError


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """Point the converted-dataset cache at an empty folder for this test."""
    monkeypatch.setattr(datasets, "cache_root", lambda: tmp_path / "sslzoo-cache")
    return tmp_path / "sslzoo-cache"


def _write_png(path, value, size=(6, 5), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color=value).save(path)


class TestDigits:
    def test_fixed_stratified_split(self):
        dd = datasets.load_dataset("digits")
        assert {k: len(v) for k, v in dd.items()} == {"train": 1437, "test": 360}
        train = np.asarray(dd["train"]["label"])
        test = np.asarray(dd["test"]["label"])
        assert set(train) == set(test) == set(range(10))
        # Stratified: every class has 20% ± one image of its examples in test.
        total = np.bincount(train, minlength=10) + np.bincount(test, minlength=10)
        assert np.all(np.abs(np.bincount(test, minlength=10) - total * 360 / 1797) <= 1)

    def test_images_are_8x8_grayscale_scaled_to_uint8(self):
        from sklearn.datasets import load_digits

        ds = datasets.load_dataset("digits", split="train")
        image = ds[0]["image"]
        assert isinstance(image, Image.Image) and image.mode == "L" and image.size == (8, 8)
        # The first train image is one of sklearn's images, scaled 0..16 → 0..255.
        scaled = np.round(load_digits().images * 255 / 16).astype(np.uint8)
        assert any(np.array_equal(np.asarray(image), s) for s in scaled)

    def test_split_is_deterministic_across_fresh_builds(self, fresh_cache):
        first = datasets.load_dataset("digits", split="test")["label"]
        import shutil

        shutil.rmtree(fresh_cache)
        second = datasets.load_dataset("digits", split="test")["label"]
        assert list(first) == list(second)

    def test_second_load_reads_the_cache_without_rebuilding(self, fresh_cache, monkeypatch):
        datasets.load_dataset("digits")
        spec = datasets.REGISTRY["digits"]

        def fail():
            raise AssertionError("the cached dataset was rebuilt")

        monkeypatch.setitem(
            datasets.REGISTRY, "digits", datasets.DatasetSpec(**{**spec.__dict__, "build": fail})
        )
        ds = datasets.load_dataset("digits", split="train")
        assert len(ds) == 1437
        # Memory-mapped from the Arrow files in our cache, not held in RAM.
        assert ds.cache_files and all(str(fresh_cache) in f["filename"] for f in ds.cache_files)

    def test_to_arrays_matches_the_images_and_is_cached(self, fresh_cache):
        ds = datasets.load_dataset("digits", split="test")
        images, labels = datasets.to_arrays(ds)
        assert images.shape == (360, 8, 8, 1) and images.dtype == np.uint8
        assert np.array_equal(images[5, :, :, 0], np.asarray(ds[5]["image"]))
        assert np.array_equal(labels, np.asarray(ds["label"]))
        again, _ = datasets.to_arrays(ds)
        assert isinstance(again, np.memmap) and np.array_equal(again, images)


@pytest.mark.skipif(
    not datasets.FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist missing"
)
class TestFashionMnist:
    def test_official_split_counts_and_classes(self):
        dd = datasets.load_dataset("fashion-mnist")
        assert {k: len(v) for k, v in dd.items()} == {"train": 60000, "test": 10000}
        assert dd["train"].features["label"].names[0] == "T-shirt/top"
        assert np.array_equal(np.bincount(dd["test"]["label"]), np.full(10, 1000))
        image = dd["test"][0]["image"]
        assert image.size == (28, 28) and image.mode == "L"

    def test_idx_reader_matches_the_raw_bytes(self):
        import gzip

        labels = datasets._read_idx(datasets.FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
        with gzip.open(datasets.FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz") as f:
            raw = f.read()
        assert labels.shape == (10000,) and list(labels[:5]) == list(raw[8:13])

    def test_missing_package_offline_says_how_to_install(self, fresh_cache, monkeypatch, tmp_path):
        monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", tmp_path / "absent")
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(SslzooError, match="apt-get install dataset-fashion-mnist"):
            datasets.load_dataset("fashion-mnist")


class TestFolder:
    def test_class_subfolders_become_labels_and_a_stratified_test_split(self, tmp_path):
        for cls, value in (("cat", 10), ("dog", 200)):
            for i in range(10):
                _write_png(tmp_path / "imgs" / cls / f"{i}.png", value)
        dd = datasets.load_dataset(f"folder:{tmp_path / 'imgs'}")
        assert dd["train"].features["label"].names == ["cat", "dog"]
        assert len(dd["train"]) == 16 and len(dd["test"]) == 4
        assert sorted(dd["test"]["label"]) == [0, 0, 1, 1]
        row = dd["train"][0]
        assert np.asarray(row["image"]).max() == (10 if row["label"] == 0 else 200)

    def test_train_and_test_subfolders_are_kept(self, tmp_path):
        for split, n in (("train", 3), ("test", 2)):
            for cls in ("a", "b"):
                for i in range(n):
                    _write_png(tmp_path / split / cls / f"{i}.png", 5, mode="RGB")
        dd = datasets.load_dataset(f"folder:{tmp_path}")
        assert {k: len(v) for k, v in dd.items()} == {"train": 6, "test": 4}

    def test_empty_folder(self, tmp_path):
        (tmp_path / "cls").mkdir()
        with pytest.raises(SslzooError, match="holds no images"):
            datasets.load_dataset(f"folder:{tmp_path}")

    def test_missing_folder(self, tmp_path):
        with pytest.raises(SslzooError, match="no such folder"):
            datasets.load_dataset(f"folder:{tmp_path / 'nope'}")

    def test_unreadable_image_is_named(self, tmp_path):
        # 1 of 2 files unreadable is more than the share left out (10%, tests/zoo/test_folders.py): refused.
        _write_png(tmp_path / "a" / "good.png", 1)
        (tmp_path / "a" / "bad.png").write_bytes(b"not a png")
        with pytest.raises(SslzooError, match=r"1 of its 2 image files are not readable \(a/bad\.png: "):
            datasets.load_dataset(f"folder:{tmp_path}")


class TestErrors:
    def test_unknown_name_suggests_the_closest(self):
        with pytest.raises(SslzooError, match="Did you mean fashion-mnist"):
            datasets.load_dataset("fashion-mnst")

    def test_unknown_split_lists_the_splits(self):
        with pytest.raises(SslzooError, match="splits are train, test"):
            datasets.load_dataset("digits", split="validation")

    def test_malformed_hub_id(self):
        with pytest.raises(SslzooError, match="hf:ORG/NAME"):
            datasets.load_dataset("hf:cifar10")

    def test_hub_dataset_offline_and_not_cached(self, monkeypatch, tmp_path):
        import datasets as hf_datasets

        monkeypatch.setattr(hf_datasets.config, "HF_DATASETS_CACHE", tmp_path)
        with pytest.raises(SslzooError, match="cannot load Hub dataset uoft-cs/cifar10"):
            datasets.load_dataset("hf:uoft-cs/cifar10")

    def test_errors_are_one_line(self):
        err = SslzooError("first\n   second")
        assert str(err) == "first second"


class TestHubColumns:
    def test_columns_are_detected_renamed_and_a_test_split_carved(self):
        import datasets as hf_datasets

        feats = hf_datasets.Features(
            {
                "img": hf_datasets.Image(),
                "fine_label": hf_datasets.ClassLabel(names=["x", "y"]),
                "extra": hf_datasets.Value("int64"),
            }
        )
        rows = {
            "img": [Image.new("L", (4, 4), i) for i in range(20)],
            "fine_label": [i % 2 for i in range(20)],
            "extra": list(range(20)),
        }
        dd = hf_datasets.DatasetDict({"train": hf_datasets.Dataset.from_dict(rows, features=feats)})
        out = datasets._ensure_test_split(datasets._select_columns(dd, "hf:o/n", None, None))
        assert set(out["train"].column_names) == {"image", "label"}
        assert len(out["test"]) == 4 and sorted(out["test"]["label"]) == [0, 0, 1, 1]

    def test_named_column_that_does_not_exist(self):
        import datasets as hf_datasets

        dd = hf_datasets.DatasetDict(
            {"train": hf_datasets.Dataset.from_dict({"pixels": [1, 2]}, features=None)}
        )
        with pytest.raises(SslzooError, match=r"no image column found .*hf:o/n\?image=COLUMN"):
            datasets._select_columns(dd, "hf:o/n", None, None)


@pytest.mark.parametrize("name", ["digits", "fashion-mnist"])
def test_listed_sizes_are_the_built_splits(name):
    # `sslzoo datasets` lists the registry's sizes without building anything; they must be what loading gives.
    spec = datasets.resolve(name)
    if not spec.availability()[0]:
        pytest.skip(f"{name} is not available here")
    assert dict(spec.sizes) == {split: len(ds) for split, ds in datasets.load_dataset(name).items()}
