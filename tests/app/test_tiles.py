"""The app's tile store: gallery tiles written once, whole, and then served from memory."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from app.tiles import MAX_TILE_SIDE, TileStore


def _loader(calls: list[int]):
    def load(index: int) -> Image.Image:
        calls.append(index)
        side = 300 if index == 0 else 28  # one photo larger than a tile
        return Image.new("L", (side, side), index)

    return load


def test_write_gallery_writes_every_tile_once(tmp_path):
    calls: list[int] = []
    store = TileStore(tmp_path)
    store.write_gallery("g", 5, _loader(calls))
    assert sorted(calls) == [0, 1, 2, 3, 4]
    paths = [store.gallery_tile("g", i, _loader(calls)) for i in range(5)]
    assert sorted(calls) == [0, 1, 2, 3, 4]  # no image read again
    assert len(set(paths)) == 5 and all(os.path.isfile(p) for p in paths)
    with Image.open(paths[0]) as big, Image.open(paths[3]) as small:
        assert max(big.size) == MAX_TILE_SIDE and small.size == (28, 28) and small.getpixel((0, 0)) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_tiles_of_an_earlier_store_are_reused(tmp_path):
    first = TileStore(tmp_path).gallery_tile("g", 7, _loader([]))
    calls: list[int] = []
    assert TileStore(tmp_path).gallery_tile("g", 7, _loader(calls)) == first
    assert calls == []  # found on disk, not decoded again
    # Another gallery's image 7 is another tile.
    assert TileStore(tmp_path).gallery_tile("h", 7, _loader(calls)) != first and calls == [7]


def test_downloads_are_named_for_what_they_hold(tmp_path):
    from app.tiles import safe_filename

    store = TileStore(tmp_path)
    name = safe_filename(
        "embedding-map", "pca", "runs/simclr-digits/encoder", "folder:/data/my photos", suffix=".csv"
    )
    assert name == "embedding-map-pca-simclr-digits-my-photos.csv"
    path = Path(store.data(b"index,label\n", name))
    assert path.name == name and path.read_bytes() == b"index,label\n"
    other = Path(
        store.data(b"index,label\n0,1\n", name)
    )  # other content, same name: another file, not rewritten
    assert other.name == name and other != path and path.read_bytes() == b"index,label\n"
    picture = Path(
        store.image(Image.new("L", (2, 2)), safe_filename("query", "hf-hub:org/vit.dino", "gallery-7"))
    )
    assert picture.name == "query-vit.dino-gallery-7.png"
    assert safe_filename("../../etc/passwd", "a b?c") == "passwd-a-b-c" and safe_filename("///") == "download"
