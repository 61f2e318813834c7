"""A real collection's mess, for the tests of unreadable files: scikit-image's bundled photos at a few sizes, saved
as JPEG and PNG (one CMYK JPEG, one PNG named ``.jpg``: both must read fine), plus files that no decoder reads."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon")
SIDES = (40, 56, 72)
# What a messy folder's bad files are, and a pattern of the reason each must be given.
BAD = {
    "cats/cut.jpg": "truncated",
    "cats/page.jpg": "HTML",
    "dogs/empty.jpg": "empty file",
}


def photo(name: str, side: int) -> Image.Image:
    import skimage.data

    image = Image.fromarray(getattr(skimage.data, name)())
    return image.resize((side, round(side * image.height / image.width)))


def good_files(root: Path, per_class: int) -> list[Path]:
    """``root/cats`` and ``root/dogs``, ``per_class`` photos each, in mixed sizes, modes and formats."""
    out = []
    for c, cls in enumerate(("cats", "dogs")):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = photo(PHOTOS[(i + c) % len(PHOTOS)], SIDES[i % len(SIDES)])
            if i == 0:  # CMYK JPEG: printers' photos; read and converted like any other
                path = root / cls / f"{i:02d}-cmyk.jpg"
                image.convert("CMYK").save(path, "JPEG")
            elif i == 1:  # a PNG with the wrong suffix: PIL reads the content, not the name
                path = root / cls / f"{i:02d}-png-named.jpg"
                image.save(path, "PNG")
            else:
                path = root / cls / f"{i:02d}.{'jpg' if i % 2 else 'png'}"
                image.convert("L" if i % 3 == 0 else "RGB").save(path)
            out.append(path)
    return out


def write_bad(root: Path, rel: str) -> Path:
    """The bad file ``rel`` of :data:`BAD`."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if "cut" in rel:
        photo("chelsea", 120).save(path, "JPEG", quality=90)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # header intact, data cut
    elif "page" in rel:
        path.write_text("<!DOCTYPE html><html><body>403 Forbidden</body></html>")
    else:
        path.write_bytes(b"")
    return path


def messy_folder(root: Path, per_class: int = 14) -> Path:
    """Labelled photos (``2 × per_class``) and the three bad files of :data:`BAD` (3 of 31: under 10%)."""
    good_files(root, per_class)
    for rel in BAD:
        write_bad(root, rel)
    return root
