"""The Gradio Blocks page: Neighbours, Attention, Embedding map and Leaderboard tabs over one :class:`Backend`.

The callbacks live in :mod:`app.handlers`; this module lays out the page and wires the events. A change of model or
gallery re-runs every tab's shown result (or clears it), so nothing on screen comes from another model; each
result's message names the model and gallery that produced it.

Concurrency: requests go through Gradio's queue with a limit per kind of work. Gallery queries (a faiss search of
precomputed embeddings) run up to :data:`SEARCH_CONCURRENCY` at a time; work that runs a model (uploads, attention,
the embedding map) shares the ``"model"`` group, :data:`MODEL_CONCURRENCY` at a time, so two cores are never
oversubscribed. The encoders, galleries and indexes are built once and only read afterwards. Pictures are returned
as files written once under unique names in a static folder (:mod:`app.tiles`), not through Gradio's cache.

Each action is also an API endpoint for ``gradio_client`` (``/neighbours``, ``/gallery_neighbours``,
``/attention``, ``/embedding_map``, ``/leaderboard``, ``/gallery_browser``).

>>> demo = build_app(Backend(), model="runs/dino-digits", gallery="digits")  # doctest: +SKIP
>>> launch(demo, host="127.0.0.1", port=7860)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio reads it
import gradio as gr

from app.backend import Backend
from app.embedding_map import MAP_CSS, MAP_JS, selected_index
from app.handlers import ALL_CLASSES, DEFAULT_K, DEFAULT_THRESHOLD, Handlers, friendly
from app.images import example_photos
from app.tiles import TileStore
from zoo.errors import SslzooError

SIZE_CHOICES = ["native", "56", "112", "224", "320", "448"]
SEARCH_CONCURRENCY = 8  # gallery queries: a search of precomputed embeddings, mostly Gradio's own I/O
MODEL_CONCURRENCY = 1  # model forwards: one at a time on a small CPU
GALLERY_EXAMPLES = 4
# Gradio makes a fresh tracker per request from this default (blocks.create_tracker), so sharing it is safe.
PROGRESS = gr.Progress()
THEME_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")  # no web fonts: the app must work offline
CSS = """
.sslzoo-message p { margin: 0.2em 0; }
/* Tiles shrink to fit the column instead of overflowing it (Gradio's grid has a 100 px minimum per column). */
#gallery-browser .grid-container, #neighbours-gallery .grid-container, #attention-gallery .grid-container {
  grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important;
  grid-auto-rows: auto !important; grid-template-rows: none !important; }
#gallery-browser .grid-container > * { aspect-ratio: 1; }
/* Small images (28-px Fashion-MNIST) are scaled up with square pixels, never blurred. Attention overlays are
   drawn already enlarged with square pixels and carry colour-bar text, which nearest-pixel shrinking garbles. */
#gallery-browser img, #neighbours-gallery img, #query-shown img, #map-plot img { image-rendering: pixelated; }
/* Labels above the picture, in the flow, instead of floating over its top-left corner (and over the first row of
   neighbours); the block grows to hold them. */
#query-shown > label[data-testid="block-label"], #neighbours-gallery > label[data-testid="block-label"],
#attention-gallery > label[data-testid="block-label"] { position: static !important; display: flex;
  width: fit-content; max-width: 100%; white-space: normal; margin-bottom: 4px; }
#query-shown, #neighbours-gallery, #attention-gallery { height: auto !important; }
/* The corner buttons (download, fullscreen) get a row of their own above the picture, not over its corner. */
#query-shown .image-container { height: 186px; padding-top: 26px; box-sizing: border-box; }
#neighbours-gallery .grid-container, #attention-gallery .grid-container { padding-top: 30px !important; }
#query-shown .image-container img { width: 100%; height: 100%; object-fit: contain; }
/* Captions in full (label · similarity; head, mask t) under the picture instead of cut off over it. */
#neighbours-gallery .thumbnail-lg, #attention-gallery .thumbnail-lg { display: flex; flex-direction: column;
  height: auto !important; }
#neighbours-gallery .thumbnail-lg > img { aspect-ratio: 1; height: auto !important; }
#attention-gallery .thumbnail-lg > img { height: auto !important; }
#gallery-browser .caption-label { display: none; }
#neighbours-gallery .caption-label, #attention-gallery .caption-label { position: static !important;
  white-space: normal !important; max-width: 100% !important; overflow: visible !important;
  text-overflow: clip !important; border: none; }
