"""The Gradio Blocks page: Neighbours, Attention, Embedding map and Leaderboard tabs over one :class:`Backend`.

Every handler returns a message for the page instead of raising: a :class:`~zoo.errors.SslzooError` (a file that is
not an image, a model that is not available offline, an empty gallery) becomes one line in the tab's message box,
and anything unexpected becomes one line too (with the traceback on the server's stderr). Requests go through
Gradio's queue, and all model work shares one concurrency group (``"cpu"``), so it runs one request at a time and
the CPU is never oversubscribed; the gallery browser and the leaderboard stay responsive beside it.

Each action is also an API endpoint for ``gradio_client`` (``/neighbours``, ``/gallery_neighbours``,
``/attention``, ``/embedding_map``, ``/leaderboard``, ``/gallery_browser``).

>>> demo = build_app(Backend(), model="runs/dino-digits", gallery="digits")  # doctest: +SKIP
>>> launch(demo, host="127.0.0.1", port=7860)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio reads it
import gradio as gr

from app.attention import mask_overlay, overlay, threshold_mask
from app.backend import Backend
from app.images import enlarge, example_photos
from zoo.errors import SslzooError

DEFAULT_K = 10
DEFAULT_THRESHOLD = 0.6  # DINO's figures keep 60% of the attention mass
BROWSER_PER_CLASS = 6
BROWSER_MAX = 60
DISPLAY_SIDE = 320
SIZE_CHOICES = ["native", "56", "112", "224", "320", "448"]
THEME_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")  # no web fonts: the app must work offline
CSS = ".sslzoo-message p { margin: 0.2em 0; }"
# Gradio hands this tracker to a handler and mirrors its tqdm bars (the gallery embedding) in the page; model work
# runs one request at a time (concurrency group "cpu"), so sharing one tracker is safe.
PROGRESS = gr.Progress(track_tqdm=True)


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
            except (
                Exception
            ) as exc:  # a bug, not the user's fault: say so in one line, keep the details in the log
                traceback.print_exc(file=sys.stderr)
                text = str(exc).strip().splitlines()
                reason = text[0] if text else type(exc).__name__
                return (_fail(f"unexpected error ({type(exc).__name__}: {reason}); see the server log."),) + (
                    None,
                ) * (n_outputs - 1)

        return inner

    return wrap


def _display(image: Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    image = enlarge(image.convert("RGB"), min_side=side // 2)
    if max(image.size) > side:
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return image


def _parse_size(value: Any) -> int | None:
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


# ------------------------------------------------------------------------------------------------ handlers
class Handlers:
    """The page's callbacks, each returning ``(message, *outputs)``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        # Files handed to the page (map CSV, leaderboard chart); Gradio copies each into its own cache.
        self.workdir = Path(tempfile.mkdtemp(prefix="sslzoo-app-"))

    def _neighbour_outputs(self, result, model: str, gallery: str) -> tuple:
        gal = self.backend.gallery(gallery)
        items = [
            (_display(gal.image(r["index"]), 160), f"{r['similarity']:.4f} · {r['class']}")
            for r in result.rows
        ]
        table = [[r["rank"], r["index"], r["class"], round(r["similarity"], 6)] for r in result.rows]
        votes = ", ".join(f"{c} {100 * s:.0f}%" for c, s in list(result.scores.items())[:3])
        cached = (
            " (gallery embeddings from the feature cache)"
            if self.backend.gallery_index(model, gallery).cached
            else ""
        )
        lines = [
            f"**k-NN prediction: {result.predicted}** ({votes}; weighted vote of {len(result.rows)} neighbours, "
            f"T = 0.07){cached}",
        ]
        if result.note:
            lines.append(f"Query: {result.note}.")
        return "\n\n".join(lines), _display(result.query), items, table

    def neighbours(self, model: str, gallery: str, upload: Any, k: float, progress: Any = PROGRESS) -> tuple:
        result = self.backend.neighbours(model, gallery, upload, int(k or DEFAULT_K))
        return self._neighbour_outputs(result, model, gallery)

    def gallery_neighbours(
        self, model: str, gallery: str, index: float, k: float, progress: Any = PROGRESS
    ) -> tuple:
        if index is None:
            raise SslzooError("no gallery image chosen: click one in the gallery browser or type its number.")
        result = self.backend.neighbours_of_index(model, gallery, int(index), int(k or DEFAULT_K))
        return self._neighbour_outputs(result, model, gallery)

    def gallery_browser(self, gallery: str) -> tuple:
        """Up to :data:`BROWSER_PER_CLASS` images per class (at most :data:`BROWSER_MAX`), and their indices."""
        gal = self.backend.gallery(gallery)
        picked: list[int] = []
        for c in range(len(gal.classes)):
            picked += np.flatnonzero(gal.labels == c)[:BROWSER_PER_CLASS].tolist()
        picked = sorted(picked)[:BROWSER_MAX] or list(range(min(BROWSER_MAX, len(gal.labels))))
        items = [(_display(gal.image(i), 96), f"#{i} · {gal.class_name(int(gal.labels[i]))}") for i in picked]
        message = f"{gal.name} ({gal.split} split): {len(gal.labels)} images, {len(gal.classes)} classes."
        return message, items, picked

    def attention(
        self, model: str, upload: Any, size: Any, threshold: float, progress: Any = PROGRESS
    ) -> tuple:
        t = float(DEFAULT_THRESHOLD if threshold is None else threshold)
        if not 0.0 < t <= 1.0:
            raise SslzooError(
                f"threshold t = {t} is outside (0, 1]; it is the fraction of attention mass kept."
            )
        result = self.backend.attention(model, upload, _parse_size(size))
        shown = _display(result.image)
        maps = result.maps
        items: list[tuple[Image.Image, str]] = []
        if result.kind == "attention":
            mean = maps.mean(axis=0)
            items.append((overlay(shown, mean), "mean of heads"))
            items.append((mask_overlay(shown, threshold_mask(mean, t)), f"mean, mask t={t:.2f}"))
            for h, head in enumerate(maps, 1):
                items.append((overlay(shown, head), f"head {h}"))
            for h, mask in enumerate(threshold_mask(maps, t), 1):
                items.append((mask_overlay(shown, mask), f"head {h}, mask"))
            what = (
                f"Last block's [CLS] attention to each of the {maps.shape[1]}×{maps.shape[2]} patches, "
                f"{maps.shape[0]} heads, at {result.input_size[0]} px. Masks keep the most-attended patches "
                f"holding {100 * t:.0f}% of the mass (DINO, Caron et al. 2021)."
            )
        else:
            items.append((overlay(shown, maps[0], cmap="viridis"), "similarity map (not attention)"))
            items.append(
                (mask_overlay(shown, threshold_mask(np.clip(maps[0], 0, None), t)), f"mask, t = {t:.2f}")
            )
            what = (
                "This is a CNN, which has no attention: the map is the **cosine similarity of the global (pooled) "
                f"feature to the feature at each of the {maps.shape[1]}×{maps.shape[2]} positions** of the last "
                f"feature map, at {result.input_size[0]} px."
            )
        if result.note:
            what += f" Input: {result.note}."
        raw = {
            "kind": result.kind,
            "heads": int(maps.shape[0]),
            "grid": [int(maps.shape[1]), int(maps.shape[2])],
            "input_size": list(result.input_size),
            "threshold": t,
            "maps": maps.tolist(),
        }
        return what, items, raw

    def embedding_map(self, model: str, gallery: str, method: str, progress: Any = PROGRESS) -> tuple:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        proj = self.backend.projection(model, gallery, (method or "PCA").lower())
        coords, labels, classes = proj["coords"], proj["labels"], proj["classes"]
        fig, ax = plt.subplots(figsize=(8.5, 6), dpi=100)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for c, name in enumerate(classes):
            sel = labels == c
            if sel.any():
                ax.scatter(*coords[sel].T, s=8, color=cmap(c % cmap.N), label=name, alpha=0.8, linewidths=0)
        ax.legend(
            fontsize=7,
            markerscale=2,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            ncol=1 + len(classes) // 25,
        )
        title = f"{gallery} under {model}: {proj['method'].upper()} of {len(coords)} embeddings"
        if proj["explained"] is not None:
            ax.set_xlabel(f"PC1 ({100 * proj['explained'][0]:.1f}% of variance)")
            ax.set_ylabel(f"PC2 ({100 * proj['explained'][1]:.1f}% of variance)")
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        fig.canvas.draw()
        image = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")
        plt.close(fig)
        csv = self.workdir / f"embedding-map-{proj['method']}.csv"
        lines = ["index,label,class,x,y"]
        lines += [
            f'{i},{int(y)},"{classes[int(y)]}",{x0:.6g},{x1:.6g}'
            for i, y, (x0, x1) in zip(proj["indices"], labels, coords)
        ]
        csv.write_text("\n".join(lines) + "\n")
        message = f"{proj['method'].upper()} of {len(coords)} gallery embeddings, coloured by label."
        if len(coords) < len(self.backend.gallery(gallery).labels):
            message += f" t-SNE runs on a random {len(coords)}-image subset (seed 0) to stay fast on a CPU."
        return message, image, str(csv)

    def leaderboard(self) -> tuple:
        from evaluators.leaderboard import save_chart

        records, markdown = self.backend.leaderboard()
        if not records:
            return markdown, None, None
        chart = save_chart(records, self.workdir / "leaderboard.png")
        rows = [
            [
                r.dataset,
                r.model,
                r.protocol,
                *(round(float(r.metrics.get(m, np.nan)), 4) for m in ("top1", "top5")),
                ", ".join(f"{k}={v:.4g}" for k, v in r.metrics.items() if k not in ("top1", "top5")),
                r.created,
            ]
            for r in records
        ]
        return markdown, str(chart), rows


