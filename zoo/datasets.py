"""Named image datasets as Hugging Face ``datasets`` splits with an ``image`` (PIL) and a ``label`` column.

One door for every package: trainers, evaluators and the app read data only through :func:`load_dataset`.

Names and their fixed splits:

* ``fashion-mnist``: the official 60,000 train / 10,000 test images (28×28 grayscale, 10 classes), read from the
  Debian package ``dataset-fashion-mnist`` when installed, otherwise downloaded from the Hub
  (``zalando-datasets/fashion_mnist``). Converted once to Arrow in the HF datasets cache; later loads are
  memory-mapped.
* ``digits``: scikit-learn's ``load_digits`` (1,797 images, 8×8, 17 grey levels scaled to 0–255), split by a
  stratified ``train_test_split(test_size=360, random_state=0)`` into 1,437 train / 360 test.
* ``hf:ORG/NAME``: any Hub dataset. The image column is the first ``Image`` feature and the label column the first
  ``ClassLabel`` feature, unless named: ``hf:uoft-cs/cifar100?label=fine_label&image=img``. A dataset without a
  ``test`` split gets one carved from ``train`` (stratified 20%, seed 0).
* ``folder:PATH``: a local image folder, one subfolder per class (``PATH/CLASS/IMG``), or ``PATH/train/CLASS/IMG``
  and ``PATH/test/CLASS/IMG`` (or ImageNet's ``val/``); without a ``test`` folder, a stratified 20% (seed 0) of the
  images becomes ``test``. Images in any other nesting (or all in one folder) are an *unlabelled* collection: one
  ``train`` split, labels -1, for self-supervised training. Any size, mode and format; the folder's index is cached
  and refreshed incrementally (:mod:`zoo.folders`). Unreadable files (empty, truncated, not images) are left out
  and listed (:func:`unreadable_files`); a folder with no readable image, or over 10% unreadable, is an error.

Any name takes subset options after ``?`` (quote them in a shell): ``fashion-mnist?train=10000&test=2000`` keeps a
stratified, seeded subset of each split (quick budgets); ``fashion-mnist?val=10000`` carves a stratified 10,000-image
validation split out of train and returns it as ``test`` (the official test split is not used: for choosing
hyper-parameters). Subsets are fixed (seed 0), so a name always means the same images.

>>> from zoo.datasets import load_dataset
>>> splits = load_dataset("digits")
>>> {name: len(split) for name, split in splits.items()}
{'train': 1437, 'test': 360}
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from zoo.atomic import atomic_folder, save_figure_atomic, save_npy_atomic
from zoo.errors import SslzooError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_HUB_ID = "zalando-datasets/fashion_mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CARVED_TEST_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset name means: where its images come from and how its splits are made.

    Attributes:
        name: Registry name (``fashion-mnist``) or pattern (``hf:ORG/NAME``).
        description: One line for ``sslzoo datasets``.
        splits: The fixed splits, in words.
        build: Returns the ``DatasetDict`` from the original source (called once; the result is cached).
        availability: Returns ``(available, how)``: ``how`` says where the data comes from or how to get it.
        cache_key: Folder name of the Arrow cache; change it when ``build`` changes its output.
        sizes: Images per split of the fixed splits, so ``sslzoo datasets`` lists them without building the
            dataset (tests/zoo/test_datasets.py checks them against the built splits).
    """

    name: str
    description: str
    splits: str
    build: Callable[[], Any]
    availability: Callable[[], tuple[bool, str]]
    cache_key: str | None = None
    sizes: tuple[tuple[str, int], ...] = ()


# --------------------------------------------------------------------------------------------------- builders
def _features(class_names: list[str] | tuple[str, ...]):
    import datasets

    return datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(class_names))}
    )


def _from_arrays(images: np.ndarray, labels: np.ndarray, class_names) -> Any:
    """A ``Dataset`` from (N, H, W) or (N, H, W, C) uint8 images and (N,) integer labels."""
    import datasets

    return datasets.Dataset.from_dict(
        {"image": list(images), "label": labels.astype(np.int64).tolist()}, features=_features(class_names)
    )


