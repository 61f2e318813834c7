"""Small-image backbones are timm models: created by name, feature extractors, and saved/loaded like timm's own."""

from __future__ import annotations

import hashlib
import json

import pytest
import timm
import torch

import zoo.architectures  # registers the sslzoo_* architectures with timm
from zoo.architectures import SmallCNN
from zoo.errors import SslzooError


@pytest.mark.parametrize(
    ("name", "kwargs", "dim"),
    [
        ("sslzoo_cnn4", {"in_chans": 1}, 256),
        ("sslzoo_resnet18_small", {"in_chans": 1}, 512),
        ("sslzoo_vit_tiny_patch4", {"in_chans": 1, "img_size": 28}, 192),
        ("sslzoo_vit_nano_patch4", {"in_chans": 1}, 96),
    ],
)
def test_registered_backbones_give_pooled_features(name, kwargs, dim):
    net = timm.create_model(name, num_classes=0, **kwargs).eval()
    assert net.num_features == dim
    with torch.no_grad():
        out = net(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, dim)


def test_small_cnn_pools_its_last_feature_map():
    torch.manual_seed(0)
    net = SmallCNN(in_chans=1).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        fmap = net.forward_features(x)
        assert fmap.shape == (2, 256, 3, 3)  # three 2× max-pools: 28 → 14 → 7 → 3
        assert torch.allclose(net(x), fmap.mean(dim=(2, 3)), atol=1e-6)


def test_small_stem_resnet_keeps_resolution_in_the_stem():
    net = timm.create_model("sslzoo_resnet18_small", in_chans=3, num_classes=0)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, torch.nn.Identity)


def test_reset_classifier_adds_and_removes_a_head():
    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=10)
    assert net(torch.randn(1, 1, 28, 28)).shape == (1, 10)
    net.reset_classifier(0)
    assert net(torch.randn(1, 1, 28, 28)).shape == (1, 256)


def test_save_encoder_round_trips_through_timm(tmp_path):
    torch.manual_seed(0)
    args = {"in_chans": 1, "img_size": 28}
    net = timm.create_model("sslzoo_vit_tiny_patch4", num_classes=0, **args).eval()
    folder = zoo.save_encoder(
        net,
        tmp_path / "enc",
        model_args=args,
        pretrained_cfg={"input_size": (1, 28, 28), "mean": (0.5,), "std": (0.5,)},
        metadata={"method": "dino", "seed": 3},
    )
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "sslzoo_vit_tiny_patch4" and config["num_features"] == 192
    assert config["pretrained_cfg"]["input_size"] == [1, 28, 28]
    weights_sha256 = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads((folder / "sslzoo.json").read_text()) == {
        "method": "dino",
        "seed": 3,
        "weights_sha256": weights_sha256,
    }
    loaded = timm.create_model(
        config["architecture"],
        pretrained=True,
        pretrained_cfg_overlay={"file": str(folder / "model.safetensors")},
        **config["model_args"],
    ).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_save_encoder_writes_a_channels_last_model_contiguously_and_leaves_it_as_it_was(tmp_path):
    torch.manual_seed(0)
    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0).eval()
    net = net.to(memory_format=torch.channels_last)
    assert not net.features[4].weight.is_contiguous()
    folder = zoo.save_encoder(net, tmp_path / "enc", model_args={"in_chans": 1})
    assert not net.features[4].weight.is_contiguous()  # the training model keeps its layout
    loaded = timm.create_model(
        "sslzoo_cnn4",
        pretrained=True,
        pretrained_cfg_overlay={"file": str(folder / "model.safetensors")},
        in_chans=1,
    ).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


def test_save_encoder_replaces_an_existing_folder_whole(tmp_path):
    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0)
    folder = tmp_path / "enc"
    zoo.save_encoder(net, folder, model_args={"in_chans": 1}, metadata={"version": "old"})
    zoo.save_encoder(
        net, folder, model_args={"in_chans": 1}, metadata={"version": "new"}
    )  # an earlier export
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "sslzoo.json"]
    assert '"new"' in (folder / "sslzoo.json").read_text()
    (folder / "stale.txt").write_text("the user's")  # no longer only what an export writes: never replaced
    with pytest.raises(SslzooError, match="not an earlier export"):
        zoo.save_encoder(net, folder, model_args={"in_chans": 1})
    assert (folder / "stale.txt").read_text() == "the user's"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".enc-")]  # no temp folder left behind