# ------------------------------------------------------------------------------------------------ page
def build_app(backend: Backend | None = None, model: str | None = None, gallery: str | None = None):
    """The Blocks page (not launched). ``model``/``gallery`` preselect the dropdowns."""
    backend = backend or Backend()
    handlers = Handlers(backend)
    models = backend.model_choices()
    if model and model not in models:
        models.insert(0, model)
    galleries = backend.gallery_choices()
    if gallery and gallery not in galleries:
        galleries.insert(0, gallery)
    model = model or (models[0] if models else None)
    gallery = gallery or ("digits" if "digits" in galleries else (galleries[0] if galleries else None))

    with gr.Blocks(title="sslzoo: neighbours and attention maps") as demo:
        gr.Markdown(
            "# sslzoo\nNearest neighbours, attention maps and embedding maps of self-supervised image encoders. "
            "Pick a model (registry name, run folder or `hf-hub:ORG/NAME`) and a gallery dataset."
        )
        with gr.Row():
            model_box = gr.Dropdown(
                models,
                value=model,
                label="model",
                allow_custom_value=True,
                scale=2,
                info="registry names on this machine, local runs, or type a folder / hf-hub:ORG/NAME",
            )
            gallery_box = gr.Dropdown(
                galleries,
                value=gallery,
                label="gallery",
                allow_custom_value=True,
                scale=1,
                info="searched split: test; or type folder:PATH / hf:ORG/NAME",
            )
        with gr.Tabs():
            with gr.Tab("Neighbours", id="neighbours"):
                browser_indices = gr.State([])
                with gr.Row():
                    with gr.Column(scale=1):
                        query = gr.Image(
                            label="query image (upload)",
                            type="filepath",
                            image_mode=None,
                            sources=["upload", "clipboard"],
                            height=240,
                            elem_id="query-image",
                        )
                        k_slider = gr.Slider(1, 50, value=DEFAULT_K, step=1, label="neighbours k")
                        with gr.Row():
                            search_btn = gr.Button("Search with the upload", variant="primary")
                            index_box = gr.Number(
                                None, label="or gallery image #", precision=0, minimum=0, scale=0
                            )
                        browser = gr.Gallery(
                            label="gallery: click to query",
                            buttons=[],
                            columns=6,
                            height=330,
                            allow_preview=False,
                            elem_id="gallery-browser",
                            format="png",
                        )
                    with gr.Column(scale=2):
                        nb_message = gr.Markdown(elem_classes="sslzoo-message", elem_id="neighbours-message")
                        with gr.Row():
                            query_shown = gr.Image(label="query", height=200, interactive=False, scale=1)
                            neighbours_gallery = gr.Gallery(
                                label="neighbours: cosine similarity · label",
                                columns=5,
                                height=330,
                                elem_id="neighbours-gallery",
                                format="png",
                                scale=3,
                            )
                        table = gr.Dataframe(
                            headers=["rank", "index", "label", "similarity"],
                            label="neighbours",
                            interactive=False,
                        )
                nb_outputs = [nb_message, query_shown, neighbours_gallery, table]
                search_btn.click(
                    friendly(4)(handlers.neighbours),
                    [model_box, gallery_box, query, k_slider],
                    nb_outputs,
                    api_name="neighbours",
                    preprocess=False,  # raw upload payload: read_image explains what is wrong with it
                    concurrency_id="cpu",
                )
                index_box.submit(
                    friendly(4)(handlers.gallery_neighbours),
                    [model_box, gallery_box, index_box, k_slider],
                    nb_outputs,
                    api_name="gallery_neighbours",
                    concurrency_id="cpu",
                )

                def pick(indices: list[int], evt: gr.SelectData) -> int | None:
                    return indices[evt.index] if indices and 0 <= evt.index < len(indices) else None

                browser.select(pick, [browser_indices], [index_box], api_visibility="private").then(
                    friendly(4)(handlers.gallery_neighbours),
                    [model_box, gallery_box, index_box, k_slider],
                    nb_outputs,
                    api_visibility="private",
                    concurrency_id="cpu",
                )

            with gr.Tab("Attention", id="attention"):
                with gr.Row():
                    with gr.Column(scale=1):
                        attn_image = gr.Image(
                            label="image",
                            type="filepath",
                            image_mode=None,
                            sources=["upload", "clipboard"],
                            height=260,
                            elem_id="attention-image",
                        )
                        gr.Examples(
                            [[p] for p in example_photos()],
                            inputs=[attn_image],
                            label="scikit-image photos",
                            elem_id="attention-examples",
                            examples_per_page=8,
                        )
                        size_box = gr.Dropdown(
                            SIZE_CHOICES,
                            value="native",
                            label="input size (px)",
                            allow_custom_value=True,
                            info="ViTs round it to a multiple of the patch size; position embeddings are resampled",
                        )
                        threshold = gr.Slider(
                            0.05,
                            1.0,
                            value=DEFAULT_THRESHOLD,
                            step=0.05,
                            label="mask threshold t",
                            info="keep the patches holding this fraction of the attention mass",
                        )
                        attn_btn = gr.Button("Show attention", variant="primary")
                    with gr.Column(scale=2):
                        attn_message = gr.Markdown(elem_classes="sslzoo-message", elem_id="attention-message")
                        overlays = gr.Gallery(
                            label="overlays",
                            columns=4,
                            object_fit="contain",
                            height=520,
                            elem_id="attention-gallery",
                            format="png",
                        )
                        with gr.Accordion("raw maps (JSON)", open=False):
                            raw_maps = gr.JSON(label="maps (heads × h × w)")
                attn_args = [model_box, attn_image, size_box, threshold]
                attn_outputs = [attn_message, overlays, raw_maps]
                attn_btn.click(
                    friendly(3)(handlers.attention),
                    attn_args,
                    attn_outputs,
                    api_name="attention",
                    preprocess=False,  # raw upload payload: read_image explains what is wrong with it
                    concurrency_id="cpu",
                )
                threshold.release(
                    friendly(3)(handlers.attention),
                    attn_args,
                    attn_outputs,
                    api_visibility="private",
                    preprocess=False,
                    concurrency_id="cpu",
                )

            with gr.Tab("Embedding map", id="embedding-map"):
                with gr.Row():
                    method = gr.Radio(["PCA", "t-SNE"], value="PCA", label="projection", scale=1)
                    map_btn = gr.Button("Draw the map", variant="primary", scale=1)
                map_message = gr.Markdown(elem_classes="sslzoo-message", elem_id="map-message")
                map_image = gr.Image(
                    label="gallery embeddings", interactive=False, elem_id="map-image", format="png"
                )
                map_csv = gr.File(label="coordinates (CSV)")
                map_btn.click(
                    friendly(3)(handlers.embedding_map),
                    [model_box, gallery_box, method],
                    [map_message, map_image, map_csv],
                    api_name="embedding_map",
                    concurrency_id="cpu",
                )

            with gr.Tab("Leaderboard", id="leaderboard"):
                board_btn = gr.Button("Refresh")
                board_md = gr.Markdown(elem_id="leaderboard-markdown")
                board_chart = gr.Image(
                    label="headline metrics", interactive=False, format="png", elem_id="leaderboard-chart"
                )
                board_table = gr.Dataframe(
                    headers=["dataset", "model", "protocol", "top1", "top5", "other metrics", "created"],
                    label="all records",
                    interactive=False,
                )
                board_outputs = [board_md, board_chart, board_table]
                board_btn.click(
                    friendly(3)(handlers.leaderboard), None, board_outputs, api_name="leaderboard"
                )

        browser_outputs = [nb_message, browser, browser_indices]
        gallery_box.change(
            friendly(3)(handlers.gallery_browser), [gallery_box], browser_outputs, api_name="gallery_browser"
        )
        demo.load(
            friendly(3)(handlers.gallery_browser), [gallery_box], browser_outputs, api_visibility="private"
        )
        demo.load(friendly(3)(handlers.leaderboard), None, board_outputs, api_visibility="private")
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def launch(demo, host: str = "127.0.0.1", port: int | None = None, block: bool = True, **kwargs: Any):
    """Serve ``demo`` on ``host:port`` (``127.0.0.1`` by default: only this machine can connect)."""
    theme = gr.themes.Default(font=list(THEME_FONTS), font_mono=["ui-monospace", "monospace"])
    return demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        share=False,
        theme=theme,
        css=CSS,
        footer_links=["api"],
        show_error=True,
        quiet=not block,
        **kwargs,
    )
