"""Images handed to the page as files that are written once, atomically, under names no other content can take.

Gradio copies every image a handler returns into a content-addressed cache; under concurrent requests a file in
that cache can be rewritten while another request is being served from it (failed responses under load). The app
instead writes each picture itself into one folder registered with :func:`gradio.set_static_paths`, so Gradio
serves it in place and never copies it: a gallery image is ``<gallery digest>-<index>.png`` (gallery images never
change), any other picture is named by the SHA-256 of its pixels. A download (a CSV, a picture a user may save)
gets a name that says what it holds, in a folder named by the hash of its content (``file-<hash>/NAME``), so the
browser saves ``embedding-map-pca-byol-fmnist-fashion-mnist.csv``, not a hash. A file is written to a unique temporary name and
renamed into place, so a reader sees either no file or the whole file, and an existing file is never rewritten.

>>> from PIL import Image
>>> store = TileStore()
>>> a = store.image(Image.new("RGB", (4, 4), (255, 0, 0)))
>>> a == store.image(Image.new("RGB", (4, 4), (255, 0, 0))), a == store.image(Image.new("RGB", (4, 4)))
(True, False)
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from zoo.disk_full import disk_full_error, disk_usage, is_disk_full

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once, at import (changing the umask later would race with other threads)
MAX_TILE_SIDE = (
    160  # gallery tiles: small images stay at their own size (the page scales them with square pixels)
)


MAX_NAME = 120  # characters of a download's file name, before its suffix


def safe_filename(*parts: str, suffix: str = "") -> str:
    """A file name made of ``parts`` joined by ``-``: letters, digits, ``.``, ``_`` and ``-`` only, at most
    :data:`MAX_NAME` characters before ``suffix``. Folder paths and ``hf-hub:`` ids keep their last component
    (``runs/simclr/encoder`` → ``simclr``).

    >>> safe_filename("neighbours", "hf-hub:timm/vit_small.dino", "gallery #17", suffix=".csv")
    'neighbours-vit_small.dino-gallery-17.csv'
    """
    words = []
    for part in parts:
        text = str(part).strip()
        if "/" in text or "\\" in text:
            pieces = [p for p in re.split(r"[/\\]", text) if p]
            if len(pieces) > 1 and pieces[-1] == "encoder":
                pieces.pop()  # a run's encoder/ folder: the run's name says more
            text = pieces[-1] if pieces else text
        text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
        if text:
            words.append(text)
    name = re.sub(r"-{2,}", "-", "-".join(words))[:MAX_NAME].rstrip("-.") or "download"
    return name + suffix


class TileStore:
    """A folder of PNG files for the page: ``folder``, or a new temporary folder removed when Python exits."""

    def __init__(self, folder: str | Path | None = None) -> None:
        if folder is None:
            folder = tempfile.mkdtemp(prefix="sslzoo-app-tiles-")
            atexit.register(shutil.rmtree, folder, ignore_errors=True)  # ours alone: made just above
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._gallery_paths: dict[tuple[str, int], str] = {}  # tiles written (or found) by this store

    def _write(self, image: Image.Image | bytes, name: str) -> str:
        path = self.folder / name
        if not path.is_file():
            path.parent.mkdir(exist_ok=True)  # a download's own folder (file-<hash>/NAME)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=path.suffix, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    if isinstance(image, bytes):
                        f.write(image)
                    else:
                        image.save(f, "PNG")
                os.chmod(tmp, 0o644 & ~_UMASK)  # mkstemp makes 0600 files; honour the umask instead
                os.replace(tmp, path)
            except BaseException as exc:
                written = disk_usage(tmp)
                Path(tmp).unlink(missing_ok=True)
                if is_disk_full(exc):  # one line for the page (or the command), no tile half-written
                    raise disk_full_error(path, written, 0) from None
                raise
        return str(path)

    def image(self, image: Image.Image, filename: str | None = None) -> str:
        """The path of a PNG holding ``image``: named by the hash of its mode, size and pixels, or, with
        ``filename`` (made safe, ``.png`` added), saved under that name in a folder named by that hash."""
        digest = hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()[:24]
        if filename is None:
            return self._write(image, f"img-{digest}.png")
        return self._write(
            image, f"img-{digest}/{safe_filename(filename.removesuffix('.png'), suffix='.png')}"
        )

    def data(self, data: bytes, filename: str) -> str:
        """The path of a file holding ``data`` (e.g. a CSV) under ``filename`` (made safe by :func:`safe_filename`,
        its suffix kept), in a folder named by the hash of ``data``."""
        stem, dot, suffix = filename.rpartition(".")
        name = safe_filename(stem, suffix=f".{suffix}") if dot and stem else safe_filename(filename)
        return self._write(data, f"file-{hashlib.sha256(data).hexdigest()[:24]}/{name}")

    def gallery_tile(self, gallery: str, index: int, load: Callable[[int], Image.Image]) -> str:
        """The path of gallery ``gallery``'s image ``index`` (shrunk to :data:`MAX_TILE_SIDE` if larger).

        ``load(index)`` reads the image; it is called only the first time (decoding a dataset row costs more
        than serving the file). A tile known to this store is returned without touching the disk: under load,
        every file-system call is a round through the interpreter lock that the server's other threads wait for.
        """
        key = (gallery, int(index))
        known = self._gallery_paths.get(key)
        if known is not None:
            return known
        digest = hashlib.sha256(gallery.encode()).hexdigest()[:12]
        path = self.folder / f"gal-{digest}-{int(index)}.png"
        if path.is_file():
            found = str(path)
        else:
            image = load(int(index))
            if max(image.size) > MAX_TILE_SIDE:
                image = image.copy()
                image.thumbnail((MAX_TILE_SIDE, MAX_TILE_SIDE), Image.Resampling.LANCZOS)
            found = self._write(image, path.name)
        # A dict assignment is atomic, and any racing writer stores the same path.
        self._gallery_paths[key] = found
        return found

    def write_gallery(
        self, gallery: str, count: int, load: Callable[[int], Image.Image], progress: bool = False
    ) -> None:
        """Every tile of a gallery of ``count`` images, written now rather than at first request.

        A neighbour answer shows ten tiles; on a fresh server each is encoded and written while the user waits
        (a sixth of the app's CPU time per query under load, measured with ``benchmarks/bench_app.py``).
        """
        from tqdm.auto import tqdm

        for index in tqdm(range(count), desc=f"gallery tiles {gallery}", unit="img", disable=not progress):
            self.gallery_tile(gallery, index, load)
