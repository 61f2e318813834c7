"""Tiny, fast training options shared by the engine tests (digits at 16 px, a 8-16-16-32 CNN)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY = {
    "dataset": "digits",
    "arch_args": ("widths=(8,16,16,32)",),
    "image_size": 16,
    "batch_size": 64,
    "progress": False,
    "knn_every": 0,
    "log_every": 1,
    "warmup_epochs": 0.2,
}


def tiny_train_argv(out: str, epochs: int) -> list[str]:
    """``sslzoo train`` arguments of a tiny SimCLR run (the CLI's spelling of :data:`TINY`, logging every step)."""
    return [
        *("train", "--method", "simclr", "--dataset", "digits", "--out", out, "--epochs", str(epochs)),
        *("--arch-args", "widths=(8,16,16,32)", "--image-size", "16", "--batch-size", "64", "--no-progress"),
        *("--knn-every", "0", "--log-every", "1", "--warmup-epochs", "0.2"),
    ]


# Per-method options that keep a 1-epoch run small: short queue, small DINO head, two local crops.
SMALL = {
    "simclr": {},
    "moco": {"queue_size": 64},
    "byol": {"proj_hidden_dim": 128, "proj_dim": 32},
    "dino": {
        "out_dim": 64,
        "n_local_crops": 2,
        "warmup_teacher_temp_epochs": 0,
        "teacher_temp": 0.04,
        "freeze_last_layer_epochs": 0,
    },
}


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def final_state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["method"]
