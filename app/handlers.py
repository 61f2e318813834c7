"""The page's callbacks: each turns a :class:`~app.backend.Backend` result into what the page shows.

Every handler returns a message for the page instead of raising: a :class:`~zoo.errors.SslzooError` (a file that is
not an image, a model that is not available offline, an empty gallery) becomes one line in the tab's message box,
and anything unexpected becomes one line too (with the traceback on the server's stderr). Every message names the
model and the gallery that produced the result. Pictures go to the page as files of a :class:`~app.tiles.TileStore`
(served in place by Gradio, never rewritten), so concurrent requests cannot see a half-written image.
"""

from __future__ import annotations

import functools
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.attention import head_colours, mask_overlay, overlay, threshold_mask, with_colour_bar
from app.backend import Backend, NeighbourResult
from app.embedding_map import map_svg
from app.gallery import COLLAPSE_SPREAD
from app.images import enlarge
from app.tiles import TileStore, safe_filename
from zoo.errors import SslzooError

DEFAULT_K = 10
DEFAULT_THRESHOLD = 0.6  # DINO's figures keep 60% of the attention mass
BROWSER_PAGE = 48
ALL_CLASSES = "all classes"
DISPLAY_SIDE = 320


def _fail(message: str) -> str:
    return f"⚠️ {message}"


def friendly(n_outputs: int) -> Callable:
    """Turn any exception in a handler into ``(warning message, None, None, …)`` so the page never breaks."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> tuple:
            try:
                return fn(*args, **kwargs)
            except SslzooError as exc:
                return (_fail(str(exc)), *([None] * (n_outputs - 1)))
            except Exception as exc:  # a bug, not the user's fault: one line here, the details in the log
                traceback.print_exc(file=sys.stderr)
                text = str(exc).strip().splitlines()
                reason = text[0] if text else type(exc).__name__
                message = _fail(f"unexpected error ({type(exc).__name__}: {reason}); see the server log.")
                return (message, *([None] * (n_outputs - 1)))

        return inner

    return wrap


def _display(image: Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    image = enlarge(image.convert("RGB"), min_side=side // 2)
    if max(image.size) > side:
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return image


def parse_size(value: Any) -> int | None:
    """The attention tab's input size: ``None`` for the native size, else pixels (at least 8)."""
    text = str(value or "").strip().lower().removesuffix("px").strip()
    if text in ("", "native", "0", "none"):
        return None
    try:
        size = int(float(text))
    except ValueError:
        raise SslzooError(
            f"input size {value!r} is not a number; choose one from the list or type pixels."
        ) from None
    if size < 8:
        raise SslzooError(f"input size {size} px is too small; use at least 8 px (or 'native').")
    return size


def _describe_input(image: Image.Image) -> str:
    mode = {"L": "grayscale", "RGB": "RGB"}.get(image.mode, image.mode)
    return f"{image.width}×{image.height} {mode}"


