"""``sslzoo app``: launch the Gradio browser for neighbours, attention maps, embedding maps and the leaderboard.

>>> from app.cli import main
>>> main(["app", "--model", "runs/dino-digits", "--gallery", "digits", "--port", "7860"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from zoo.config import LEADERBOARD_HELP, add_dataclass_arguments, dataclass_from_namespace


@dataclass
class AppConfig:
    """Options of ``sslzoo app`` (the CLI is generated from these fields)."""

    model: str | None = field(
        default=None,
        metadata={"help": "model to preselect: registry name, run/encoder folder or hf-hub:ORG/NAME"},
    )
    gallery: str | None = field(
        default=None,
        metadata={
            "help": "gallery dataset (its test split): digits, fashion-mnist, folder:PATH, hf:ORG/NAME"
        },
    )
    host: str = field(
        default="127.0.0.1", metadata={"help": "address to bind; 127.0.0.1 keeps it on this machine"}
    )
    port: int | None = field(
        default=None, metadata={"help": "port (default: Gradio's, 7860 or the next free)"}
    )
    leaderboard: str | None = field(default=None, metadata={"help": LEADERBOARD_HELP})
    runs: str = field(default="runs", metadata={"help": "folder of training runs offered as models"})


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sslzoo app``."""
    p = subparsers.add_parser(
        "app",
        help="launch the Gradio app: neighbours, attention maps, embedding map, leaderboard (CPU is fine)",
    )
    add_dataclass_arguments(p, AppConfig)
    p.set_defaults(handler=_app)


# Gradio's queue rebuilds a pandas summary of its last 10,000 events after every event, for a monitoring page
# this app does not enable: 3 ms per query on a fresh server, 10 ms once 10,000 queries were served (a fifth of
# the app's CPU time per neighbour query). Refreshed every 1,000 events instead, unless the user set it.
GRADIO_QUIET_ANALYTICS = {"GRADIO_ANALYTICS_CACHE_FREQUENCY": "1000"}
# Galleries up to this size get their tiles written at launch (~3 s for 10,000 28-px images).
PREWRITE_TILES = 20_000


def _app(args: argparse.Namespace) -> int:
    import os

    from zoo.errors import SslzooError

    for name, value in GRADIO_QUIET_ANALYTICS.items():
        os.environ.setdefault(name, value)  # read when the queue is built, in build_app below
    config = dataclass_from_namespace(AppConfig, args)
    if config.port is not None and not 1 <= config.port <= 65535:
        raise SslzooError(f"--port must be between 1 and 65535, got {config.port}.")
    from app.backend import Backend
    from app.ui import build_app, default_choices, launch
    from zoo.errors import SslzooError

    backend = Backend(
        leaderboard_dir=config.leaderboard,
        runs_dir=config.runs,
        extra_models=[config.model] if config.model else [],
    )
    if config.gallery:
        backend.gallery(config.gallery)  # fail fast, with one line, on a gallery that cannot load
    _, _, model, gallery = default_choices(backend, config.model, config.gallery)
    if model and gallery:
        # Embed the default gallery now, so the page opens with a query answered instead of a silent wait.
        print(f"embedding gallery {gallery} under {model} (once; then cached) …", flush=True)
        try:
            backend.gallery_index(model, gallery, progress=True)
        except SslzooError as exc:
            if config.model:
                raise
            print(
                f"not preloaded: {exc}", flush=True
            )  # a default pick that fails stays a message in the page
    demo = build_app(backend, model=model, gallery=gallery, prewrite_tiles=PREWRITE_TILES)
    print(f"sslzoo app on http://{config.host}:{config.port or 7860} (Ctrl+C to stop)")
    launch(demo, host=config.host, port=config.port, block=True)
    return 0
