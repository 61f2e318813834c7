"""zoo.folders: unreadable files of a folder are left out and listed with their reasons, not fatal; a folder that
is mostly (or all) unreadable, or any unreadable file under ``strict``, is one line."""

from __future__ import annotations

import re

import numpy as np
import pytest
from _messy import BAD, good_files, messy_folder, write_bad

import zoo
from zoo.datasets import unreadable_files
from zoo.errors import SslzooError
from zoo.folders import MAX_UNREADABLE_SHARE, index_folder


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")


def test_unreadable_files_are_left_out_and_listed_with_their_reasons(tmp_path):
    root = messy_folder(tmp_path / "photos")
    index = index_folder(root)
    assert [path for path, _ in index.unreadable] == sorted(BAD)
    for path, why in index.unreadable:
        assert re.search(BAD[path], why, re.IGNORECASE), (path, why)
    assert len(index) == 28 and not set(BAD) & set(index.paths)
    modes = dict(zip(index.paths, index.modes))
    assert modes["cats/00-cmyk.jpg"] == "CMYK" and modes["cats/01-png-named.jpg"] in ("RGB", "L")
    listed = index.skipped_list.read_text().splitlines()
    assert listed[0].startswith("# 3 image file(s)")
    assert sorted(line.split("\t")[0] for line in listed[1:]) == sorted(BAD)
    again = index_folder(root)  # the verdicts are cached: nothing is decoded again
    assert again.verified_now == 0 and again.unreadable == index.unreadable
    assert again.fingerprint == index.fingerprint


def test_the_dataset_holds_the_readable_images_and_the_cmyk_one_decodes_to_rgb(tmp_path):
    root = messy_folder(tmp_path / "photos")
    dd = zoo.load_dataset(f"folder:{root}")
    assert sum(len(split) for split in dd.values()) == 28
    paths = [p for split in dd.values() for p in split.cast_column("image", _undecoded())["image"]]
    names = {p["path"].split("/photos/")[1] for p in paths}
    assert "cats/00-cmyk.jpg" in names and not set(BAD) & names
    from zoo.imaging import open_image, to_channels

    rgb = np.asarray(to_channels(open_image(root / "cats" / "00-cmyk.jpg"), 3))
    assert rgb.shape == (40, 40, 3) and rgb.std() > 10  # a photo, not a blank


def _undecoded():
    import datasets

    return datasets.Image(decode=False)


def test_a_fixed_file_comes_back_and_changes_the_fingerprint(tmp_path):
    root = messy_folder(tmp_path / "photos")
    before = index_folder(root)
    from _messy import photo

    photo("coffee", 48).save(root / "dogs" / "empty.jpg", "JPEG")
    after = index_folder(root)
    assert "dogs/empty.jpg" in after.paths and len(after.unreadable) == 2
    assert after.verified_now == 1 and after.fingerprint != before.fingerprint


def test_strict_refuses_any_unreadable_file_in_one_line(tmp_path):
    root = messy_folder(tmp_path / "photos")
    with pytest.raises(SslzooError) as info:
        unreadable_files(f"folder:{root}", strict=True)
    message = str(info.value)
    assert "\n" not in message and "3 of its 31 image files are not readable" in message
    assert all(path in message for path in BAD) and "--strict-images" in message
    found = unreadable_files(f"folder:{root}?train=10")  # subset options select among the readable ones
    assert len(found) == 3 and found.total == 31 and "--strict-images" in found.note()
    assert len(unreadable_files("digits")) == 0


def test_a_folder_with_no_readable_file_is_one_error(tmp_path):
    for rel in BAD:
        write_bad(tmp_path / "bad", rel)
    message = r"none of its 3 image file\(s\) is readable .*cats/cut\.jpg"
    with pytest.raises(SslzooError, match=message) as info:
        zoo.load_dataset(f"folder:{tmp_path / 'bad'}")
    assert "\n" not in str(info.value)


def test_more_than_the_stated_share_unreadable_is_one_error(tmp_path):
    root = tmp_path / "photos"
    good_files(root, per_class=4)  # 8 good, 3 bad: 27%
    for rel in BAD:
        write_bad(root, rel)
    assert MAX_UNREADABLE_SHARE < 3 / 11
    with pytest.raises(SslzooError, match=r"3 of its 11 image files are not readable .*more than the 10%"):
        zoo.load_dataset(f"folder:{root}")
    good_files(root, per_class=14)  # 28 good, 3 bad: under 10%, left out
    assert len(index_folder(root).unreadable) == 3