def _read_idx(path: Path) -> np.ndarray:
    """Read one gzipped IDX file (the MNIST format): magic, dims as big-endian int32, then uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _fashion_mnist_files() -> dict[str, tuple[Path, Path]]:
    return {
        "train": (
            FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz",
            FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz",
        ),
        "test": (
            FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz",
            FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz",
        ),
    }


def _debian_fashion_mnist_installed() -> bool:
    return all(p.is_file() for pair in _fashion_mnist_files().values() for p in pair)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def _fashion_mnist_availability() -> tuple[bool, str]:
    if _debian_fashion_mnist_installed():
        return True, f"Debian package dataset-fashion-mnist ({FASHION_MNIST_DIR})"
    if not _hub_offline():
        return True, f"Hub download ({FASHION_MNIST_HUB_ID})"
    return False, "install it: apt-get install dataset-fashion-mnist (or unset HF_HUB_OFFLINE to download it)"


def _build_fashion_mnist():
    import datasets

    if _debian_fashion_mnist_installed():
        return datasets.DatasetDict(
            {
                split: _from_arrays(_read_idx(images), _read_idx(labels), FASHION_MNIST_CLASSES)
                for split, (images, labels) in _fashion_mnist_files().items()
            }
        )
    if _hub_offline():
        raise SslzooError(
            "fashion-mnist is not available offline: install the Debian package "
            "(apt-get install dataset-fashion-mnist) or unset HF_HUB_OFFLINE so it can be downloaded from the Hub."
        )
    return _load_hub_dataset(FASHION_MNIST_HUB_ID, {})


def _build_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 17 grey levels (0..16) scaled to the full uint8 range so every image loader sees ordinary 8-bit images.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    train_idx, test_idx = train_test_split(
        np.arange(len(images)), test_size=360, stratify=digits.target, random_state=SPLIT_SEED
    )
    import datasets

    names = [str(i) for i in range(10)]
    return datasets.DatasetDict(
        {
            "train": _from_arrays(images[np.sort(train_idx)], digits.target[np.sort(train_idx)], names),
            "test": _from_arrays(images[np.sort(test_idx)], digits.target[np.sort(test_idx)], names),
        }
    )


def _ensure_test_split(dd):
    """Carve a stratified, seeded test split out of ``train`` when a source has none."""
    import datasets

    if "test" in dd:
        return dd
    if "train" not in dd:
        only = next(iter(dd.values()))
        dd = datasets.DatasetDict({"train": only})
    train = dd["train"]
    counts = np.bincount(np.asarray(train["label"], dtype=np.int64).clip(min=0))
    n_test = int(np.ceil(CARVED_TEST_FRACTION * len(train)))
    # Stratifying needs two images of every class and a test split with room for each class.
    present = counts[counts > 0]
    stratify = "label" if present.size and present.min() >= 2 and n_test >= present.size else None
    parts = train.train_test_split(
        test_size=CARVED_TEST_FRACTION, stratify_by_column=stratify, seed=SPLIT_SEED
    )
    return datasets.DatasetDict({"train": parts["train"], "test": parts["test"]})


def _select_columns(dd, source: str, image_col: str | None, label_col: str | None):
    """Rename a source's image and label columns to ``image``/``label`` and drop the rest."""
    import datasets

    first = next(iter(dd.values()))
    feats = first.features
    if image_col is None:
        image_col = next((k for k, v in feats.items() if isinstance(v, datasets.Image)), None)
    if label_col is None:
        label_col = next((k for k, v in feats.items() if isinstance(v, datasets.ClassLabel)), None)
    for role, col in (("image", image_col), ("label", label_col)):
        if col is None or col not in feats:
            raise SslzooError(
                f"{source}: no {role} column found among {sorted(feats)}; name it, e.g. {source}?{role}=COLUMN."
            )
    if not isinstance(feats[label_col], datasets.ClassLabel):
        dd = dd.class_encode_column(label_col)
    dd = dd.select_columns([image_col, label_col])
    renames = {old: new for old, new in ((image_col, "image"), (label_col, "label")) if old != new}
    return dd.rename_columns(renames) if renames else dd


