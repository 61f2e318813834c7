"""``sslzoo models`` and ``sslzoo embed``."""

from __future__ import annotations

import json

import numpy as np
import timm
import torch

import zoo.architectures  # registers the sslzoo_* architectures with timm
from app.cli import main
from zoo.registry import MODELS


def test_models_lists_every_entry_with_numbers_and_cache_state(hub_cache, tmp_path, capsys):
    (tmp_path / "fake").mkdir()  # "cached" only asks the HF cache whether the file is there
    (tmp_path / "fake" / "model.safetensors").write_bytes(b"x")
    hub_cache.add_repo("timm/vit_small_patch8_224.dino", tmp_path / "fake")
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows.keys() == MODELS.keys()
    assert rows["dino-vits8"]["cached"] is True and rows["dino-vits16"]["cached"] is False
    assert rows["dino-vits8"]["published"] == {"imagenet_knn": 78.3, "imagenet_linear": 79.7}
    assert main(["models", "mocov3"]) == 0
    table = capsys.readouterr().out
    assert "mocov3-vits16" in table and "73.2" in table and "dino-vits16" not in table


def test_embed_writes_the_encoders_features_and_the_labels(tmp_path, capsys):
    torch.manual_seed(0)
    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0).eval()
    folder = zoo.save_encoder(net, tmp_path / "run" / "encoder", model_args={"in_chans": 1})
    out = tmp_path / "feats" / "digits.npy"
    assert main(["embed", str(tmp_path / "run"), "digits", "--out", str(out), "--batch-size", "100"]) == 0
    feats, labels = np.load(out), np.load(tmp_path / "feats" / "digits.labels.npy")
    test = zoo.load_dataset("digits", split="test")
    assert feats.shape == (360, 256) and feats.dtype == np.float32
    np.testing.assert_array_equal(labels, np.asarray(test["label"]))
    expected = zoo.load(folder, device="cpu").embed(list(test["image"][:20]))
    np.testing.assert_allclose(feats[:20], expected.numpy(), rtol=1e-5, atol=1e-5)
    assert "360 × 256" in capsys.readouterr().out
    again = tmp_path / "feats" / "again.npy"
    assert main(["embed", str(tmp_path / "run"), "digits", "--out", str(again), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shape"] == [360, 256] and report["features"] == str(again)
    np.testing.assert_array_equal(np.load(again), feats)


def test_embed_with_an_unknown_model_is_one_line(capsys):
    assert main(["embed", "swav-resnet5", "digits"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean swav-resnet50" in err and err.count("\n") == 1
