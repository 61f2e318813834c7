"""One line naming the file when an image of a dataset cannot be decoded (truncated, a decompression bomb, not
an image), instead of PIL's traceback from deep inside a DataLoader.

Nothing is paid on the happy path: only after a decode error are the dataset's images checked one by one to find
the culprit. Training's input pipeline skips and counts unreadable files instead; evaluation and ``sslzoo datasets``
must see every image, so they stop and say which one.

>>> with naming_unreadable_images("folder:imgs"):  # doctest: +SKIP
...     feats = encoder.embed(zoo.load_dataset("folder:imgs", split="test"))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoo.errors import SslzooError


def _decode_errors() -> tuple[type[BaseException], ...]:
    from PIL import Image

    # Truncated files and unknown formats are OSErrors; PIL raises the bomb error above 2x MAX_IMAGE_PIXELS and
    # SyntaxError on some corrupt headers; DataLoader workers re-raise in the main process as the same type or as
    # a RuntimeError.
    return (OSError, SyntaxError, ValueError, RuntimeError, Image.DecompressionBombError)


def image_problem(source: str | Path | bytes, name: str) -> str | None:
    """What is wrong with the image at ``source`` (a path or encoded bytes) named ``name``, or None if it decodes.

    Opening follows the one decoding rule (:func:`zoo.imaging.open_image`: not an image, empty, too many pixels);
    then every pixel is decoded, which finds truncated files whose header is intact.
    """
    from zoo.imaging import open_image

    try:
        with open_image(source, name) as image:
            image.load()
    except SslzooError as exc:
        return str(exc)
    except (OSError, SyntaxError, ValueError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot decode image {name} ({why}); remove or replace that file."
    return None


def _candidates(dataset: str, ds: Any) -> Iterator[tuple[str, str | Path | bytes]]:
    """(name, path-or-bytes) of every image of ``ds`` (undecoded), else of the ``folder:`` dataset's files."""
    import datasets

    if isinstance(ds, datasets.Dataset) and "image" in ds.column_names:
        raw = ds.cast_column("image", datasets.Image(decode=False))
        for i, row in enumerate(raw["image"]):
            if row.get("bytes"):
                yield (row.get("path") or f"row {i}"), row["bytes"]
            elif row.get("path"):
                yield row["path"], row["path"]
        return
    name = dataset.split("?")[0]
    if name.startswith("folder:"):
        from zoo.folders import index_folder

        root = Path(name[len("folder:") :]).expanduser()
        if root.is_dir():
            index = index_folder(root)
            for rel in index.paths:
                yield str(index.root / rel), index.root / rel


def first_unreadable(dataset: str, ds: Any = None) -> tuple[str, str] | None:
    """``(file, what is wrong)`` of the first image of ``dataset`` (or of the split ``ds``) that cannot be decoded."""
    for name, source in _candidates(dataset, ds):
        problem = image_problem(source, name)
        if problem:
            return name, problem
    return None


@contextlib.contextmanager
def naming_unreadable_images(dataset: str, ds: Any = None) -> Iterator[None]:
    """Turn a decode error raised inside the block into one line naming the file and what is wrong with it.

    Errors that are not a bad image (no image of the dataset fails to decode) pass through unchanged.
    """
    try:
        yield
    except SslzooError:
        raise
    except _decode_errors():
        found = first_unreadable(dataset, ds)
        if found is None:
            raise
        raise SslzooError(f"{dataset}: {found[1]}") from None