class Handlers:
    """The page's callbacks, each returning ``(message, *outputs)``."""

    def __init__(self, backend: Backend, tiles: TileStore | None = None) -> None:
        self.backend = backend
        self.tiles = tiles or TileStore()

    def _tile(self, gallery: str, index: int) -> str:
        return self.tiles.gallery_tile(gallery, index, self.backend.gallery(gallery).image)

    def _embedding_status(self, model: str, gallery: str, progress: Any) -> None:
        """One status line in the page while a gallery is embedded (only the first time, per model)."""
        if progress is not None and not self.backend.is_indexed(model, gallery):
            progress(0.0, desc=f"embedding gallery {gallery} under {model} (once; then cached)")
        self.backend.gallery_index(model, gallery, progress=False)

    # -------------------------------------------------------------------------------------------- neighbours
    def _neighbour_outputs(self, result: NeighbourResult) -> tuple:
        gal = self.backend.gallery(result.gallery)
        items = [
            (self._tile(result.gallery, r["index"]), f"{r['class']} · {r['similarity']:.4f}")
            for r in result.rows
        ]
        table = [[r["rank"], r["index"], r["class"], round(r["similarity"], 6)] for r in result.rows]
        votes = ", ".join(f"{c} {100 * s:.0f}%" for c, s in list(result.scores.items())[:3])
        seen = result.model_input if result.model_input is not None else result.query
        lines = []
        if result.collapsed:
            sims = [r["similarity"] for r in result.rows]
            lines.append(
                _fail(
                    f"**Features look collapsed: all neighbours within {COLLAPSE_SPREAD} cosine** "
                    f"({min(sims):.4f}–{max(sims):.4f}, and the gallery's own images sit as close to theirs) — "
                    "this encoder may not have learned; the ranking and the prediction below are mostly noise."
                )
            )
        if result.far_in_embedding:
            lines.append(
                _fail(
                    f"**This image is far from the gallery**: its best match has similarity {result.nearest:.3f}, "
                    f"below {result.in_domain:.3f}, which 99% of gallery images reach with their own nearest "
                    "neighbour. The prediction below is not reliable."
                )
            )
        elif result.out_of_domain:
            lines.append(
                _fail(
                    "**This image does not look like the gallery's images**: as the model sees it, its "
                    f"{'; '.join(result.unlike_gallery)} — outside the range of 99% of gallery images. "
                    "The prediction below is not reliable."
                )
            )
        lines.append(
            f"**k-NN prediction: {result.predicted}** ({votes}; weighted vote of the {len(result.rows)} nearest "
            f"gallery images, T = 0.07)"
        )
        query = (
            f"gallery image #{result.query_index}, labelled {gal.class_name(int(gal.labels[result.query_index]))}, left out of its own neighbours"
            if result.query_index is not None
            else "your upload"
        )
        lines.append(
            f"Model `{result.model}` · gallery `{result.gallery}` ({gal.split} split, {len(gal.labels):,} images) · "
            f"query: {query} · model input: {_describe_input(seen)}"
            + (f" ({result.note})" if result.note and result.query_index is None else "")
        )
        which = f"gallery-{result.query_index}" if result.query_index is not None else "upload"
        name = safe_filename("query", result.model, result.gallery, which)
        return "\n\n".join(lines), self.tiles.image(seen, name), items, table

    def neighbours(self, model: str, gallery: str, upload: Any, k: float, progress: Any = None) -> tuple:
        self._embedding_status(model, gallery, progress)
        result = self.backend.neighbours(model, gallery, upload, int(k or DEFAULT_K))
        return self._neighbour_outputs(result)

    def gallery_neighbours(
        self, model: str, gallery: str, index: float, k: float, progress: Any = None
    ) -> tuple:
        if index is None:
            raise SslzooError("no gallery image chosen: click one in the gallery browser or type its number.")
        self._embedding_status(model, gallery, progress)
        result = self.backend.neighbours_of_index(model, gallery, int(index), int(k or DEFAULT_K))
        result.model_input = self.backend.model_input(model, result.query)
        return self._neighbour_outputs(result)

    def requery(
        self,
        model: str,
        gallery: str,
        last: str | None,
        upload: Any,
        index: float,
        k: float,
        progress: Any = None,
    ) -> tuple:
        """After a change of model, gallery or k: the last query again, or nothing shown when there was none."""
        if last == "upload" and upload is not None:
            return self.neighbours(model, gallery, upload, k, progress)
        if last == "index" and index is not None:
            if int(index) >= len(self.backend.gallery(gallery).labels):
                raise SslzooError(
                    f"gallery image #{int(index)} is not in {gallery}; click an image in the gallery browser."
                )
            return self.gallery_neighbours(model, gallery, index, k, progress)
        return (f"Model `{model}` · gallery `{gallery}`: click a gallery image or upload one.", None, [], [])

    def gallery_browser(
        self, gallery: str, label: str | None, page: float | None, seed: float | None
    ) -> tuple:
        """One page of the gallery split, optionally one class only, in order or shuffled (``seed`` > 0).

        Returns:
            ``(message, items, indices, page)``: the page's tiles, their gallery indices and the page shown.
        """
        gal = self.backend.gallery(gallery)
        indices = np.arange(len(gal.labels))
        if label and label != ALL_CLASSES:
            if label not in gal.classes:
                raise SslzooError(f"{gallery} has no class {label!r}; pick one from the list.")
            indices = np.flatnonzero(gal.labels == gal.classes.index(label))
        if seed:
            indices = np.random.default_rng(int(seed)).permutation(indices)
        pages = max(1, -(-len(indices) // BROWSER_PAGE))
        page = int(np.clip(int(page or 1), 1, pages))
        shown = indices[(page - 1) * BROWSER_PAGE : page * BROWSER_PAGE].tolist()
        items = [(self._tile(gallery, i), f"#{i} · {gal.class_name(int(gal.labels[i]))}") for i in shown]
        which = "all classes" if not label or label == ALL_CLASSES else f"class {label}"
        order = "shuffled" if seed else "in order"
        message = (
            f"Gallery `{gal.name}` ({gal.split} split): {len(gal.labels):,} images, {len(gal.classes)} classes. "
            f"Showing {which}, {order}: page {page} of {pages} ({len(indices):,} images). Click one to query it."
        )
        return message, items, shown, page

    def class_choices(self, gallery: str) -> list[str]:
        return [ALL_CLASSES, *self.backend.gallery(gallery).classes]

    # -------------------------------------------------------------------------------------------- attention
    def attention(self, model: str, upload: Any, size: Any, threshold: float, progress: Any = None) -> tuple:
        t = float(DEFAULT_THRESHOLD if threshold is None else threshold)
        if not 0.0 < t <= 1.0:
            raise SslzooError(
                f"threshold t = {t} is outside (0, 1]; it is the fraction of attention mass kept."
            )
        result = self.backend.attention(model, upload, parse_size(size))
        maps = result.maps
        # Overlays are drawn on the picture at the model's input size (what it saw), enlarged with square pixels.
        seen = result.image.convert("L" if self.backend.encoder(model).in_chans == 1 else "RGB")
        shown = _display(seen.resize(result.input_size, Image.Resampling.BICUBIC))
        items: list[tuple[str, str]] = []

        def add(image: Image.Image, caption: str) -> None:
            name = safe_filename("attention", model, f"{result.input_size[0]}px", caption)
            items.append((self.tiles.image(image, name), caption))

        if result.kind == "attention":
            mean = maps.mean(axis=0)
            colours = head_colours(len(maps))
            add(with_colour_bar(overlay(shown, mean), float(mean.min()), float(mean.max())), "mean of heads")
            add(mask_overlay(shown, threshold_mask(mean, t), (255, 64, 64)), f"mean, mask t = {t:.2f}")
            for h, head in enumerate(maps, 1):
                add(with_colour_bar(overlay(shown, head), float(head.min()), float(head.max())), f"head {h}")
            for h, (mask, colour) in enumerate(zip(threshold_mask(maps, t), colours), 1):
                add(mask_overlay(shown, mask, colour), f"head {h}, mask t = {t:.2f}")
            what = (
                f"Model `{model}`: last block's [CLS] attention to each of the {maps.shape[1]}×{maps.shape[2]} "
                f"patches, {maps.shape[0]} heads, at {result.input_size[0]} px. Masks keep the most-attended "
                f"patches holding {100 * t:.0f}% of the mass, coloured and outlined as in DINO's "
                "visualize_attention.py (Caron et al. 2021); colour bars give the attention values."
            )
        else:
            sim = maps[0]
            add(
                with_colour_bar(
                    overlay(shown, sim, cmap="viridis"), float(sim.min()), float(sim.max()), "viridis"
                ),
                "similarity map (not attention)",
            )
            add(
                mask_overlay(shown, threshold_mask(np.clip(sim, 0, None), t), (255, 64, 64)),
                f"mask, t = {t:.2f}",
            )
            what = (
                f"Model `{model}` is a CNN, which has no attention: the map is the **cosine similarity of the global "
                f"(pooled) feature to the feature at each of the {maps.shape[1]}×{maps.shape[2]} positions** of the "
                f"last feature map, at {result.input_size[0]} px."
            )
        what += f" Input: {_describe_input(seen.resize(result.input_size))}" + (
            f", {result.note}." if result.note else "."
        )
        raw = {
            "kind": result.kind,
            "model": model,
            "heads": int(maps.shape[0]),
            "grid": [int(maps.shape[1]), int(maps.shape[2])],
            "input_size": list(result.input_size),
            "threshold": t,
            "maps": maps.tolist(),
        }
        return what, items, raw

    def refresh_attention(self, model: str, upload: Any, size: Any, threshold: float) -> tuple:
        """After a change of model: the attention of the image shown again, or cleared when there is none."""
        if upload is None:
            return f"Model `{model}`: pick an image, then Show attention.", [], None
        return self.attention(model, upload, size, threshold)

    # -------------------------------------------------------------------------------------------- other tabs
    def embedding_map(self, model: str, gallery: str, method: str, progress: Any = None) -> tuple:
        """The gallery's 2-D map as an interactive SVG, and its coordinates as a CSV file."""
        self._embedding_status(model, gallery, progress)
        proj = self.backend.projection(model, gallery, (method or "PCA").lower())
        coords, labels, classes, indices = proj["coords"], proj["labels"], proj["classes"], proj["indices"]
        if progress is not None:
            progress(0.5, desc=f"writing {len(indices):,} gallery thumbnails for the map (once)")
        urls = {int(i): f"gradio_api/file={self._tile(gallery, int(i))}" for i in indices}
        name = proj["method"].upper()
        axes = ("", "")
        if proj["explained"] is not None:
            axes = tuple(f"PC{a} ({100 * v:.1f}% of variance)" for a, v in zip((1, 2), proj["explained"]))
        title = f"{gallery} under {model}: {name} of {len(coords):,} embeddings"
        svg = map_svg(coords, indices, labels, classes, urls.__getitem__, title, axes)
        lines = ["index,label,class,x,y"]
        lines += [
            f'{i},{int(y)},"{classes[int(y)]}",{x0:.6g},{x1:.6g}'
            for i, y, (x0, x1) in zip(indices, labels, coords)
        ]
        filename = safe_filename("embedding-map", name.lower(), model, gallery, suffix=".csv")
        csv = self.tiles.data(("\n".join(lines) + "\n").encode(), filename)
        message = (
            f"Model `{model}` · gallery `{gallery}`: {name} of {len(coords):,} gallery embeddings, coloured by "
            "label. Hover a point to see its image; click it to query its neighbours."
        )
        if len(coords) < len(self.backend.gallery(gallery).labels):
            message += f" t-SNE runs on a random {len(coords):,}-image subset (seed 0) to stay fast on a CPU."
        return message, svg, csv

    def leaderboard(self) -> tuple:
        from evaluators.leaderboard import save_chart
        from zoo.scores import format_points, points

        sourced, markdown = self.backend.leaderboard()
        if not sourced:
            return markdown, None, None
        records, sources = [r for _, r in sourced], [s for s, _ in sourced]
        with tempfile.TemporaryDirectory() as tmp:  # concurrent refreshes each draw into their own folder
            drawn = Image.open(save_chart(records, Path(tmp) / "leaderboard.png", sources)).convert("RGB")
        chart = self.tiles.image(drawn)
        rows = [
            [
                r.dataset,
                r.model,
                source,
                r.protocol,
                # Every score in percent, two decimals, as in the table above it (zoo.scores).
                *(points(r.metrics[m]) if m in r.metrics else np.nan for m in ("top1", "top5")),
                ", ".join(
                    f"{k}={format_points(points(v))}"
                    for k, v in r.metrics.items()
                    if k not in ("top1", "top5")
                ),
                r.created,
            ]
            for source, r in sourced
        ]
        return markdown, chart, rows
