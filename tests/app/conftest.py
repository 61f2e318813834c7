"""One running app for the app tests: a random tiny ViT and a random small CNN as run folders, the digits gallery.

The server is started once per session (importing Gradio and launching it is the slow part) on 127.0.0.1 and a
free port, with the feature cache and the leaderboard in temporary folders.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Served:
    url: str
    vit: str
    cnn: str
    root: Path
    backend: object


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_random_encoders(runs: Path) -> tuple[str, str]:
    """A randomly initialised ``sslzoo_vit_tiny_patch4`` (28 px, 3 heads) and ``sslzoo_cnn4``, as run folders."""
    import timm
    import torch

    import zoo.architectures  # registers the sslzoo_* architectures with timm

    torch.manual_seed(0)
    vit = timm.create_model("sslzoo_vit_tiny_patch4", in_chans=1, img_size=28, num_classes=0)
    cnn = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0)
    zoo.save_encoder(vit, runs / "vit-random" / "encoder", model_args={"in_chans": 1, "img_size": 28})
    zoo.save_encoder(cnn, runs / "cnn-random" / "encoder", model_args={"in_chans": 1})
    return str(runs / "vit-random"), str(runs / "cnn-random")


def write_leaderboard(folder: Path) -> None:
    from evaluators.records import Record, write_records

    common = {
        "dataset": "digits",
        "protocol": "knn",
        "params": {"k": 20, "temperature": 0.07},
        "splits": {"train": 1437, "test": 360},
        "num_classes": 10,
    }
    write_records(
        [
            Record(model="vit-random", metrics={"top1": 81.5, "top5": 97.0}, **common),
            Record(model="raw-pixels", metrics={"top1": 97.2, "top5": 99.7}, **common),
        ],
        folder,
    )


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Served:
    from app.backend import Backend
    from app.ui import build_app, launch

    root = tmp_path_factory.mktemp("app")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSLZOO_CACHE", str(root / "cache"))
        vit, cnn = save_random_encoders(root / "runs")
        write_leaderboard(root / "leaderboard")
        backend = Backend(leaderboard_dir=root / "leaderboard", runs_dir=root / "runs")
        demo = build_app(backend, model=vit, gallery="digits")
        _, url, _ = launch(demo, host="127.0.0.1", port=_free_port(), block=False)
        try:
            yield Served(url=url, vit=vit, cnn=cnn, root=root, backend=backend)
        finally:
            demo.close()


@pytest.fixture(scope="session")
def client(served):
    from gradio_client import Client

    return Client(served.url, verbose=False)
