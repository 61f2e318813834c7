"""DeepCluster's Sobel input (zoo.sobel): fixed filters, the right gradients, and an export that zoo.load rebuilds."""

from __future__ import annotations

import timm
import torch

import zoo
from trainers import train
from zoo.sobel import SobelFilter


def test_sobel_filter_is_the_papers_gradients_of_the_channel_mean():
    # A vertical step edge (0 left, 1 right) in all three channels: d/dx is the Sobel response −(1+2+1) = −4 on
    # the two columns next to the edge, d/dy is 0 away from the top and bottom borders.
    x = torch.zeros(1, 3, 6, 6)
    x[..., 3:] = 1.0
    out = SobelFilter(3)(x)
    assert out.shape == (1, 2, 6, 6)
    assert torch.allclose(out[0, 0, 1:-1, 2:4], torch.full((4, 2), -4.0))
    assert torch.allclose(out[0, 0, 1:-1, :2], torch.zeros(4, 2))
    assert torch.allclose(out[0, 1, 1:-1, 1:-1], torch.zeros(4, 4))
    # Colour only enters through the mean: permuting the channels changes nothing.
    y = torch.rand(2, 3, 8, 8)
    assert torch.allclose(SobelFilter(3)(y), SobelFilter(3)(y[:, [2, 0, 1]]), atol=1e-6)


def test_sobel_filters_are_not_parameters():
    net = timm.create_model("sslzoo_sobel", base_arch="sslzoo_cnn4", in_chans=3, num_classes=0)
    names = [n for n, _ in net.named_parameters()]
    assert names and all(n.startswith("backbone.") for n in names)
    assert net.backbone.features[0].in_channels == 2


def test_deepcluster_sobel_export_loads_with_zoo_load_and_gives_the_same_features(tmp_path):
    run = train(
        "deepcluster",
        dataset="digits",
        arch_args=("widths=(8,8,8,8)",),
        image_size=16,
        batch_size=256,
        epochs=1,
        k=10,
        pca_dim=8,
        sobel=True,
        progress=False,
        knn_every=0,
        out=str(tmp_path / "run"),
    )
    encoder = zoo.load(str(run))
    assert encoder.entry.arch == "sslzoo_sobel"
    # The trained backbone, rebuilt by hand from the checkpoint, computes what the exported encoder computes.
    state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["method"]
    net = timm.create_model(
        "sslzoo_sobel", base_arch="sslzoo_cnn4", in_chans=1, num_classes=0, widths=(8,) * 4
    )
    net.load_state_dict({k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")})
    x = torch.rand(4, 1, 16, 16)
    assert torch.allclose(encoder.model(x), net.eval()(x), atol=1e-5)
    assert not torch.allclose(net.sobel.kernels, torch.zeros(2, 1, 3, 3))
