"""The registry: every entry builds, Hub entries load from the HF cache, official checkpoint layouts load strictly.

All offline: Hub repos live in a hand-built HF cache (fixture ``hub_cache``), URL checkpoints in a temporary
torch.hub cache, written in the layout each official repository publishes.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import timm
import torch
from timm.models import save_for_hf
from torchvision import transforms

import zoo.architectures  # registers the sslzoo_* architectures with timm
from zoo import _hub
from zoo.errors import SslzooError
from zoo.registry import MODELS, list_models

REVISION = "1" * 40


@pytest.mark.parametrize("entry", list(MODELS.values()), ids=list(MODELS))
def test_every_entry_builds_with_its_published_dimension(entry):
    # On the meta device: no memory, no init, so even ViT-g/14 is instant.
    with torch.device("meta"):
        model = timm.create_model(entry.arch, **{**entry.model_args, "num_classes": 0})
    assert model.num_features == entry.dim
    assert entry.source.startswith(("hf-hub:", "https://", "http://", "folder:"))
    if not entry.source.startswith("folder:"):  # official checkpoints: provenance and the paper's numbers
        assert entry.licence != "unknown" and entry.paper and entry.published and entry.published_source


def test_list_models_filters_by_name_method_and_glob():
    assert [e.name for e in list_models("dino-vits")] == ["dino-vits16", "dino-vits8"]
    assert {e.method for e in list_models("swav")} == {"swav"}
    assert {e.name for e in list_models("*-resnet50")} >= {"mocov2-resnet50", "selflabel-resnet50"}
    assert len(zoo.list_models()) == len(MODELS)


# ------------------------------------------------------------------ Hub entries (DINO through timm's Hub repos)


@pytest.fixture(scope="module")
def random_vits16(tmp_path_factory):
    """A randomly initialised ViT-S/16 written as timm writes its Hub repos (built once: slow on 2 cores)."""
    torch.manual_seed(0)
    net = timm.create_model("vit_small_patch16_224.dino", num_classes=0).eval()
    folder = tmp_path_factory.mktemp("dino")
    save_for_hf(net, folder, safe_serialization=True)
    return net, folder


@pytest.fixture
def dino_vits16(hub_cache, random_vits16):
    """The random ViT-S/16 published as timm/vit_small_patch16_224.dino in the hand-built cache."""
    net, folder = random_vits16
    hub_cache.add_repo("timm/vit_small_patch16_224.dino", folder, revision=REVISION)
    return net


def test_dino_vits16_loads_from_the_hub_cache_and_embeds_like_timm(dino_vits16):
    enc = zoo.load("dino-vits16", device="cpu")
    assert enc.identity == f"dino-vits16@{REVISION}" and enc.dim == 384
    # timm's own hf-hub path over the same cache is the reference, not our loader.
    reference = timm.create_model(
        "hf-hub:timm/vit_small_patch16_224.dino", pretrained=True, num_classes=0
    ).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        tokens = reference.forward_features(x)  # (N, 1 + 196, 384), after the final norm
        torch.testing.assert_close(reference.forward_head(tokens), tokens[:, 0])
    torch.testing.assert_close(enc.embed(x), tokens[:, 0])


def test_dino_transform_is_the_papers_resize_256_bicubic_crop_224(dino_vits16):
    from PIL import Image

    enc = zoo.load("dino-vits16", device="cpu")
    image = Image.new("RGB", (320, 240), (200, 30, 90))
    image.paste((10, 250, 40), (100, 60, 200, 180))
    dino_eval = transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    torch.testing.assert_close(enc.transform(image), dino_eval(image))
    assert enc.transform(image.convert("L")).shape == (3, 224, 224)


def test_attention_maps_equal_the_last_blocks_cls_to_patch_softmax(dino_vits16):
    enc = zoo.load("dino-vits16", device="cpu")
    x = torch.randn(1, 3, 224, 224)
    maps = enc.attention_maps(x)
    assert maps.shape == (1, 6, 14, 14)

    # Independently: run the blocks by hand and compute softmax(q k^T / sqrt(d)) of the last one from its weights.
    net = dino_vits16
    with torch.no_grad():
        tokens = net._pos_embed(net.patch_embed(x))
        for block in net.blocks[:-1]:
            tokens = block(tokens)
        last = net.blocks[-1]
        h = last.norm1(tokens)
        qkv = h @ last.attn.qkv.weight.T + last.attn.qkv.bias  # (B, T, 3·C)
        B, T, C3 = qkv.shape
        heads, d = 6, C3 // 3 // 6
        q = qkv[..., : C3 // 3].reshape(B, T, heads, d).transpose(1, 2)
        k = qkv[..., C3 // 3 : 2 * C3 // 3].reshape(B, T, heads, d).transpose(1, 2)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        expected = attn[:, :, 0, 1:].reshape(B, heads, 14, 14)
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-6)
    # Each head's row sums to 1 over all tokens; the CLS→CLS share is what is missing from the map.
    assert torch.all(maps.sum(dim=(2, 3)) < 1 + 1e-5)


def test_attention_maps_refuse_a_cnn():
    enc = zoo.Encoder.from_model(timm.create_model("sslzoo_cnn4", num_classes=0), name="cnn")
    with pytest.raises(SslzooError, match="attention maps need a ViT"):
        enc.attention_maps(torch.zeros(1, 3, 32, 32))


def test_hub_repos_load_by_revision(hub_cache, tmp_path):
    nets = {}
    for i, rev in enumerate(("a" * 40, "b" * 40)):
        torch.manual_seed(i)
        nets[rev] = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0).eval()
        zoo.save_encoder(nets[rev], tmp_path / rev, model_args={"in_chans": 1}, metadata={"method": "byol"})
        hub_cache.add_repo("me/cnn", tmp_path / rev, revision=rev)  # refs/main ends on "b…"
    x = torch.randn(3, 1, 32, 32)
    for spec, rev in (("hf-hub:me/cnn", "b" * 40), (f"hf-hub:me/cnn@{'a' * 40}", "a" * 40)):
        enc = zoo.load(spec, device="cpu")
        assert enc.identity == f"hf-hub:me/cnn@{rev}" and enc.entry.method == "byol"
        with torch.no_grad():
            torch.testing.assert_close(enc.embed(x), nets[rev](x))


def test_hub_classifier_repo_gives_its_pre_logits(hub_cache, tmp_path):
    torch.manual_seed(0)
    net = timm.create_model("sslzoo_cnn4", num_classes=10).eval()
    save_for_hf(net, tmp_path / "clf", safe_serialization=True)
    hub_cache.add_repo("me/clf", tmp_path / "clf")
    enc = zoo.load("hf-hub:me/clf", device="cpu")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(x), net.forward_head(net.forward_features(x), pre_logits=True))


def test_offline_and_not_cached_names_the_repo_file_and_the_fix(hub_cache):
    with pytest.raises(SslzooError) as info:
        zoo.load("dino-vitb8")
    message = str(info.value)
    assert "timm/vit_base_patch8_224.dino" in message and "model.safetensors" in message
    assert "hf download" in message and "\n" not in message
    with pytest.raises(SslzooError, match="not a Hub model id"):
        zoo.load("hf-hub:just-a-name")


# ------------------------------------------------------------------ official .pth layouts (URL entries)


@functools.cache
def _timm_state(arch: str, seed: int, **kwargs) -> dict[str, torch.Tensor]:
    """A random timm encoder's state dict (cached: building a ResNet-50 takes seconds on a busy CPU)."""
    torch.manual_seed(seed)
    net = timm.create_model(arch, num_classes=0, **kwargs)
    # Non-trivial BatchNorm statistics, so a skipped buffer would change the output.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return {k: v.clone() for k, v in net.state_dict().items()}


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