def load_stream(name: str, split: str = "train"):
    """Stream a Hub dataset's split without downloading it: ``hf:ORG/NAME?streaming=1`` (also ``&image=``, …).

    Returns:
        ``(stream, num_examples)``: a ``datasets.IterableDataset`` with ``image`` (undecoded: path/bytes) and
        ``label`` columns (-1 when the dataset has none), and the split's size from the Hub's metadata.
    """
    import datasets

    base, _, query = name.partition("?")
    options = dict(parse_qsl(query))
    if not base.startswith("hf:"):
        raise SslzooError(f"{name!r}: only Hub datasets (hf:ORG/NAME?streaming=1) can be streamed.")
    repo_id = base[3:]
    try:
        builder = datasets.load_dataset_builder(repo_id, options.get("config"))
        stream = datasets.load_dataset(repo_id, options.get("config"), split=split, streaming=True)
    except Exception as exc:  # datasets raises many types; the user needs only the one line below
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SslzooError(f"cannot stream {repo_id} ({split}): {reason}.") from None
    splits = builder.info.splits or {}
    if split not in splits or not splits[split].num_examples:
        raise SslzooError(
            f"{repo_id} does not say how many images its {split!r} split has; download it instead."
        )
    return prepare_stream(stream, name, options.get("image"), options.get("label")), splits[
        split
    ].num_examples


def prepare_stream(stream, source: str, image_col: str | None = None, label_col: str | None = None):
    """An ``IterableDataset`` reduced to an undecoded ``image`` and an int ``label`` column (-1 if none)."""
    import datasets

    feats = stream.features or {}
    image_col = image_col or next((k for k, v in feats.items() if isinstance(v, datasets.Image)), None)
    label_col = label_col or next((k for k, v in feats.items() if isinstance(v, datasets.ClassLabel)), None)
    if image_col is None or image_col not in feats:
        raise SslzooError(f"{source}: no image column among {sorted(feats)}; name it with ?image=COLUMN.")
    stream = stream.cast_column(image_col, datasets.Image(decode=False))
    keep = [image_col] + ([label_col] if label_col else [])
    stream = stream.select_columns(keep).rename_columns(
        {old: new for old, new in ((image_col, "image"), (label_col, "label")) if old and old != new}
    )
    return stream if label_col else stream.map(lambda row: {"label": -1})


def _load_hub_dataset(repo_id: str, options: dict[str, str]):
    import datasets

    try:
        dd = datasets.load_dataset(repo_id, options.get("config"))
    except Exception as exc:  # datasets raises many types; the user needs only the one line below
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = " (HF_HUB_OFFLINE is set and it is not cached)" if _hub_offline() else ""
        raise SslzooError(
            f"cannot load Hub dataset {repo_id}{hint}: {reason}. Check the id, or download it once online."
        ) from None
    dd = _select_columns(dd, f"hf:{repo_id}", options.get("image"), options.get("label"))
    return _ensure_test_split(dd)


def _folder_labels(paths: list[str]) -> tuple[list[str] | None, list[str]]:
    """Class names per image when every image sits in a class subfolder (``CLASS/IMG``) and there are at least
    two classes; otherwise ``None`` (an unlabelled collection, any nesting)."""
    parts = [p.split("/") for p in paths]
    classes = [q[0] for q in parts]
    if all(len(q) == 2 for q in parts) and len(set(classes)) >= 2:
        return classes, sorted(set(classes))
    return None, []


