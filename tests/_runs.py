"""A tiny run folder for tests of what surrounds training (export, publishing, bad inputs, kills)."""

from __future__ import annotations

from pathlib import Path


def save_tiny_run(folder: Path) -> Path:
    """A run folder as the trainers leave it, with a tiny (8-wide) random CNN in ``folder/encoder``."""
    import timm

    import zoo

    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0, widths=(8, 8, 8, 8))
    zoo.save_encoder(
        net,
        folder / "encoder",
        model_args={"in_chans": 1, "widths": [8, 8, 8, 8]},
        pretrained_cfg={"input_size": (1, 16, 16), "mean": (0.5,), "std": (0.5,), "crop_pct": 1.0},
        metadata={"method": "simclr", "dataset": "digits"},
    )
    return folder