# Every entry's published layout, mapped tensor by tensor and run against the paper's forward:
# tests/zoo/test_official_checkpoints.py.


def test_a_checkpoint_of_another_layout_is_reported_key_by_key(torch_hub_dir):
    # A SwAV file saved where the MoCo v3 entry expects its checkpoint: no 'state_dict' to descend into.
    enc_state = _timm_state("resnet50", 0)
    torch.save(_prefixed(enc_state, "module."), _hub.url_cached_file(MODELS["mocov3-resnet50"].source))
    with pytest.raises(SslzooError, match="expected the weights under 'state_dict'"):
        zoo.load("mocov3-resnet50")
    # A Self-Label file missing a stage: strict loading names the missing keys.
    partial = {k: v for k, v in enc_state.items() if not k.startswith("layer4.2.")}
    torch.save({"state_dict": partial}, _hub.url_cached_file(MODELS["selflabel-resnet50"].source))
    with pytest.raises(SslzooError, match=r"missing: layer4\.2\.conv1\.weight") as info:
        zoo.load("selflabel-resnet50")
    assert "\n" not in str(info.value)


def test_a_corrupted_download_fails_with_one_clear_line(torch_hub_dir):
    path = _hub.url_cached_file(MODELS["swav-resnet50"].source)
    torch.save(_prefixed(_timm_state("resnet50", 0), "module."), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(SslzooError, match="corrupted or truncated") as info:
        zoo.load("swav-resnet50")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_sha256_mismatch_is_caught(torch_hub_dir, monkeypatch):
    entry = MODELS["dino-resnet50"]
    path = _hub.url_cached_file(entry.source)
    torch.save(_timm_state("resnet50", 0), path)
    monkeypatch.setitem(MODELS, "dino-resnet50", entry.with_(sha256="0" * 64))
    with pytest.raises(SslzooError, match="SHA-256"):
        zoo.load("dino-resnet50")
    monkeypatch.setitem(MODELS, "dino-resnet50", entry.with_(sha256=_hub.sha256_file(path)))
    assert zoo.load("dino-resnet50", device="cpu").identity == f"dino-resnet50@{_hub.sha256_file(path)[:16]}"


def test_url_entry_offline_and_not_cached_says_where_to_put_the_file(torch_hub_dir):
    with pytest.raises(SslzooError) as info:
        zoo.load("mocov3-vitb16")
    message = str(info.value)
    assert "vit-b-300ep.pth.tar" in message and str(torch_hub_dir) in message and "\n" not in message


def test_folder_entries_load_from_inside_the_repository(tmp_path, monkeypatch):
    # The shape issue 9's shipped encoders take: a registry line whose source is an exported folder.
    from zoo import _loader, registry
    from zoo.registry import ModelEntry

    torch.manual_seed(0)
    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0).eval()
    zoo.save_encoder(net, tmp_path / "models" / "simclr-fmnist", model_args={"in_chans": 1})
    monkeypatch.setattr(registry, "REPO_ROOT", tmp_path)
    entry = ModelEntry(
        name="simclr-fmnist",
        method="simclr",
        arch="sslzoo_cnn4",
        source="folder:models/simclr-fmnist",
        dim=256,
    )
    monkeypatch.setitem(MODELS, entry.name, entry.with_(preprocessing=None))
    assert _loader.is_cached(entry)
    enc = zoo.load("simclr-fmnist", device="cpu")
    assert enc.identity.startswith("simclr-fmnist@sha256:") and enc.entry.method == "simclr"
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(x), net(x))


def test_registry_mean_and_std_are_timms():
    # The registry writes timm's ImageNet constants out so it imports no timm (`sslzoo models` stays cheap).
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from zoo import registry

    assert registry.IMAGENET_DEFAULT_MEAN == IMAGENET_DEFAULT_MEAN
    assert registry.IMAGENET_DEFAULT_STD == IMAGENET_DEFAULT_STD


def test_torch_hub_dir_without_torch_is_torchs(tmp_path, monkeypatch):
    # `sslzoo models` asks whether URL weights are cached without importing torch: the same folder torch.hub uses.
    import sys

    import torch.hub

    for env in ({"TORCH_HOME": str(tmp_path / "th")}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}, {}):
        for key in ("TORCH_HOME", "XDG_CACHE_HOME"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        expected = _hub.torch_hub_dir()
        with monkeypatch.context() as m:
            m.delitem(sys.modules, "torch.hub")
            assert _hub.torch_hub_dir() == expected == Path(torch.hub.get_dir())
