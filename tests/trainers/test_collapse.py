"""DINO's centering is what keeps the teacher from collapsing to one output (DINO §5.3, Fig. 7)."""

from __future__ import annotations

import torch
from _tiny_runs import TINY

from trainers.engine import Trainer, build_configs


def _teacher_collapse(tmp_path, centering: bool) -> tuple[float, float]:
    """(mass of the single most used output, fraction of images whose argmax is that output) of P_t."""
    options = {
        **TINY,
        "out": str(tmp_path / f"centering-{centering}"),
        "epochs": 1,
        "centering": centering,
        "out_dim": 64,
        "n_local_crops": 2,
        "momentum": 0.9,  # a fast teacher shows the dynamics within one short epoch
        "teacher_temp": 0.04,
        "warmup_teacher_temp_epochs": 0,
        "freeze_last_layer_epochs": 0,
    }
    trainer = Trainer(*build_configs("dino", options))
    trainer.fit()
    dino, ctx = trainer.method, trainer.ctx
    features = ctx.extract_features(dino.teacher_backbone, "train", torch.arange(512))
    with torch.no_grad():
        logits = dino.teacher_head(features)
        p_t = torch.softmax((logits - dino.center) / 0.04, dim=-1)
    top = p_t.mean(0).argmax()
    return float(p_t[:, top].mean()), float((p_t.argmax(1) == top).float().mean())


def test_dino_collapses_without_centering_and_not_with_it(tmp_path):
    mass_off, share_off = _teacher_collapse(tmp_path, centering=False)
    mass_on, share_on = _teacher_collapse(tmp_path, centering=True)
    # Without centering every image is sent to the same output, with (almost) all of the probability mass.
    assert share_off == 1.0 and mass_off > 0.9, (mass_off, share_off)
    # With centering no output takes even half of it.
    assert mass_on < 0.5, (mass_on, share_on)