def _build_folder(root: Path):
    """Splits from the cached folder index (:mod:`zoo.folders`): labelled by class subfolders, or unlabelled.

    ``train/`` and ``test/`` (or ImageNet's ``val/``) subfolders are the splits when there is a ``train/``;
    otherwise the whole tree is one collection.
    """
    import datasets

    from zoo.folders import index_folder

    index = index_folder(root)
    tops = {p.split("/", 1)[0] for p in index.paths if "/" in p}
    folders = {"train": "train", "test": "test" if "test" in tops else "val"}
    by_split: dict[str, list[int]] = {}
    for i, path in enumerate(index.paths):
        top = path.split("/", 1)[0]
        for split, folder in folders.items():
            if top == folder and "/" in path:
                by_split.setdefault(split, []).append(i)
    if "train" not in by_split:  # no train/ folder: the whole tree is the collection
        by_split = {"train": list(range(len(index)))}
        strip = 0
    else:
        strip = 1
    relative = {s: [index.paths[i].split("/", strip)[-1] for i in rows] for s, rows in by_split.items()}
    labelled = {s: _folder_labels(paths) for s, paths in relative.items()}
    names = sorted({c for classes, found in labelled.values() if classes for c in found})
    position = {c: i for i, c in enumerate(names)}
    splits = {}
    for split, rows in by_split.items():
        classes = labelled[split][0]
        labels = [position[c] for c in classes] if classes else [-1] * len(rows)
        ds = datasets.Dataset.from_dict(
            {"image": [str(index.root / index.paths[i]) for i in rows], "label": labels},
            features=_features(names),
        )
        # Content, not names: the fingerprint changes when any image's size or time does (caches follow it).
        ds._fingerprint = hashlib.sha256(f"{index.fingerprint}:{split}".encode()).hexdigest()[:16]
        splits[split] = ds
    dd = datasets.DatasetDict(splits)
    if "test" in dd or labelled["train"][0] is None:
        return dd  # an unlabelled collection trains on all of it; no test split to carve
    return _ensure_test_split(dd)


# --------------------------------------------------------------------------------------------------- registry
REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="fashion-mnist",
            description="Zalando's Fashion-MNIST: 28×28 grayscale clothing, 10 classes",
            splits="official 60,000 train / 10,000 test",
            build=_build_fashion_mnist,
            availability=_fashion_mnist_availability,
            cache_key="fashion-mnist-v1",
            sizes=(("train", 60_000), ("test", 10_000)),
        ),
        DatasetSpec(
            name="digits",
            description="scikit-learn's handwritten digits: 8×8 grayscale, 10 classes",
            splits="stratified 1,437 train / 360 test (random_state=0)",
            build=_build_digits,
            availability=lambda: (True, "scikit-learn (bundled)"),
            cache_key="digits-v1",
            sizes=(("train", 1437), ("test", 360)),
        ),
    )
}

PATTERNS = {
    "hf:ORG/NAME": "any Hub dataset; ?image=COL&label=COL&config=NAME pick columns and config",
    "folder:PATH": "a local folder with one subfolder per class (optionally under train/ and test/)",
}


def dataset_names() -> list[str]:
    """Names of the registered datasets (``hf:`` and ``folder:`` patterns are open-ended and not listed)."""
    return sorted(REGISTRY)


SUBSET_OPTIONS = ("val", "train", "test")


def split_subset_options(name: str) -> tuple[str, dict[str, int]]:
    """``"fashion-mnist?train=10000&test=2000"`` → ``("fashion-mnist", {"train": 10000, "test": 2000})``.

    Other query options (an ``hf:`` name's ``image=``/``label=``/``config=``) stay in the base name.
    """
    base, sep, query = name.partition("?")
    if not sep:
        return name, {}
    subset, rest = {}, []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in SUBSET_OPTIONS:
            rest.append(f"{key}={value}")
            continue
        if not value.isdigit() or int(value) < 1:
            raise SslzooError(f"{name!r}: {key}= takes a positive number of images, e.g. {base}?{key}=1000.")
        subset[key] = int(value)
    return (f"{base}?{'&'.join(rest)}" if rest else base), subset


