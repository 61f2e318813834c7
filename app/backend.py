"""What the app computes, without any Gradio: encoders, gallery indexes, neighbours, attention, maps, leaderboard.

:class:`Backend` keeps the loaded encoders and the gallery indexes between requests. Gallery embeddings come from
the evaluators' feature cache (:func:`evaluators.features.extract_features`, keyed by encoder identity, dataset,
split and preprocessing), so they are computed once per (model, gallery) and reused across restarts; they are
L2-normalised and searched exactly (one matrix product; a single query on 10k × 96 takes well under a millisecond,
where a faiss flat index spends tens of milliseconds starting its threads on a busy CPU), so scores are cosine
similarities. A gallery
image is never its own neighbour: its ``k`` neighbours are the ``k`` most similar *other* images, and all of them
vote. Everything in a :class:`Backend` is shared by concurrent requests and only read after it is built.

Every user mistake (a model that is not available offline, an empty gallery, a file that is not an image) raises
:class:`~zoo.errors.SslzooError` with one line; the UI shows that line in the page.

>>> backend = Backend()  # doctest: +SKIP
>>> result = backend.neighbours_of_index("runs/dino-digits", "digits", index=0, k=5)  # doctest: +SKIP
>>> len(result.rows), 0 in [r["index"] for r in result.rows]  # doctest: +SKIP
(5, False)
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from app.attention import attention_input, find_transform, is_vit, native_size, patch_size, similarity_map
from app.domain import grey
from app.gallery import Gallery, GalleryIndex, NeighbourResult, nearest_other, neighbour_spread, small_pixels
from app.images import read_image
from zoo.errors import SslzooError

GALLERY_SPLIT = "test"
KNN_TEMPERATURE = 0.07  # DINO's k-NN temperature (eval_knn.py)
MAX_INPUT_SIZE = 518


@dataclass
class AttentionResult:
    """Maps ``(heads, h, w)`` over the patch grid (one map for a CNN's similarity map) and what they show."""

    kind: str  # "attention" (ViT [CLS] attention) or "similarity" (CNN: global vs. spatial feature)
    maps: np.ndarray
    image: Image.Image
    input_size: tuple[int, int]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _normalise(feats: np.ndarray) -> np.ndarray:
    feats = np.asarray(feats, dtype=np.float32)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.maximum(norms, 1e-12)


def _check_k(k: Any) -> int:
    try:
        value = int(k)
    except (TypeError, ValueError):
        raise SslzooError(f"k = {k!r} is not a whole number; ask for 1 or more neighbours.") from None
    if value < 1:
        raise SslzooError(f"k = {value}: ask for at least 1 neighbour.")
    return value


def input_side(size: Any, native: int, patch: int) -> int:
    """The side an attention input gets: ``size`` (``None``/empty: ``native``) rounded to a multiple of ``patch``,
    at least two patches and at most the largest multiple of the patch within :data:`MAX_INPUT_SIZE`.

    >>> input_side(99999, 224, 16), input_side(100, 224, 14), input_side(None, 224, 16)
    (512, 98, 224)
    """
    try:
        value = float(size) if size not in (None, "") else float(native)
    except (TypeError, ValueError):
        raise SslzooError(
            f"image size {size!r} is not a number; give a side length in pixels, e.g. 224."
        ) from None
    if not np.isfinite(value) or value <= 0:
        raise SslzooError(f"image size {size!r} must be a positive number of pixels, e.g. 224.")
    largest = MAX_INPUT_SIZE // patch * patch  # clipping after rounding must keep a multiple of the patch
    return int(min(max(round(value / patch) * patch, 2 * patch), largest))


class Backend:
    """Loaded encoders, galleries and indexes, shared by all requests (thread-safe; model work is queued).

    Args:
        leaderboard_dir: The one folder of leaderboard records to show (default: the repository's committed records
            and the user's own, each labelled; see :func:`evaluators.records.read_sourced_records`).
        runs_dir: Folder whose sub-folders with an exported ``encoder/`` are offered as models.
        extra_models: Model strings always offered first (``--model``).
        use_feature_cache: Read and write the evaluators' feature cache for gallery embeddings.
        max_encoders: Encoders kept in memory (least recently used are dropped).
    """

    def __init__(
        self,
        leaderboard_dir: str | Path | None = None,
        runs_dir: str | Path = "runs",
        extra_models: list[str] | tuple[str, ...] = (),
        use_feature_cache: bool = True,
        max_encoders: int = 3,
    ) -> None:
        self.leaderboard_dir = Path(leaderboard_dir) if leaderboard_dir else None
        self.runs_dir = Path(runs_dir)
        self.extra_models = [m for m in extra_models if m]
        self.use_feature_cache = use_feature_cache
        self.max_encoders = max_encoders
        self._encoders: OrderedDict[str, Any] = OrderedDict()
        self._galleries: dict[str, Gallery] = {}
        self._indexes: dict[tuple[str, str], GalleryIndex] = {}
        self._resized: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._lock = threading.RLock()  # loading encoders and galleries
        self._index_lock = (
            threading.Lock()
        )  # embedding a gallery (minutes): must not block the gallery browser

    # ------------------------------------------------------------------------------------------ choices
    def model_choices(self) -> list[str]:
        """Models to offer: ``--model``, local runs with an exported encoder, then registry models on disk."""
        from zoo.registry import is_cached, list_models

        runs = []
        if self.runs_dir.is_dir():
            runs = [
                str(p.parent) if p.name == "encoder" else str(p)
                for p in sorted(self.runs_dir.glob("*/encoder")) + sorted(self.runs_dir.glob("*"))
                if (p / "config.json").is_file() and not p.name.startswith(".")
            ]
        registry = []
        for entry in list_models():
            try:
                if is_cached(entry):
                    registry.append(entry.name)
            except Exception:  # an entry we cannot check is simply not offered
                continue
        return list(dict.fromkeys([*self.extra_models, *runs, *registry]))

    @staticmethod
    def gallery_choices() -> list[str]:
        from zoo.datasets import dataset_names, resolve

        return [n for n in dataset_names() if resolve(n).availability()[0]]

    # ------------------------------------------------------------------------------------------ loading
    def encoder(self, name: str) -> Any:
        """The encoder for a registry name, ``hf-hub:`` id or folder, loaded once (on the CPU)."""
        name = (name or "").strip()
        if not name:
            raise SslzooError("no model chosen: pick one from the list or type a name, folder or hf-hub: id.")
        with self._lock:
            if name in self._encoders:
                self._encoders.move_to_end(name)
                return self._encoders[name]
            import zoo

            try:
                enc = zoo.load(name, device="cpu")
            except SslzooError:
                raise
            except Exception as exc:  # the loaders raise many types; the page needs one line
                raise SslzooError(f"cannot load model {name!r}: {_one_line(exc)}") from None
            self._encoders[name] = enc
            while len(self._encoders) > self.max_encoders:
                self._encoders.popitem(last=False)
            return enc

    def add_encoder(self, name: str, encoder: Any) -> None:
        """Offer an already-built encoder (a ``zoo.Encoder``) under ``name``."""
        with self._lock:
            self._encoders[name] = encoder
            if name not in self.extra_models:
                self.extra_models.insert(0, name)

    def gallery(self, name: str) -> Gallery:
        """The gallery dataset's test split (``digits``, ``fashion-mnist``, ``folder:PATH``, ``hf:ORG/NAME``)."""
        name = (name or "").strip()
        if not name:
            raise SslzooError("no gallery chosen: pick a dataset, or type folder:PATH or hf:ORG/NAME.")
        with self._lock:
            if name not in self._galleries:
                import zoo

                try:
                    ds = zoo.load_dataset(name, split=GALLERY_SPLIT)
                except SslzooError:
                    raise
                except Exception as exc:
                    raise SslzooError(f"cannot load gallery {name!r}: {_one_line(exc)}") from None
                if len(ds) == 0:
                    raise SslzooError(
                        f"gallery {name!r} has no images in its {GALLERY_SPLIT} split; add some."
                    )
                labels = np.asarray(ds["label"], dtype=np.int64)
                classes = list(ds.features["label"].names)
                self._galleries[name] = Gallery(name, GALLERY_SPLIT, ds, labels, classes, small_pixels(ds))
            return self._galleries[name]

    def is_indexed(self, model: str, gallery: str) -> bool:
        """Whether the gallery is already embedded under ``model`` in memory (a query will not embed it)."""
        with self._lock:
            enc = self._encoders.get((model or "").strip())
        return enc is not None and (enc.identity, (gallery or "").strip()) in self._indexes

    def gallery_index(self, model: str, gallery: str, progress: bool = True) -> GalleryIndex:
        """Embeddings of the gallery under ``model`` (from the feature cache when there), built once."""
        from evaluators.features import extract_features

        enc = self.encoder(model)
        gal = self.gallery(gallery)
        key = (enc.identity, gal.name)
        with self._index_lock:
            if key not in self._indexes:
                feats = extract_features(
                    enc, gal.name, gal.split, use_cache=self.use_feature_cache, progress=progress
                )
                index = GalleryIndex(_normalise(feats.feats), feats.cached)
                index.nearest = nearest_other(index)
                index.spread = neighbour_spread(index.feats)
                self._indexes[key] = index
            return self._indexes[key]

    # ------------------------------------------------------------------------------------------ neighbours
    @torch.inference_mode()
    def embed_image(self, model: str, image: Image.Image) -> np.ndarray:
        """One image's L2-normalised embedding ``(D,)``."""
        enc = self.encoder(model)
        return _normalise(np.asarray(enc.embed([image], batch_size=1), dtype=np.float32))[0]

    def model_input(self, model: str, image: Image.Image) -> Image.Image:
        """The picture the encoder sees: its own transform applied, then the normalisation undone (8-bit)."""
        from torchvision import transforms

        enc = self.encoder(model)
        x = enc.transform(image)
        norm = find_transform(enc.transform, transforms.Normalize)
        if norm is not None:
            mean = torch.as_tensor(norm.mean, dtype=x.dtype).view(-1, 1, 1)
            std = torch.as_tensor(norm.std, dtype=x.dtype).view(-1, 1, 1)
            x = x * std + mean
        pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)

    def _neighbour_rows(
        self, model: str, gallery: str, query: np.ndarray, k: int, exclude: int | None
    ) -> tuple[list[dict[str, Any]], str, dict[str, float]]:
        """The ``k`` nearest gallery images other than ``exclude``, and their weighted vote (all ``k`` vote)."""
        from evaluators.knn import knn_vote

        gal = self.gallery(gallery)
        index = self.gallery_index(model, gallery)
        sims, idx = index.search(query[None], k + (exclude is not None))
        found = [(float(s), int(i)) for s, i in zip(sims[0], idx[0]) if i >= 0 and i != exclude][:k]
        rows = [
            {
                "rank": rank,
                "index": i,
                "label": int(gal.labels[i]),
                "class": gal.class_name(int(gal.labels[i])),
                "similarity": s,
            }
            for rank, (s, i) in enumerate(found, 1)
        ]
        if not rows:
            raise SslzooError(f"gallery {gallery!r} has no image other than the query to compare with.")
        scores = knn_vote(
            torch.tensor([[r["similarity"] for r in rows]]),
            torch.tensor([[r["label"] for r in rows]]),
            len(gal.classes),
            KNN_TEMPERATURE,
        )[0]
        share = (scores / scores.sum()).tolist()
        ranked = {
            gal.class_name(c): share[c] for c in np.argsort(-np.asarray(share), kind="stable") if share[c] > 0
        }
        return rows, next(iter(ranked)), ranked

    def neighbours(self, model: str, gallery: str, upload: Any, k: int = 10) -> NeighbourResult:
        """The ``k`` nearest gallery images to an uploaded image and the k-NN label they vote for."""
        k = _check_k(k)
        image, note = read_image(upload)
        query = self.embed_image(model, image)
        rows, predicted, scores = self._neighbour_rows(model, gallery, query, k, exclude=None)
        index = self.gallery_index(model, gallery)
        seen = self.model_input(model, image)
        return NeighbourResult(
            rows,
            predicted,
            scores,
            image,
            model,
            gallery,
            k,
            model_input=seen,
            nearest=rows[0]["similarity"],
            in_domain=index.in_domain_threshold(),
            note=note,
            unlike_gallery=self.gallery(gallery).pixel_range().outside(grey(seen)),
            gallery_spread=index.spread,
        )

    def neighbours_of_index(self, model: str, gallery: str, index: int, k: int = 10) -> NeighbourResult:
        """The ``k`` nearest *other* gallery images to gallery image ``index`` and their k-NN vote."""
        k = _check_k(k)
        gal = self.gallery(gallery)
        gallery_index = self.gallery_index(model, gallery)
        query_image = gal.image(int(index)).convert("RGB")
        rows, predicted, scores = self._neighbour_rows(
            model, gallery, gallery_index.feats[int(index)], k, exclude=int(index)
        )
        label = gal.class_name(int(gal.labels[int(index)]))
        return NeighbourResult(
            rows,
            predicted,
            scores,
            query_image,
            model,
            gallery,
            k,
            query_index=int(index),
            nearest=rows[0]["similarity"],
            in_domain=gallery_index.in_domain_threshold(),
            note=f"gallery image #{int(index)}, labelled {label}",
            gallery_spread=gallery_index.spread,
        )

    # ------------------------------------------------------------------------------------------ attention
    def _encoder_at_size(self, model: str, size: int) -> Any:
        """The encoder itself at its native size; a copy with resampled position embeddings otherwise."""
        enc = self.encoder(model)
        if not is_vit(enc) or size == native_size(enc):
            return enc
        key = (enc.identity, size)
        with self._lock:
            if key not in self._resized:
                from zoo.encoder import Encoder

                resized = copy.deepcopy(enc.model)
                resized.set_input_size(img_size=(size, size))  # bicubic resampling of the position embeddings
                self._resized[key] = Encoder(resized, enc.entry, enc.transform, f"{enc.identity}@{size}px")
                while len(self._resized) > 2:
                    self._resized.popitem(last=False)
            return self._resized[key]

    @torch.inference_mode()
    def attention(self, model: str, upload: Any, size: int | None = None) -> AttentionResult:
        """[CLS] attention of the last block per head (ViT), or the global-vs-spatial similarity map (CNN).

        Args:
            model: Model string.
            upload: Anything :func:`~app.images.read_image` takes.
            size: Input side length; ViTs round it to a multiple of the patch size. ``None``: the native size.
        """
        image, note = read_image(upload)
        enc = self.encoder(model)
        native = native_size(enc)
        patch = patch_size(enc)
        size = input_side(size, native, patch)
        x = attention_input(enc, image, size)
        if is_vit(enc):
            sized = self._encoder_at_size(model, size)
            maps = np.asarray(sized.attention_maps(x.to(sized.dtype)), dtype=np.float64)[0]
            return AttentionResult("attention", maps, image, (size, size), note)
        net = enc.model
        if not hasattr(net, "forward_features"):
            raise SslzooError(
                f"{model} has no spatial feature map (forward_features); the attention tab needs a ViT or a CNN."
            )
        features = net.forward_features(x.to(enc.dtype))
        if features.ndim != 4:
            raise SslzooError(
                f"{model}'s forward_features gives shape {tuple(features.shape)}, not a (N, C, h, w) feature map."
            )
        pooled = (
            net.forward_head(features, pre_logits=True)
            if hasattr(net, "forward_head")
            else features.mean((2, 3))
        )
        maps = similarity_map(features, pooled).numpy().astype(np.float64)
        return AttentionResult("similarity", maps, image, (size, size), note)

    # ------------------------------------------------------------------------------------------ embedding map
    def projection(self, model: str, gallery: str, method: str = "pca", seed: int = 0) -> dict[str, Any]:
        """2-D map of the gallery embeddings (:func:`app.embedding_map.project`: PCA, or t-SNE of a subset).

        Returns:
            ``{"coords": (M, 2), "indices": (M,), "labels": (M,), "classes", "method", "explained"}``;
            ``explained`` is PCA's explained-variance ratio of the two axes (``None`` for t-SNE).
        """
        from app.embedding_map import project

        gal = self.gallery(gallery)
        coords, indices, method, explained = project(self.gallery_index(model, gallery).feats, method, seed)
        return {
            "coords": coords,
            "indices": indices,
            "labels": gal.labels[indices],
            "classes": gal.classes,
            "method": method,
            "explained": explained,
        }

    # ------------------------------------------------------------------------------------------ leaderboard
    def leaderboard(self) -> tuple[list[tuple[str, Any]], str]:
        """The recorded results with where each comes from (``"repository"`` / ``"yours"``), and their markdown
        rendering with a ``source`` column: ``([(source, record), ...], markdown)``."""
        from evaluators.leaderboard import render_markdown
        from evaluators.records import read_sourced_records

        sourced = read_sourced_records(self.leaderboard_dir)
        return sourced, render_markdown([r for _, r in sourced], [s for s, _ in sourced])
