"""Shared test setup: offline Hub, no Gradio analytics, and a hand-built Hugging Face Hub cache."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: its constants read the environment once at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import shutil
from pathlib import Path

import pytest


class HubCache:
    """A Hub cache built by hand, laid out exactly as ``huggingface_hub`` writes it.

    ``add_repo("timm/vit_small_patch16_224.dino", folder)`` copies ``folder``'s files into
    ``models--timm--vit_small_patch16_224.dino/snapshots/<revision>/`` and points ``refs/main`` at it, so offline
    ``hf_hub_download`` / ``snapshot_download`` / ``timm.create_model("hf-hub:...")`` find them.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def add_repo(self, repo_id: str, folder: str | Path, revision: str = "0" * 40, ref: str = "main") -> Path:
        repo_dir = self.root / f"models--{repo_id.replace('/', '--')}"
        snapshot = repo_dir / "snapshots" / revision
        snapshot.mkdir(parents=True, exist_ok=True)
        for path in Path(folder).iterdir():
            if path.is_file():
                shutil.copy2(path, snapshot / path.name)
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / ref).write_text(revision)
        return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> HubCache:
    """An empty hand-built Hub cache that huggingface_hub (and timm's hf-hub:) read for this test."""
    import huggingface_hub.constants as hf_constants

    root = tmp_path / "hub"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return HubCache(root)


@pytest.fixture
def torch_hub_dir(tmp_path, monkeypatch) -> Path:
    """An empty torch.hub directory (``checkpoints/`` is where URL weights are cached) for this test."""
    import torch.hub

    root = tmp_path / "torch-hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(root))
    (root / "checkpoints").mkdir(parents=True)
    return root