"""


# The model preselected when none is given: a shipped mini-zoo encoder, not whichever local run sorts first.
# byol-fmnist has the best committed Fashion-MNIST k-NN of the shipped encoders (86.5%; moco 86.3, simclr 85.9, and
# dino-vit-fmnist 62.4 with collapsed neighbourhoods), is a small CNN that embeds the 10,000-image default gallery
# in seconds on a CPU, and was trained on that gallery's dataset. A name, not a leaderboard lookup at launch: the
# page must open the same way whatever records the user has. Otherwise the first shipped encoder by name.
PREFERRED_MODELS = ("byol-fmnist",)


def default_model(models: list[str]) -> str | None:
    """The model to preselect among ``models``: :data:`PREFERRED_MODELS`, else the first shipped mini-zoo encoder
    (``models/NAME``, registered in ``zoo.registry``), else the first offered."""
    from zoo.registry import MODELS

    shipped = [m for m in models if m in MODELS and MODELS[m].source.startswith("folder:")]
    preferred = [m for m in PREFERRED_MODELS if m in shipped]
    return (preferred or shipped or models or [None])[0]


def default_choices(
    backend: Backend, model: str | None = None, gallery: str | None = None
) -> tuple[list[str], list[str], str | None, str | None]:
    """The models and galleries to offer and the ones preselected (``model``/``gallery`` when given; otherwise
    :func:`default_model` and Fashion-MNIST or digits)."""
    models = backend.model_choices()
    if model and model not in models:
        models.insert(0, model)
    galleries = backend.gallery_choices()
    if gallery and gallery not in galleries:
        galleries.insert(0, gallery)
    model = model or default_model(models)
    if not gallery:
        preferred = [g for g in ("fashion-mnist", "digits") if g in galleries]
        gallery = preferred[0] if preferred else (galleries[0] if galleries else None)
    return models, galleries, model, gallery


def _gallery_examples(handlers: Handlers, gallery: str | None) -> list[str]:
    """The first image of the first few classes of the default gallery, as files for ``gr.Examples``."""
    if not gallery:
        return []
    try:
        gal = handlers.backend.gallery(gallery)
    except SslzooError:
        return []
    firsts = [
        int(np.flatnonzero(gal.labels == c)[0]) for c in range(len(gal.classes)) if (gal.labels == c).any()
    ]
    return [handlers.tiles.gallery_tile(gallery, i, gal.image) for i in firsts[:GALLERY_EXAMPLES]]


def build_app(
    backend: Backend | None = None,
    model: str | None = None,
    gallery: str | None = None,
    prewrite_tiles: int = 0,
):
    """The Blocks page (not launched). ``model``/``gallery`` preselect the dropdowns.

    ``prewrite_tiles``: write the preselected gallery's tiles now when it has at most this many images (with a
    progress bar), so that no query of a fresh server waits for them.
    """
    backend = backend or Backend()
    tiles = TileStore()
    gr.set_static_paths([tiles.folder])  # served in place: never copied into (or raced in) Gradio's cache
    handlers = Handlers(backend, tiles)
    models, galleries, model, gallery = default_choices(backend, model, gallery)
    if gallery and prewrite_tiles:
        with contextlib.suppress(SslzooError):  # a gallery that cannot load stays a message in the page
            gal = backend.gallery(gallery)
            if len(gal.labels) <= prewrite_tiles:
                tiles.write_gallery(gallery, len(gal.labels), gal.image, progress=True)
    try:
        classes = handlers.class_choices(gallery) if gallery else [ALL_CLASSES]
    except SslzooError:
        classes = [ALL_CLASSES]

    # Handlers that may embed a gallery take Gradio's progress tracker (one status line in the page).
    def neighbours(model, gallery, upload, k, progress=PROGRESS):
        return handlers.neighbours(model, gallery, upload, k, progress)

    def gallery_neighbours(model, gallery, index, k, progress=PROGRESS):
        return handlers.gallery_neighbours(model, gallery, index, k, progress)

    def requery(model, gallery, last, upload, index, k, progress=PROGRESS):
        return handlers.requery(model, gallery, last, upload, index, k, progress)

    def embedding_map(model, gallery, method, progress=PROGRESS):
        return handlers.embedding_map(model, gallery, method, progress)

    with gr.Blocks(title="sslzoo: neighbours and attention maps") as demo:
        gr.Markdown("## sslzoo: neighbours, attention and embedding maps of self-supervised image encoders")
        with gr.Row():
            model_box = gr.Dropdown(
                models,
                value=model,
                label="model",
                allow_custom_value=True,
                scale=2,
                info="registry names on this machine, local runs, or type a folder / hf-hub:ORG/NAME",
                elem_id="model-box",
            )
            gallery_box = gr.Dropdown(
                galleries,
                value=gallery,
                label="gallery",
                allow_custom_value=True,
                scale=1,
                info="searched split: test; or type folder:PATH / hf:ORG/NAME",
                elem_id="gallery-box",
            )
        with gr.Tabs(selected="neighbours") as tabs:
            with gr.Tab("Neighbours", id="neighbours"):
                last_query = gr.State(None)  # "index" or "upload": what a change of model re-runs
                browser_indices = gr.State([])
                browser_seed = gr.State(0)
                with gr.Row():
                    with gr.Column(scale=2, min_width=340):
                        browser_message = gr.Markdown(
                            elem_classes="sslzoo-message", elem_id="browser-message"
                        )
                        with gr.Row():
                            class_box = gr.Dropdown(
                                classes,
                                value=ALL_CLASSES,
                                label="class",
                                scale=2,
                                min_width=120,
                                elem_id="class-box",
                            )
                            page_box = gr.Number(
                                1,
                                label="page",
                                precision=0,
                                minimum=1,
                                scale=1,
                                min_width=70,
                                elem_id="page-box",
                            )
                        with gr.Row():
                            prev_btn = gr.Button("◀ previous", size="sm", min_width=60)
                            next_btn = gr.Button("next ▶", size="sm", min_width=60)
                            shuffle_btn = gr.Button("shuffle", size="sm", min_width=60)
                            order_btn = gr.Button("in order", size="sm", min_width=60)
                        browser = gr.Gallery(
                            label="gallery: click an image to query it",
                            show_label=False,
                            buttons=[],
                            columns=8,
                            height=310,
                            allow_preview=False,
                            object_fit="contain",
                            elem_id="gallery-browser",
                        )
                        with gr.Accordion("or upload a query image", open=False):
                            # A file box, not an image box: the image box refuses other files in the browser
                            # with a passing toast, and the page must say in its message why a file cannot be used.
                            query = gr.File(
                                label="query image: PNG, JPEG, WebP, GIF, BMP, TIFF (searched on upload)",
                                type="filepath",
                                file_count="single",
                                height=120,
                                elem_id="query-image",
                            )
                            search_btn = gr.Button("Search with the upload", variant="primary")
                    with gr.Column(scale=3, min_width=400):
                        nb_message = gr.Markdown(elem_classes="sslzoo-message", elem_id="neighbours-message")
                        with gr.Row():
                            k_slider = gr.Slider(
                                1, 50, value=DEFAULT_K, step=1, label="neighbours k", scale=3
                            )
                            index_box = gr.Number(
                                None,
                                label="query: gallery image #",
                                precision=0,
                                minimum=0,
                                scale=1,
                                min_width=100,
                                elem_id="index-box",
                            )
                            to_attention_btn = gr.Button("Attention of this query ▶", size="sm", scale=1)
                        with gr.Row():
                            query_shown = gr.Image(
                                label="query as the model sees it",
                                height=180,
                                buttons=["download", "fullscreen"],
                                interactive=False,
                                scale=1,
                                min_width=140,
                                elem_id="query-shown",
                            )
                            neighbours_gallery = gr.Gallery(
                                label="neighbours: label · cosine similarity",
                                columns=5,
                                height=360,
                                object_fit="contain",
                                elem_id="neighbours-gallery",
                                scale=4,
                            )
                        with gr.Accordion("neighbours as a table", open=False):
                            table = gr.Dataframe(
                                headers=["rank", "index", "label", "similarity"],
                                label="neighbours",
                                interactive=False,
                            )
                nb_outputs = [nb_message, query_shown, neighbours_gallery, table]
                nb_inputs = [model_box, gallery_box, last_query, query, index_box, k_slider]

            with gr.Tab("Attention", id="attention"):
                with gr.Row():
                    with gr.Column(scale=1):
                        attn_image = gr.Image(
                            label="image",
                            type="filepath",
                            image_mode=None,
                            sources=["upload", "clipboard"],
                            height=240,
                            elem_id="attention-image",
                        )
                        gr.Examples(
                            [[p] for p in example_photos()],
                            inputs=[attn_image],
                            label="scikit-image photos",
                            elem_id="attention-examples",
                            examples_per_page=8,
                        )
                        gallery_examples = _gallery_examples(handlers, gallery)
                        if gallery_examples:
                            gr.Examples(
                                [[p] for p in gallery_examples],
                                inputs=[attn_image],
                                label=f"{gallery} images",
                                elem_id="attention-gallery-examples",
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
                            elem_id="threshold",
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
                        )
                        with gr.Accordion("raw maps (JSON)", open=False):
                            raw_maps = gr.JSON(label="maps (heads × h × w)")
                attn_args = [model_box, attn_image, size_box, threshold]
                attn_outputs = [attn_message, overlays, raw_maps]

            with gr.Tab("Embedding map", id="embedding-map"):
                with gr.Row():
                    method = gr.Radio(["PCA", "t-SNE"], value="PCA", label="projection", scale=1)
                    map_btn = gr.Button("Draw the map", variant="primary", scale=1)
                map_message = gr.Markdown(elem_classes="sslzoo-message", elem_id="map-message")
                map_html = gr.HTML("", js_on_load=MAP_JS, css_template=MAP_CSS, elem_id="map-plot")
                map_csv = gr.File(label="coordinates (CSV)", elem_id="map-csv")
                map_outputs = [map_message, map_html, map_csv]

            with gr.Tab("Leaderboard", id="leaderboard"):
                board_btn = gr.Button("Refresh")
                board_md = gr.Markdown(elem_id="leaderboard-markdown")
                board_chart = gr.Image(
                    label="headline metrics", interactive=False, elem_id="leaderboard-chart"
                )
                board_table = gr.Dataframe(
                    headers=[
                        "dataset",
                        "model",
                        "source",
                        "protocol",
                        "top1",
                        "top5",
                        "other metrics",
                        "created",
                    ],
                    label="all records",
                    interactive=False,
                )
                board_outputs = [board_md, board_chart, board_table]

        # ---------------------------------------------------------------------------------- neighbours events
        search = dict(concurrency_id="search", concurrency_limit=SEARCH_CONCURRENCY)
        model_work = dict(concurrency_id="model", concurrency_limit=MODEL_CONCURRENCY)
        private = dict(api_visibility="private")
        run_upload = dict(preprocess=False, **model_work)  # raw payload: read_image explains a bad file
        for trigger, api in ((search_btn.click, {"api_name": "neighbours"}), (query.upload, private)):
            trigger(
                friendly(4)(neighbours),
                [model_box, gallery_box, query, k_slider],
                nb_outputs,
                **run_upload,
                **api,
            ).then(lambda: "upload", None, last_query, queue=False, **private)
        index_box.submit(
            friendly(4)(gallery_neighbours),
            [model_box, gallery_box, index_box, k_slider],
            nb_outputs,
            api_name="gallery_neighbours",
            **search,
        ).then(lambda: "index", None, last_query, queue=False, **private)

        def pick(indices: list[int], evt: gr.SelectData) -> tuple:
            index = indices[evt.index] if indices and 0 <= evt.index < len(indices) else None
            return index, "index"

        browser.select(pick, [browser_indices], [index_box, last_query], queue=False, **private).then(
            friendly(4)(gallery_neighbours),
            [model_box, gallery_box, index_box, k_slider],
            nb_outputs,
            **search,
            **private,
        )
        # A new model, gallery or k: the shown query again under it (or a cleared result).
        for changed in (model_box.change, gallery_box.change):
            changed(friendly(4)(requery), nb_inputs, nb_outputs, **search, **private)
        # k follows the slider and the typed box alike (.change); only the last of a drag's values is run.
        k_slider.change(
            friendly(4)(requery), nb_inputs, nb_outputs, trigger_mode="always_last", **search, **private
        )

        # -------------------------------------------------------------------------------- gallery browser
        browser_args = [gallery_box, class_box, page_box, browser_seed]
        browser_outputs = [browser_message, browser, browser_indices, page_box]
        show_page = friendly(4)(handlers.gallery_browser)
        class_box.input(
            show_page, browser_args, browser_outputs, api_name="gallery_browser", concurrency_limit=4
        )
        page_box.submit(show_page, browser_args, browser_outputs, concurrency_limit=4, **private)
        prev_btn.click(lambda p: max(1, int(p or 1) - 1), page_box, page_box, queue=False, **private).then(
            show_page, browser_args, browser_outputs, concurrency_limit=4, **private
        )
        next_btn.click(lambda p: int(p or 1) + 1, page_box, page_box, queue=False, **private).then(
            show_page, browser_args, browser_outputs, concurrency_limit=4, **private
        )
        shuffle_btn.click(
            lambda: (int(np.random.default_rng().integers(1, 2**31)), 1),
            None,
            [browser_seed, page_box],
            queue=False,
            **private,
        ).then(show_page, browser_args, browser_outputs, concurrency_limit=4, **private)
        order_btn.click(lambda: (0, 1), None, [browser_seed, page_box], queue=False, **private).then(
            show_page, browser_args, browser_outputs, concurrency_limit=4, **private
        )

        def new_gallery(gallery: str) -> Any:
            try:
                return gr.Dropdown(choices=handlers.class_choices(gallery), value=ALL_CLASSES)
            except SslzooError:
                return gr.Dropdown(choices=[ALL_CLASSES], value=ALL_CLASSES)

        gallery_box.change(new_gallery, gallery_box, class_box, queue=False, **private).then(
            lambda g: show_page(g, ALL_CLASSES, 1, 0), [gallery_box], browser_outputs, **private
        )

        # ---------------------------------------------------------------------------------- attention events
        attention = friendly(3)(handlers.attention)
        attn_btn.click(
            attention, attn_args, attn_outputs, api_name="attention", preprocess=False, **model_work
        )
        # Typing a value fires .change without a release, so the masks follow both the slider and the box.
        threshold.change(
            attention,
            attn_args,
            attn_outputs,
            preprocess=False,
            trigger_mode="always_last",
            **model_work,
            **private,
        )
        attn_image.upload(attention, attn_args, attn_outputs, preprocess=False, **model_work, **private)
        model_box.change(
            friendly(3)(handlers.refresh_attention),
            attn_args,
            attn_outputs,
            preprocess=False,
            **model_work,
            **private,
        )

        def to_attention(last: str | None, upload: Any, index: Any, gallery: str) -> tuple:
            if last == "index" and index is not None:
                gal = backend.gallery(gallery)
                return handlers.tiles.gallery_tile(gallery, int(index), gal.image), gr.Tabs(
                    selected="attention"
                )
            return upload, gr.Tabs(selected="attention")

        to_attention_btn.click(
            to_attention, [last_query, query, index_box, gallery_box], [attn_image, tabs], **private
        ).then(attention, attn_args, attn_outputs, preprocess=False, **model_work, **private)

        # ------------------------------------------------------------------------------ embedding map events
        map_btn.click(
            friendly(3)(embedding_map),
            [model_box, gallery_box, method],
            map_outputs,
            api_name="embedding_map",
            **model_work,
        )

        def clear_map(model: str, gallery: str) -> tuple:
            return f"Model `{model}` · gallery `{gallery}`: press Draw the map.", "", None

        for changed in (model_box.change, gallery_box.change):
            changed(clear_map, [model_box, gallery_box], map_outputs, queue=False, **private)

        def from_map(svg: str) -> tuple:
            index = selected_index(svg)
            return (
                (index, "index", gr.Tabs(selected="neighbours"))
                if index is not None
                else (None, None, gr.Tabs())
            )

        map_html.click(from_map, map_html, [index_box, last_query, tabs], queue=False, **private).then(
            friendly(4)(gallery_neighbours),
            [model_box, gallery_box, index_box, k_slider],
            nb_outputs,
            **search,
            **private,
        )

        # ---------------------------------------------------------------------------------- first view
        board = friendly(3)(handlers.leaderboard)
        board_btn.click(board, None, board_outputs, api_name="leaderboard")

        def first_view(gallery: str) -> tuple:
            message, items, shown, page = show_page(gallery, ALL_CLASSES, 1, 0)
            first = shown[0] if shown else None
            return message, items, shown, page, first, "index" if first is not None else None

        demo.load(
            first_view,
            [gallery_box],
            [*browser_outputs, index_box, last_query],
            concurrency_limit=4,
            **private,
        ).then(requery, nb_inputs, nb_outputs, **search, **private)
        demo.load(board, None, board_outputs, **private)
    demo.queue(default_concurrency_limit=1, max_size=256)
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
