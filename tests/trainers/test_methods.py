"""Every method trains on digits with a falling loss and exports an encoder that zoo.load reads."""

from __future__ import annotations

import json

import pytest
import torch
from _tiny_runs import SMALL, TINY, metrics

import zoo
from trainers import train
from trainers.schedules import cosine_schedule


@pytest.mark.parametrize("method", ["simclr", "moco", "byol", "dino"])
def test_method_trains_with_falling_loss_and_exports(method, tmp_path):
    run = train(method, out=str(tmp_path / method), epochs=1, **TINY, **SMALL[method])
    # DINO's cross-entropy H(P_t, P_s) = H(P_t) + KL(P_t ‖ P_s) rises towards log K while the centre catches up
    # with a random teacher; what the student learns is the KL part.
    key = "kl" if method == "dino" else "loss"
    losses = [r[key] for r in metrics(run) if key in r]
    assert len(losses) == 1437 // 64
    if method == "moco":
        losses = losses[2:]  # the first keys are compared with a random queue until it has been filled once
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses

    encoder = zoo.load(run, device="cpu")
    assert encoder.dim == 32
    feats = encoder.embed(torch.rand(3, 1, 16, 16))
    assert feats.shape == (3, 32) and torch.isfinite(feats).all()
    # The export declares its evaluation preprocessing: the training side, no crop, the train split's statistics.
    cfg = json.loads((run / "encoder" / "config.json").read_text())["pretrained_cfg"]
    assert cfg["input_size"] == [1, 16, 16] and cfg["crop_pct"] == 1.0
    images, _ = zoo.to_arrays(zoo.load_dataset("digits", split="train"))
    assert cfg["mean"][0] == pytest.approx(images.mean() / 255, abs=1e-3)
    assert (run / "curves.png").stat().st_size > 0
    saved = json.loads((run / "train_config.json").read_text())
    # The run says what it used: MoCo's shuffle-BN substitute in one process, DINO's per-parameter clipping.
    if method == "moco":
        assert saved["method"]["shuffle_bn"] == "split-bn" and saved["method"]["bn_splits"] == 8
    if method == "dino":
        assert saved["method"]["param_grad_clip"] == 3.0 and saved["train"]["grad_clip"] is None
    # … and the augmentations as applied, one line per view, in the run's config and in the exported encoder's
    # (which its model card shows): BYOL's and DINO's asymmetric blur, σ in 16-px pixels (0.1–2 px at 224 px).
    views = saved["resolved"]["augmentations"]
    exported = json.loads((run / "encoder" / "sslzoo.json").read_text())["config"]["augmentations"]
    assert views == exported and all("px crop of" in v and "normalised" in v for v in views)
    expected = {
        "simclr": ["views 1–2: ", "Gaussian blur p 0.5, σ 0.00714–0.143 px"],
        "moco": ["views 1–2: ", "Gaussian blur p 0.5"],
        "byol": [
            "view 1: ",
            "Gaussian blur p 1, σ 0.00714–0.143 px",
            "view 2: ",
            "blur p 0.1",
            "solarisation p 0.2",
        ],
        # Local crops (8 px, two of them) blur with σ in their own pixels, which are the global crops' pixels.
        "dino": ["view 1: ", "view 2: ", "views 3–4: 8-px crop of 5–", "blur p 0.5, σ 0.00714–0.143 px"],
    }[method]
    text = " | ".join(views)
    assert all(piece in text for piece in expected), text
    assert len(views) == {"simclr": 1, "moco": 1, "byol": 2, "dino": 3}[method]
    # Digits are grey: saturation, hue and grayscale change nothing, and the run does not claim them.
    assert "grayscale" not in text and "saturation and hue do nothing to 1-channel images" in text


def test_learning_rate_follows_warmup_and_cosine(tmp_path):
    run = train(
        "simclr", out=str(tmp_path / "lr"), epochs=2, lr=0.01, min_lr=0.001, **{**TINY, "warmup_epochs": 1}
    )
    rows = [r for r in metrics(run) if "lr" in r]
    total, warmup = 2 * (1437 // 64), 1437 // 64
    for r in rows:  # the lr logged with step s was the one used for step s - 1
        assert r["lr"] == pytest.approx(
            cosine_schedule(r["step"] - 1, total, 0.01, 0.001, warmup_steps=warmup)
        )
    assert rows[0]["lr"] == 0.0 and max(r["lr"] for r in rows) == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize(
    "name", ["simclr", "moco", "byol", "dino", "deepcluster", "deepercluster", "selflabel"]
)
def test_method_options_are_the_data_the_cli_reads(name):
    # `sslzoo train --help` builds each method's options from trainers.methods.options without importing the
    # method; the method must train with exactly those.
    from trainers.methods import get_method, method_config, method_defaults

    cls = get_method(name)
    assert cls.Config is method_config(name) and cls.defaults == method_defaults(name)
