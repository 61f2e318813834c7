"""zoo.load on our own exported folders and run folders, and what an Encoder promises (embed, transform, identity)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torchvision import transforms

import zoo.architectures  # registers the sslzoo_* architectures with timm
from zoo.errors import SslzooError


def _random_images(n: int, size: int = 28, mode: str = "L", seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, 3)
    return [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode) for _ in range(n)]


@pytest.fixture(scope="module")
def cnn_folder(tmp_path_factory):
    """A grayscale sslzoo_cnn4 exported like a trainer does, at 28 px with mean/std 0.5 — inside RUN/encoder/."""
    torch.manual_seed(0)
    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0).eval()
    # Non-trivial BatchNorm statistics so eval mode matters.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    run = tmp_path_factory.mktemp("runs") / "simclr-run"
    zoo.save_encoder(
        net,
        run / "encoder",
        model_args={"in_chans": 1},
        pretrained_cfg={"input_size": (1, 28, 28), "mean": (0.5,), "std": (0.5,), "crop_pct": 1.0},
        metadata={"method": "simclr", "dataset": "fashion-mnist"},
    )
    return run, net


def test_load_run_folder_matches_the_model_it_was_exported_from(cnn_folder):
    run, net = cnn_folder
    enc = zoo.load(run, device="cpu")
    images = _random_images(6, size=28)
    # The transform a trainer evaluated with, written out by hand.
    expected_tf = transforms.Compose(
        [
            transforms.Resize(28),
            transforms.CenterCrop(28),
            transforms.ToTensor(),
            transforms.Normalize([0.5], [0.5]),
        ]
    )
    batch = torch.stack([expected_tf(im) for im in images])
    torch.testing.assert_close(torch.stack([enc.transform(im) for im in images]), batch)
    with torch.no_grad():
        expected = net(batch)
    torch.testing.assert_close(enc.embed(images), expected)
    assert enc.dim == 256 and enc.entry.method == "simclr" and enc.entry.name == "simclr-run"
    assert not enc.training


def test_exported_folder_and_run_folder_are_the_same_encoder(cnn_folder):
    run, _ = cnn_folder
    by_run, by_folder = zoo.load(str(run)), zoo.load(str(run / "encoder"))
    weights = (run / "encoder" / "model.safetensors").read_bytes()
    assert by_run.identity == by_folder.identity == f"sha256:{hashlib.sha256(weights).hexdigest()}"


def test_embed_accepts_pil_tensor_and_dataset_and_ignores_batch_size(cnn_folder):
    import datasets

    run, _ = cnn_folder
    enc = zoo.load(run, device="cpu")
    images = _random_images(11, size=28, seed=1)
    from_pil = enc.embed(images, batch_size=4)
    assert from_pil.shape == (11, 256) and from_pil.dtype == torch.float32
    from_tensor = enc.embed(torch.stack([enc.transform(im) for im in images]), batch_size=256)
    ds = datasets.Dataset.from_dict({"image": images, "label": list(range(11))}).cast_column(
        "image", datasets.Image()
    )
    from_ds = enc.embed(ds, batch_size=3)
    torch.testing.assert_close(from_tensor, from_pil)
    torch.testing.assert_close(from_ds, from_pil)


def test_rgb_images_are_converted_for_a_grayscale_encoder(cnn_folder):
    run, _ = cnn_folder
    enc = zoo.load(run, device="cpu")
    rgb = _random_images(3, size=28, mode="RGB", seed=2)
    gray = [im.convert("L") for im in rgb]
    assert enc.transform(rgb[0]).shape == (1, 28, 28)
    torch.testing.assert_close(enc.embed(rgb), enc.embed(gray))


def test_embed_on_real_digits_gives_distinct_finite_features(cnn_folder):
    run, _ = cnn_folder
    enc = zoo.load(run, device="cpu")
    test = zoo.load_dataset("digits", split="test")
    feats = enc.embed(test, batch_size=128)
    assert feats.shape == (360, 256) and torch.isfinite(feats).all()
    assert torch.unique(feats, dim=0).shape[0] > 300  # 8×8 digits upsampled to 28 px stay distinguishable


def test_bfloat16_encoder_returns_float32_close_to_float32(cnn_folder):
    run, _ = cnn_folder
    images = _random_images(4, size=28, seed=3)
    full = zoo.load(run, device="cpu").embed(images)
    half = zoo.load(run, device="cpu", dtype=torch.bfloat16).embed(images)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, rtol=0.1, atol=0.1)


def test_from_model_wraps_a_random_baseline_with_its_pretrained_cfg_transform():
    torch.manual_seed(0)
    a = zoo.Encoder.from_model(
        timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0), name="random-sslzoo_cnn4"
    )
    b = zoo.Encoder.from_model(
        timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0), name="random-sslzoo_cnn4"
    )
    # pretrained_cfg says 32 px; the RGB ImageNet mean/std collapses to one channel instead of broadcasting to 3.
    x = a.transform(_random_images(1, size=28)[0])
    assert x.shape == (1, 32, 32)
    assert a.identity.startswith("random-sslzoo_cnn4@") and a.identity != b.identity
    assert a.embed(x[None]).shape == (1, 256) and a.dim == 256


def test_from_model_drops_a_classifier_head():
    enc = zoo.Encoder.from_model(timm.create_model("sslzoo_resnet18_small", num_classes=10), name="r18")
    assert enc.embed(torch.zeros(2, 3, 32, 32)).shape == (2, 512)


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (np.zeros((2, 28, 28), np.uint8), "list of PIL images"),
        (torch.zeros(2, 3, 28, 28), "(N, 1, H, W)"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "float"),
        ("image.png", "list of PIL images"),
    ],
)
def test_embed_rejects_other_inputs_with_one_line(cnn_folder, bad, words):
    run, _ = cnn_folder
    enc = zoo.load(run, device="cpu")
    with pytest.raises(SslzooError, match=None) as info:
        enc.embed(bad)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_unknown_names_and_empty_folders_fail_clearly(tmp_path):
    with pytest.raises(SslzooError, match="Did you mean dino-vits16"):
        zoo.load("dino-vit16")
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(SslzooError, match="has not exported its encoder"):
        zoo.load(tmp_path)
    with pytest.raises(SslzooError, match="no such folder"):
        zoo.load(str(tmp_path / "missing" / "run"))


def test_corrupted_exported_weights_fail_with_one_line(cnn_folder, tmp_path):
    import shutil

    run, _ = cnn_folder
    broken = tmp_path / "broken"
    shutil.copytree(run / "encoder", broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    # The SHA-256 the export recorded in sslzoo.json catches it before the file is parsed ...
    recorded = json.loads((broken / "sslzoo.json").read_text())["weights_sha256"]
    assert recorded == hashlib.sha256(data).hexdigest()
    with pytest.raises(SslzooError, match="changed after export") as info:
        zoo.load(broken)
    assert "\n" not in str(info.value) and recorded[:16] in str(info.value)
    # ... and a folder exported before hashes were recorded fails on reading it.
    (broken / "sslzoo.json").write_text("{}")
    with pytest.raises(SslzooError, match="corrupted or truncated"):
        zoo.load(broken)


def test_every_shipped_folder_records_the_sha256_of_its_weights():
    from zoo._loader import check_recorded_sha256
    from zoo.registry import SHIPPED_DIR, shipped_entries

    entries = shipped_entries()
    assert entries, "no shipped encoders found under models/"
    for entry in entries:
        folder = SHIPPED_DIR / entry.name
        meta = json.loads((folder / "sslzoo.json").read_text())
        weights = folder / "model.safetensors"
        assert meta["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest(), entry.name
        check_recorded_sha256(folder, weights)


def test_large_embeds_of_a_cnn_run_channels_last_and_leave_the_weights_as_they_were():
    torch.manual_seed(0)
    net = timm.create_model("sslzoo_resnet18_small", num_classes=0).eval()
    enc = zoo.Encoder.from_model(net, name="r18")
    x = torch.randn(40, 3, 16, 16)  # above CHANNELS_LAST_MIN_IMAGES
    layouts = []
    hook = net.conv1.register_forward_pre_hook(
        lambda m, args: layouts.append(m.weight.is_contiguous(memory_format=torch.channels_last))
    )
    feats = enc.embed(x, batch_size=20)
    hook.remove()
    with torch.no_grad():
        torch.testing.assert_close(feats, net(x), rtol=1e-4, atol=1e-5)
    assert layouts == [True, True]
    assert all(p.is_contiguous() for p in net.parameters())  # safetensors can still save it


def test_a_folder_naming_an_unknown_architecture_fails_with_the_closest_timm_names(cnn_folder, tmp_path):
    import json
    import shutil

    run, _ = cnn_folder
    broken = tmp_path / "renamed"
    shutil.copytree(run / "encoder", broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "architecture": "sslzoo_cnn5"}))
    with pytest.raises(SslzooError, match=r"no architecture 'sslzoo_cnn5' .*sslzoo_cnn4"):
        zoo.load(broken)


def test_architectures_that_cannot_be_built_on_the_meta_device_still_load(tmp_path):
    # Swin computes its relative-position index at init (a non-persistent buffer): built for real, then loaded.
    torch.manual_seed(0)
    args = {"img_size": 56, "embed_dim": 24, "depths": (1, 1), "num_heads": (1, 2)}
    net = timm.create_model("swin_tiny_patch4_window7_224", num_classes=0, **args).eval()
    folder = zoo.save_encoder(net, tmp_path / "swin", model_args=args)
    enc = zoo.load(folder, device="cpu")
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(x), net(x))