def _stratified(ds, n: int, what: str):
    """Indices (sorted) of a stratified, seeded choice of ``n`` rows of ``ds``, and of the rest."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(ds["label"], dtype=np.int64)
    if n >= len(labels):
        raise SslzooError(f"{what}={n} asks for at least as many images as the split has ({len(labels)}).")
    chosen, rest = train_test_split(
        np.arange(len(labels)), train_size=n, stratify=labels, random_state=SPLIT_SEED
    )
    return np.sort(chosen), np.sort(rest)


def _apply_subset(dd, subset: dict[str, int]):
    """``val`` carves a validation split from train (returned as ``test``); ``train``/``test`` keep a subset."""
    import datasets

    if "val" in subset:
        val, rest = _stratified(dd["train"], subset["val"], "val")
        dd = datasets.DatasetDict({"train": dd["train"].select(rest), "test": dd["train"].select(val)})
    out = {}
    for split, ds in dd.items():
        out[split] = ds.select(_stratified(ds, subset[split], split)[0]) if split in subset else ds
    return datasets.DatasetDict(out)


def resolve(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` for a registry name, ``hf:ORG/NAME[?opts]`` or ``folder:PATH``."""
    name = split_subset_options(name)[0]
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith("hf:"):
        repo_id, _, query = name[3:].partition("?")
        options = dict(parse_qsl(query))
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise SslzooError(
                f"{name!r} is not a Hub dataset id; write it as hf:ORG/NAME, e.g. hf:uoft-cs/cifar10."
            )
        return DatasetSpec(
            name=name,
            description=f"Hub dataset {repo_id}",
            splits="the Hub's splits (test carved from train if absent)",
            build=lambda: _load_hub_dataset(repo_id, options),
            availability=lambda: (not _hub_offline(), "Hub (cached after the first download)"),
        )
    if name.startswith("folder:"):
        root = Path(name[len("folder:") :]).expanduser()
        return DatasetSpec(
            name=name,
            description=f"image folder {root}",
            splits="train/ and test/ subfolders, or a stratified 20% test carved out",
            build=lambda: _build_folder(root),
            availability=lambda: (root.is_dir(), str(root)),
        )
    close = difflib.get_close_matches(name, [*REGISTRY, "hf:", "folder:"], n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise SslzooError(
        f"unknown dataset {name!r}.{hint} Known: {', '.join(dataset_names())}, or hf:ORG/NAME, or folder:PATH."
    )


def unreadable_files(name: str, strict: bool = False):
    """The image files a ``folder:`` dataset leaves out (a :class:`zoo.folders.UnreadableFiles`; empty for others).

    Args:
        name: Any dataset name; subset options (``?train=N``) are ignored: they select among readable images.
        strict: Raise when any file is unreadable (``--strict-images``) instead of returning them.

    Raises:
        SslzooError: ``strict`` and unreadable files (one line naming the first few).
    """
    from zoo.folders import UnreadableFiles, index_folder

    base = split_subset_options(name)[0]
    if not base.startswith("folder:"):
        return UnreadableFiles(name, [], 0)
    index = index_folder(Path(base[len("folder:") :]))
    total = len(index) + len(index.unreadable)
    found = UnreadableFiles(f"folder:{index.root}", index.unreadable, total, index.skipped_list)
    if strict and found.files:
        raise SslzooError(found.refusal())
    return found


def cache_root() -> Path:
    """Where converted datasets and decoded arrays live: ``$HF_DATASETS_CACHE/sslzoo``."""
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "sslzoo"


def _atomic_save(dd, target: Path) -> None:
    """Write a DatasetDict to ``target`` so that a killed conversion never leaves a half-written cache."""
    # Another process may finish the same conversion first; its copy is as good as ours (and may be mapped).
    with atomic_folder(target, replace_existing=False) as tmp:
        dd.save_to_disk(str(tmp))


def load_dataset(name: str, split: str | None = None):
    """Load a dataset by name.

    Args:
        name: A registry name (see :func:`dataset_names`), ``hf:ORG/NAME`` or ``folder:PATH``, optionally with
            subset options (``?train=N&test=M`` or ``?val=N``; see the module docstring).
        split: ``"train"`` or ``"test"``; ``None`` returns both.

    Returns:
        A ``datasets.DatasetDict`` (or one ``datasets.Dataset`` when ``split`` is given) whose rows have an
        ``image`` (PIL image) and a ``label`` (``ClassLabel`` int).

    Raises:
        SslzooError: unknown name, data not available, unreadable images, unknown split.
    """
    import datasets

    base, subset = split_subset_options(name)
    if subset:
        dd = _apply_subset(load_dataset(base), subset)
        if split is None:
            return dd
        if split not in dd:
            raise SslzooError(f"dataset {name!r} has no split {split!r}; its splits are {', '.join(dd)}.")
        return dd[split]
    spec = resolve(name)
    if spec.cache_key is not None:
        path = cache_root() / spec.cache_key
        if not (path / "dataset_dict.json").is_file():
            available, how = spec.availability()
            if not available:
                raise SslzooError(f"dataset {name!r} is not available: {how}.")
            _atomic_save(spec.build(), path)
        dd = datasets.load_from_disk(str(path))
    else:
        dd = spec.build()
    if split is None:
        return dd
    if split not in dd:
        raise SslzooError(f"dataset {name!r} has no split {split!r}; its splits are {', '.join(dd)}.")
    return dd[split]


def to_arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    """Decode a split once into arrays, cached on disk by the split's fingerprint.

    Args:
        ds: A ``datasets.Dataset`` from :func:`load_dataset`.

    Returns:
        ``images`` (N, H, W, C) uint8 (C is 1 or 3; images of mixed size are not supported here) and
        ``labels`` (N,) int64. The images array is memory-mapped from the cache after the first call.
    """
    cache = cache_root() / "arrays" / ds._fingerprint
    images_path, labels_path = cache / "images.npy", cache / "labels.npy"
    if images_path.is_file() and labels_path.is_file():
        return np.load(images_path, mmap_mode="r"), np.load(labels_path)
    from zoo.imaging import channels_of_mode, to_channels

    arrays = []
    for image in ds["image"]:
        arr = np.asarray(to_channels(image, channels_of_mode(image.mode)))
        arrays.append(arr[..., None] if arr.ndim == 2 else arr)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise SslzooError(
            f"images have {len(shapes)} different shapes (e.g. {sorted(shapes)[:2]}); resize them first "
            "or use an encoder's transform instead of to_arrays."
        )
    images = np.stack(arrays) if arrays else np.zeros((0, 1, 1, 1), np.uint8)
    labels = np.asarray(ds["label"], dtype=np.int64)
    for path, arr in ((images_path, images), (labels_path, labels)):
        save_npy_atomic(path, arr)
    return images, labels


def describe_dataset(name: str) -> dict[str, Any]:
    """Counts per split and per class: ``{"name", "source", "classes", "splits": {split: {"size", "per_class"}}}``."""
    spec = resolve(name)
    available, how = spec.availability()
    dd = load_dataset(name)
    first = next(iter(dd.values()))
    classes = list(first.features["label"].names)
    splits = {}
    for split, ds in dd.items():
        counts = np.bincount(np.asarray(ds["label"], dtype=np.int64), minlength=len(classes))
        splits[split] = {"size": len(ds), "per_class": dict(zip(classes, counts.tolist()))}
    return {
        "name": name,
        "source": how if available else spec.description,
        "classes": classes,
        "splits": splits,
    }


def save_sample_grid(name: str, out: str | Path, per_class: int = 8, split: str = "train") -> Path:
    """Save a PNG grid with ``per_class`` images of each class (one row per class) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = load_dataset(name, split=split)
    classes = ds.features["label"].names
    labels = np.asarray(ds["label"], dtype=np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.9 + 0.4), squeeze=False
    )
    for row, cls in enumerate(classes):
        idx = np.flatnonzero(labels == row)
        chosen = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for col in range(per_class):
            ax = axes[row][col]
            ax.axis("off")
            if col < len(chosen):
                image = ds[int(chosen[col])]["image"]
                ax.imshow(image, cmap="gray" if image.mode == "L" else None)
        axes[row][0].set_title(cls, fontsize=7, loc="left")
    fig.suptitle(f"{name} ({split})", fontsize=9)
    fig.tight_layout()
    return save_figure_atomic(fig, out, dpi=100)
