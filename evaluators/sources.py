"""Where evaluation images come from: ``zoo.load_dataset`` splits, plus ImageNet's flat validation split.

``zoo.load_dataset("folder:PATH")`` reads an ImageNet folder (``PATH/train/<wnid>/*.JPEG``, ``PATH/val/<wnid>/``)
through its cached folder index, ``val/`` being the ``test`` split. ImageNet's validation split, though, often comes
flat (``PATH/val/ILSVRC2012_val_00000001.JPEG`` …) with its labels in a separate file; :func:`open_split` gives
that split as a :class:`FileSplit` (paths + labels, numbered like the train split's sorted synset folders, as
torchvision's ``ImageFolder`` in the official scripts numbers them) and passes everything else to the door.

The flat validation split is labelled by the first file found of:

* ``LOC_val_solution.csv`` (Kaggle's ImageNet): ``ImageId,PredictionString`` rows whose first token is the wnid;
* ``ILSVRC2012_validation_ground_truth.txt`` (the ILSVRC2012 devkit): line ``i`` is the ``ILSVRC2012_ID`` of
  ``ILSVRC2012_val_{i:08d}``, mapped to wnids by the devkit's ``meta.mat`` (``ILSVRC2012_devkit_t12/data/meta.mat``
  or ``meta.mat`` next to it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import SslzooError

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
LOC_CSV = "LOC_val_solution.csv"
GROUND_TRUTH_TXT = "ILSVRC2012_validation_ground_truth.txt"
NEEDS = (
    "ImageNet-1k as folder:PATH with PATH/train/<wnid>/*.JPEG and PATH/val/<wnid>/*.JPEG, or a flat PATH/val/ "
    f"with {LOC_CSV} or {GROUND_TRUTH_TXT} + the devkit's meta.mat in PATH"
)


@dataclass
class FileSplit:
    """One split as image files: ``paths[i]`` has class ``labels[i]`` (an index into ``classes``)."""

    paths: list[str]
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def _fingerprint(self) -> str:
        """sha256 of every file's path, size and modification time, and of the labels: what the feature cache
        keys on (as a ``datasets`` split's fingerprint), so a file replaced under the same name is embedded again.
        A missing file is keyed as missing (embedding it then names it)."""
        import hashlib

        digest = hashlib.sha256()
        for path in self.paths:
            try:
                st = os.stat(path)
                digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{path}\0missing\n".encode())
        digest.update(np.asarray(self.labels, dtype=np.int64).tobytes())
        digest.update("\0".join(self.classes).encode())
        return digest.hexdigest()[:16]

    def select(self, indices: Sequence[int] | range) -> FileSplit:
        idx = np.asarray(list(indices), dtype=np.int64)
        return FileSplit([self.paths[i] for i in idx], self.labels[idx], self.classes)


def is_imagenet_layout(root: str | Path) -> bool:
    """Whether ``root`` has ``train/`` and ``val/`` folders (the layout the papers' scripts read)."""
    root = Path(root)
    return (root / "train").is_dir() and (root / "val").is_dir()


def imagenet_root(dataset: str | None) -> str:
    """The folder of ``folder:PATH`` when it has the ImageNet layout, else one line saying what is needed.

    Torch-free, so ``sslzoo reproduce NAME`` without ImageNet refuses before loading anything.
    """
    path = dataset[len("folder:") :] if dataset and dataset.startswith("folder:") else None
    if path is None or not is_imagenet_layout(path):
        where = f" ({dataset} is not)" if dataset else ""
        raise SslzooError(f"sslzoo reproduce needs {NEEDS}{where}: pass --dataset folder:PATH.")
    return path


def _images_in(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(
            e.path for e in entries if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
        )


def _class_folders(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _wnids_from_meta(meta_path: Path) -> dict[int, str]:
    """``ILSVRC2012_ID → wnid`` for the 1000 leaf synsets of the devkit's ``meta.mat``."""
    from scipy.io import loadmat

    synsets = loadmat(str(meta_path), squeeze_me=True)["synsets"]
    out = {}
    for s in synsets:
        if int(s["num_children"]) == 0:
            out[int(s["ILSVRC2012_ID"])] = str(s["WNID"])
    return out


def _flat_val_wnids(root: Path, files: list[str]) -> list[str]:
    """The wnid of each flat validation image, from the first labels file found in ``root``."""
    stems = [Path(f).stem for f in files]
    for csv in (root / LOC_CSV, root / "val" / LOC_CSV):
        if csv.is_file():
            wnid_of = {}
            for line in csv.read_text().splitlines()[1:]:
                image_id, _, prediction = line.partition(",")
                if prediction.strip():
                    wnid_of[image_id.strip()] = prediction.split()[0]
            missing = [s for s in stems if s not in wnid_of]
            if missing:
                raise SslzooError(
                    f"{csv} has no label for {len(missing)} images of {root / 'val'} (e.g. {missing[0]})."
                )
            return [wnid_of[s] for s in stems]
    for txt in (root / GROUND_TRUTH_TXT, root / "ILSVRC2012_devkit_t12" / "data" / GROUND_TRUTH_TXT):
        if txt.is_file():
            metas = [
                txt.parent / "meta.mat",
                root / "ILSVRC2012_devkit_t12" / "data" / "meta.mat",
                root / "meta.mat",
            ]
            meta = next((m for m in metas if m.is_file()), None)
            if meta is None:
                raise SslzooError(
                    f"{txt} numbers classes by ILSVRC2012_ID; put the devkit's meta.mat next to it to map them to "
                    "synsets."
                )
            wnid_of_id = _wnids_from_meta(meta)
            ids = [int(v) for v in txt.read_text().split()]
            out = []
            for stem in stems:
                number = int(stem.rsplit("_", 1)[-1]) if stem.rsplit("_", 1)[-1].isdigit() else 0
                if not 1 <= number <= len(ids):
                    raise SslzooError(
                        f"{txt} has no line for {stem}; name the files ILSVRC2012_val_NNNNNNNN.JPEG."
                    )
                out.append(wnid_of_id[ids[number - 1]])
            return out
    raise SslzooError(
        f"{root / 'val'} holds images but no class folders; it needs " + NEEDS.split(", or ", 1)[1] + "."
    )


def flat_val_split(root: str | Path, classes: list[str]) -> FileSplit:
    """ImageNet's flat ``root/val/*.JPEG`` labelled by its labels file, numbered by ``classes`` (train's synsets)."""
    root = Path(root)
    files = _images_in(root / "val")
    wnids = _flat_val_wnids(root, files)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(wnids) - set(index))
    if unknown:
        raise SslzooError(f"the val labels name synsets with no train folder (e.g. {unknown[0]}).")
    return FileSplit(files, np.asarray([index[w] for w in wnids], dtype=np.int64), list(classes))


def imagenet_splits(root: str | Path) -> dict[str, Any]:
    """``{"train", "test"}`` splits of an ImageNet-layout folder (``test`` is ``val``, flat or not).

    Raises:
        SslzooError: not that layout, or a flat ``val/`` without a labels file.
    """
    root = Path(root).expanduser()
    if not is_imagenet_layout(root):
        raise SslzooError(f"{root} is not an ImageNet folder: sslzoo needs {NEEDS}.")
    return {split: open_split(f"folder:{root}", split) for split in ("train", "test")}


def class_names(source: Any) -> list[str]:
    """The class names of a :class:`FileSplit` or a ``datasets.Dataset`` split."""
    return list(source.classes) if isinstance(source, FileSplit) else list(source.features["label"].names)


def open_split(dataset: str, split: str) -> Any:
    """A split to embed: ``zoo.load_dataset``'s, except ImageNet's flat ``val/`` (a :class:`FileSplit`)."""
    import zoo

    root = Path(dataset[len("folder:") :]).expanduser() if dataset.startswith("folder:") else None
    flat_val = (
        root is not None
        and "?" not in dataset
        and is_imagenet_layout(root)
        and not _class_folders(root / "val")
    )
    if flat_val and split == "test":
        return flat_val_split(root, class_names(zoo.load_dataset(dataset, split="train")))
    return zoo.load_dataset(dataset, split=split)


def split_labels(source: Any) -> np.ndarray:
    """(N,) int64 labels of a :class:`FileSplit` or a ``datasets.Dataset``."""
    if isinstance(source, FileSplit):
        return source.labels
    return np.asarray(source["label"], dtype=np.int64)


def select_rows(source: Any, indices: range) -> Any:
    """Rows ``indices`` of a :class:`FileSplit` or a ``datasets.Dataset`` (a rank's shard)."""
    return source.select(indices)


def images_of(source: Any) -> Any:
    """What ``Encoder.embed`` takes for a source: the file paths of a :class:`FileSplit`, else the dataset."""
    return source.paths if isinstance(source, FileSplit) else source
