"""Every official registry entry, from a synthetic file in its published layout to the paper's forward.

For each entry a random state dict is written with the key names, prefixes, containers and extra entries of the file
upstream publishes (the layouts are listed in ``_official_file``), saved the way upstream saves it (``torch.save`` of
the training script's dict, or timm's ``model.safetensors``) into an offline cache (torch.hub's checkpoint folder or a
hand-built HF Hub cache at the entry's pinned revision). ``zoo.load`` must map every tensor, and its forward must equal
a reference forward written here from the papers' architecture descriptions: torchvision's ResNet-50 (the network all
ResNet entries were trained as), and a ViT forward written out from the weights (patchify, [CLS], positions, pre-norm
blocks, final LayerNorm, [CLS] output).

ViTs are built with 2 blocks instead of 12–40 (``depth`` in the entry's model arguments) so a test takes seconds on a
CPU; every kind of key a block has is still there.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

import zoo
from zoo import _hub
from zoo.errors import SslzooError
from zoo.registry import MODELS

OFFICIAL = {name: e for name, e in MODELS.items() if not e.source.startswith("folder:")}
VIT_DEPTH = 2


# ------------------------------------------------------------------ the papers' forwards, written out


def _cubic(distance: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel with a = -0.75 (the bicubic of PyTorch and OpenCV)."""
    d = abs(distance)
    if d <= 1:
        return (a + 2) * d**3 - (a + 3) * d**2 + 1
    if d < 2:
        return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
    return 0.0


def _bicubic_matrix(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """(n_out, n_in) weights of a bicubic resize by ``scale``: output i samples input (i + 0.5) / scale - 0.5,
    borders replicated, no antialiasing."""
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = (i + 0.5) / scale - 0.5
        x0 = math.floor(src)
        for k in (-1, 0, 1, 2):
            weights[i, min(max(x0 + k, 0), n_in - 1)] += _cubic(src - (x0 + k))
    return weights


def official_positions(pos_embed: torch.Tensor, h0: int, w0: int) -> torch.Tensor:
    """DINO/DINOv2 ``interpolate_pos_encoding``: the trained M×M grid resized by ((h0 + 0.1) / M, (w0 + 0.1) / M)."""
    n = pos_embed.shape[1] - 1
    m = round(math.sqrt(n))
    if n == h0 * w0 and h0 == w0:
        return pos_embed
    grid = pos_embed[0, 1:].double().numpy().reshape(m, m, -1)
    rows = _bicubic_matrix(m, h0, (h0 + 0.1) / m)
    cols = _bicubic_matrix(m, w0, (w0 + 0.1) / m)
    out = np.einsum("im,mnd,jn->ijd", rows, grid, cols).reshape(h0 * w0, -1)
    return torch.cat([pos_embed[0, :1].double(), torch.from_numpy(out)])[None].float()


def vit_reference(sd: dict[str, torch.Tensor], x: torch.Tensor, heads: int) -> torch.Tensor:
    """ViT [CLS] embedding (Dosovitskiy et al. 2021, Eq. 1–4; DINOv2 adds LayerScale and, for ViT-g, SwiGLU)."""
    weight = sd["patch_embed.proj.weight"]
    patch, dim = weight.shape[-1], weight.shape[0]
    tokens = F.conv2d(x, weight, sd["patch_embed.proj.bias"], stride=patch)  # (B, D, h0, w0)
    h0, w0 = tokens.shape[-2:]
    tokens = torch.cat([sd["cls_token"].expand(len(x), -1, -1), tokens.flatten(2).transpose(1, 2)], dim=1)
    tokens = tokens + official_positions(sd["pos_embed"], h0, w0)

    def norm(t, name):
        return F.layer_norm(t, (dim,), sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-6)

    def linear(t, name):
        return t @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]

    batch, length = tokens.shape[:2]
    for i in range(sum(k.endswith("norm1.weight") for k in sd)):
        p = f"blocks.{i}."
        qkv = linear(norm(tokens, p + "norm1"), p + "attn.qkv").reshape(batch, length, 3, heads, dim // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim // heads), dim=-1)
        out = linear((attn @ v).transpose(1, 2).reshape(batch, length, dim), p + "attn.proj")
        tokens = tokens + out * sd.get(p + "ls1.gamma", 1.0)
        hidden = linear(norm(tokens, p + "norm2"), p + "mlp.fc1")
        if sd[p + "mlp.fc2.weight"].shape[1] * 2 == hidden.shape[-1]:  # SwiGLU: silu(x W1) * (x W2)
            a, b = hidden.chunk(2, dim=-1)
            hidden = F.silu(a) * b
        else:
            hidden = F.gelu(hidden)
        tokens = tokens + linear(hidden, p + "mlp.fc2") * sd.get(p + "ls2.gamma", 1.0)
    return norm(tokens, "norm")[:, 0]


def resnet_reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """torchvision's ResNet-50 (He et al. 2016), pooled 2048-d features: what every ResNet entry was trained as."""
    with torch.device("meta"):  # no random initialisation: every tensor comes from sd
        net = torchvision.models.resnet50()
    net.fc = torch.nn.Identity()
    net.load_state_dict(sd, strict=True, assign=True)
    return net.eval()(x)


# ------------------------------------------------------------------ synthetic encoders


def _random_resnet50(seed: int) -> dict[str, torch.Tensor]:
    """torchvision ResNet-50 weights without the classifier, with non-trivial BatchNorm statistics."""
    return dict(_random_resnet50_cached(seed))


@functools.cache
def _random_resnet50_cached(seed: int) -> dict[str, torch.Tensor]:  # built once: seconds on a busy CPU
    torch.manual_seed(seed)
    net = torchvision.models.resnet50()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("fc.")}


def _random_vit(timm_arch: str, seed: int, **kwargs) -> dict[str, torch.Tensor]:
    """The keys of timm's model for the Hub file, every tensor random (LayerScale too, so blocks matter)."""
    net = timm.create_model(timm_arch, num_classes=0, depth=VIT_DEPTH, **kwargs)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in net.state_dict().items():
        noise = torch.randn(value.shape, generator=g)
        if key.endswith("gamma"):
            out[key] = 0.5 * noise
        elif "norm" in key and key.endswith("weight"):
            out[key] = 1 + 0.2 * noise
        elif key in ("pos_embed", "cls_token"):
            out[key] = 0.5 * noise
        else:
            out[key] = 0.05 * noise
    return out


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


def _mlp(prefix: str, dims: tuple[int, ...], bn: bool = True) -> dict[str, torch.Tensor]:
    """Linear (+ BN) layers named like nn.Sequential indices: a projection head or predictor."""
    sd, i = {}, 0
    for d_in, d_out in itertools.pairwise(dims):
        sd |= {f"{prefix}{i}.weight": torch.randn(d_out, d_in), f"{prefix}{i}.bias": torch.randn(d_out)}
        i += 1
        if bn:
            sd |= {f"{prefix}{i}.weight": torch.ones(d_out), f"{prefix}{i}.bias": torch.zeros(d_out)}
            sd |= {
                f"{prefix}{i}.running_mean": torch.zeros(d_out),
                f"{prefix}{i}.running_var": torch.ones(d_out),
            }
            sd[f"{prefix}{i}.num_batches_tracked"] = torch.tensor(0)
            i += 1
        i += 1  # the activation
    return sd


# ------------------------------------------------------------------ the published layouts


def _official_file(name: str, enc: dict[str, torch.Tensor]) -> dict:
    """What upstream's training script saves for entry ``name`` around encoder weights ``enc``.

    * MoCo v2 (moco/main_moco.py, builder.py with --mlp): ``{"epoch", "arch", "state_dict", "optimizer"}``; the DDP
      state dict holds ``module.encoder_q.*`` (fc = 2-layer MLP ``fc.0``/``fc.2``), ``module.encoder_k.*``,
      ``module.queue`` (128 × K) and ``module.queue_ptr``.
    * MoCo v3 (moco-v3/main_moco.py): ``{"epoch", "arch", "state_dict", "optimizer", "scaler"}`` with
      ``module.base_encoder.*`` (projector as ``fc.*`` for ResNet, ``head.*`` for ViT), ``module.momentum_encoder.*``
      and ``module.predictor.*``.
    * SwAV (released ``swav_800ep_pretrain.pth.tar``): the flat DDP state dict, ``module.*`` backbone,
      ``module.projection_head.*`` and ``module.prototypes.weight``; DeepCluster-v2 / SeLa-v2 have several heads
      ``module.prototypes.prototypesN.weight``.
    * DINO ResNet-50 (dino/hubconf.py loads it into torchvision's resnet50 with fc = Identity): flat backbone.
    * Self-Label (self-label README): ``{"state_dict": torchvision ResNet-50 with a 3000-way fc, "L": labels}``.
    """
    if name == "mocov2-resnet50":
        sd = {
            **_prefixed(enc, "module.encoder_q."),
            **_mlp("module.encoder_q.fc.", (2048, 2048, 128), bn=False),
        }
        sd |= {
            **_prefixed(enc, "module.encoder_k."),
            **_mlp("module.encoder_k.fc.", (2048, 2048, 128), bn=False),
        }
        sd |= {"module.queue": torch.randn(128, 64), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
        return {
            "epoch": 800,
            "arch": "resnet50",
            "state_dict": sd,
            "optimizer": {"state": {}, "param_groups": []},
        }
    if name.startswith("mocov3-"):
        head = "fc." if name.endswith("resnet50") else "head."
        width = enc["cls_token"].shape[-1] if "cls_token" in enc else 2048
        sd = {
            **_prefixed(enc, "module.base_encoder."),
            **_mlp(f"module.base_encoder.{head}", (width, 64, 32)),
        }
        sd |= {
            **_prefixed(enc, "module.momentum_encoder."),
            **_mlp(f"module.momentum_encoder.{head}", (width, 32)),
        }
        sd |= _mlp("module.predictor.", (32, 64, 32))
        return {"epoch": 300, "arch": "vit_small", "state_dict": sd, "optimizer": {}, "scaler": {}}
    if name in ("swav-resnet50", "deepclusterv2-resnet50", "selav2-resnet50"):
        sd = {**_prefixed(enc, "module."), **_mlp("module.projection_head.", (2048, 2048, 128))}
        if name == "swav-resnet50":
            sd["module.prototypes.weight"] = torch.randn(3000, 128)
        else:
            sd |= {f"module.prototypes.prototypes{i}.weight": torch.randn(3000, 128) for i in range(3)}
        return sd
    if name == "dino-resnet50":
        return dict(enc)
    if name == "selflabel-resnet50":
        sd = {**enc, "fc.weight": torch.randn(3000, 2048), "fc.bias": torch.randn(3000)}
        return {"state_dict": sd, "L": torch.randint(0, 3000, (10, 64))}
    raise KeyError(name)


# Hub entries: the timm architecture whose keys timm's repo uses, and its arguments.
_HUB_ARCHS = {
    "dino-vits16": ("vit_small_patch16_224", {}),
    "dino-vits8": ("vit_small_patch8_224", {}),
    "dino-vitb16": ("vit_base_patch16_224", {}),
    "dino-vitb8": ("vit_base_patch8_224", {}),
    "dinov2-vits14": ("vit_small_patch14_dinov2", {}),
    "dinov2-vitb14": ("vit_base_patch14_dinov2", {}),
    "dinov2-vitl14": ("vit_large_patch14_dinov2", {}),
    "dinov2-vitg14": ("vit_giant_patch14_dinov2", {}),
}


def _pin_to(entry, path):
    """The entry pinned to the synthetic file, by the same kind of hash it pins the real one with."""
    digests = _hub.file_digests(path)
    if entry.md5:
        return entry.with_(md5=digests["md5"])
    return entry.with_(sha256=digests["sha256"]) if entry.sha256 else entry


def test_every_official_entry_has_its_published_layout_here():
    for name in OFFICIAL:
        if name not in _HUB_ARCHS:
            _official_file(name, {})  # KeyError: an entry whose published file is not described above


@pytest.mark.parametrize("name", sorted(_HUB_ARCHS))
def test_hub_vit_entries_map_every_tensor_and_run_the_official_forward(
    name, hub_cache, tmp_path, monkeypatch
):
    entry = OFFICIAL[name]
    timm_arch, kwargs = _HUB_ARCHS[name]
    state = _random_vit(timm_arch, seed=len(name), **kwargs)
    (tmp_path / "repo").mkdir()
    save_file(state, tmp_path / "repo" / "model.safetensors")
    repo_id, revision = _hub.parse_hub_id(entry.source)
    hub_cache.add_repo(repo_id, tmp_path / "repo", revision=revision or "0" * 40)
    path = tmp_path / "repo" / "model.safetensors"
    small = _pin_to(entry, path).with_(model_args={**entry.model_args, "depth": VIT_DEPTH})
    monkeypatch.setitem(MODELS, name, small)

    enc = zoo.load(name, device="cpu")
    loaded = enc.model.state_dict()
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], v) for k, v in state.items())
    assert enc.identity == f"{name}@{revision or '0' * 40}"
    heads = timm.create_model(timm_arch, depth=1, **kwargs).blocks[0].attn.num_heads
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(enc.embed(x), vit_reference(state, x, heads), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["dinov2-vits14", "dino-vits16"])
def test_any_input_size_and_the_attention_maps_take_the_same_official_positions(
    name, hub_cache, tmp_path, monkeypatch
):
    entry = OFFICIAL[name]
    timm_arch, _ = _HUB_ARCHS[name]
    state = _random_vit(timm_arch, seed=1)
    (tmp_path / "repo").mkdir()
    save_file(state, tmp_path / "repo" / "model.safetensors")
    repo_id, revision = _hub.parse_hub_id(entry.source)
    hub_cache.add_repo(repo_id, tmp_path / "repo", revision=revision or "0" * 40)
    small = _pin_to(entry, tmp_path / "repo" / "model.safetensors").with_(model_args={"depth": VIT_DEPTH})
    monkeypatch.setitem(MODELS, name, small)
    enc = zoo.load(name, device="cpu")
    heads = enc.model.blocks[0].attn.num_heads
    patch = enc.model.patch_embed.patch_size[0]
    x = torch.randn(1, 3, 10 * patch, 7 * patch)  # a non-square input: a 10×7 grid
    torch.testing.assert_close(enc.embed(x), vit_reference(state, x, heads), rtol=1e-4, atol=1e-4)
    # The attention maps read the last block's input, which went through the same positions.
    assert enc.attention_maps(x).shape == (1, heads, 10, 7)
    # An app-style resize of the default input size keeps the trained grid: the forward does not change.
    with torch.no_grad():
        before = enc.model(x)
        enc.model.set_input_size(img_size=(10 * patch, 7 * patch))
        torch.testing.assert_close(enc.model(x), before)
    assert enc.model.pos_embed.shape == state["pos_embed"].shape


def test_dinov2_positions_at_224_are_the_official_formula_not_timms_antialiased_resample():
    from timm.layers import resample_abs_pos_embed

    from zoo.dino_vit import interpolate_pos_encoding

    torch.manual_seed(0)
    pos = torch.randn(1, 1 + 37 * 37, 8)
    ours = interpolate_pos_encoding(pos, (16, 16))
    # scale_factor = (16 + 0.1) / 37 on both axes, bicubic, no antialiasing, computed above by hand.
    torch.testing.assert_close(ours, official_positions(pos, 16, 16), rtol=1e-5, atol=1e-5)
    assert ours.shape == (1, 1 + 16 * 16, 8)
    timm_once = resample_abs_pos_embed(pos, new_size=[16, 16], num_prefix_tokens=1)
    assert (timm_once - ours).abs().max() > 0.1  # what the registry did before: a visibly different embedding
    # At the trained grid the embedding is used as it is (upstream's early return).
    assert interpolate_pos_encoding(pos, (37, 37)) is pos


@pytest.mark.parametrize("name", sorted(set(OFFICIAL) - set(_HUB_ARCHS)))
def test_url_entries_map_every_tensor_and_run_the_official_forward(name, torch_hub_dir, monkeypatch):
    entry = OFFICIAL[name]
    if entry.arch == "resnet50":
        enc_state = _random_resnet50(seed=0)
        x = torch.randn(2, 3, 40, 40)  # small: the 2048-d pooled map from a 2×2 last stage
    else:  # MoCo v3 ViTs: timm's VisionTransformer keys (moco-v3/vits.py subclasses it), 12 heads for ViT-S
        enc_state = _random_vit(entry.arch, seed=len(name), **entry.model_args)
        x = torch.randn(1, 3, 224, 224)
    path = _hub.url_cached_file(entry.source)
    torch.save(_official_file(name, enc_state), path)
    pinned = _pin_to(entry, path)
    if entry.is_vit:
        pinned = pinned.with_(model_args={**entry.model_args, "depth": VIT_DEPTH})
    monkeypatch.setitem(MODELS, name, pinned)

    enc = zoo.load(name, device="cpu")
    loaded = enc.model.state_dict()
    assert loaded.keys() == enc_state.keys() and all(torch.equal(loaded[k], v) for k, v in enc_state.items())
    assert enc.identity == f"{name}@{_hub.sha256_file(path)[:16]}"  # URL files are identified by content
    with torch.no_grad():
        if entry.arch == "resnet50":
            expected = resnet_reference(enc_state, x)
        else:
            expected = vit_reference(enc_state, x, heads=entry.model_args.get("num_heads", 12))
    torch.testing.assert_close(enc.embed(x), expected, rtol=1e-4, atol=1e-4)


def test_swav_family_also_reads_a_training_checkpoint_with_state_dict(torch_hub_dir):
    # main_swav.py's checkpoint.pth.tar: {"epoch", "state_dict", "optimizer", "amp"}, read as eval_linear.py does.
    enc_state = _random_resnet50(seed=0)
    path = _hub.url_cached_file(OFFICIAL["deepclusterv2-resnet50"].source)
    file = {"epoch": 800, "state_dict": _official_file("deepclusterv2-resnet50", enc_state), "optimizer": {}}
    torch.save(file, path)
    loaded = zoo.load("deepclusterv2-resnet50", device="cpu").model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in enc_state.items())


def test_swav_family_normalises_like_swavs_eval_linear(torch_hub_dir):
    from PIL import Image
    from torchvision import transforms

    torch.save(
        _official_file("selav2-resnet50", _random_resnet50(seed=0)),
        _hub.url_cached_file(OFFICIAL["selav2-resnet50"].source),
    )
    enc = zoo.load("selav2-resnet50", device="cpu")
    image = Image.new("RGB", (300, 260), (220, 40, 90))
    image.paste((10, 250, 40), (80, 60, 200, 180))
    swav_eval = transforms.Compose(  # facebookresearch/swav eval_linear.py, validation transform
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.228, 0.224, 0.225]),
        ]
    )
    torch.testing.assert_close(enc.transform(image), swav_eval(image))


# ------------------------------------------------------------------ integrity


def test_every_official_file_is_pinned_or_says_why_not():
    for name, entry in OFFICIAL.items():
        if entry.source.startswith("hf-hub:"):
            _, revision = _hub.parse_hub_id(entry.source)
            pinned = revision is not None and len(revision) == 40 and int(revision, 16) >= 0
        else:
            assert entry.source.startswith("https://"), f"{name} is not fetched over https"
            pinned = bool(entry.sha256 or entry.md5)
        assert pinned != bool(entry.unpinned), f"{name}: pinned={pinned} but unpinned={entry.unpinned!r}"
        for digest, length in ((entry.sha256, 64), (entry.md5, 32)):
            assert digest is None or (len(digest) == length and int(digest, 16) >= 0), name


def test_a_pinned_file_that_does_not_match_is_refused_and_a_fresh_download_deleted(
    tmp_path, torch_hub_dir, monkeypatch
):
    # A real download through urllib (file:// URL): mismatching bytes never enter the cache.
    monkeypatch.setattr(_hub, "offline", lambda: False)
    source = tmp_path / "upstream" / "weights.pth"
    source.parent.mkdir()
    torch.save({"w": torch.ones(3)}, source)
    url = source.as_uri()
    good = hashlib.sha256(source.read_bytes()).hexdigest()
    with pytest.raises(SslzooError) as info:
        _hub.url_file(url, sha256="0" * 64)
    message = str(info.value)
    assert url in message and good[:16] in message and "deleted" in message and "\n" not in message
    assert list((torch_hub_dir / "checkpoints").iterdir()) == []  # neither the file nor a partial one is left
    # The MD5 pin works the same way, and a matching download lands in torch.hub's cache.
    with pytest.raises(SslzooError, match="MD5"):
        _hub.url_file(url, md5="0" * 32)
    path = _hub.url_file(url, md5=hashlib.md5(source.read_bytes()).hexdigest())
    assert path == _hub.url_cached_file(url) and path.read_bytes() == source.read_bytes()
    # A file that was already in the cache is the user's: refused by name, not deleted.
    with pytest.raises(SslzooError, match=r"delete .* and load again"):
        _hub.url_file(url, sha256="0" * 64)
    assert path.is_file()


def test_a_hub_entry_whose_cached_file_differs_from_the_pin_is_refused(hub_cache, tmp_path):
    entry = OFFICIAL["dinov2-vits14"]
    (tmp_path / "repo").mkdir()
    save_file({"w": torch.zeros(2)}, tmp_path / "repo" / "model.safetensors")
    repo_id, revision = _hub.parse_hub_id(entry.source)
    snapshot = hub_cache.add_repo(repo_id, tmp_path / "repo", revision=revision)
    with pytest.raises(SslzooError, match=f"SHA-256 .*expected {entry.sha256[:16]}") as info:
        zoo.load("dinov2-vits14", device="cpu")
    assert "\n" not in str(info.value) and (snapshot / "model.safetensors").is_file()


def test_an_unreadable_checkpoint_says_what_was_found(torch_hub_dir):
    path = _hub.url_cached_file(OFFICIAL["swav-resnet50"].source)
    # A full training checkpoint pickling its argparse options (as DINO's and SwAV's training scripts save them).
    torch.save({"args": argparse.Namespace(arch="resnet50"), "state_dict": {"w": torch.zeros(1)}}, path)
    with pytest.raises(SslzooError) as info:
        zoo.load("swav-resnet50")
    message = str(info.value)
    assert "argparse.Namespace" in message and "weights_only" not in message and "\n" not in message
    path.write_text("<!DOCTYPE html><html><body>Access denied</body></html>")
    with pytest.raises(SslzooError, match="web page"):
        zoo.load("swav-resnet50")
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 102400\n")
    with pytest.raises(SslzooError, match="Git LFS pointer"):
        zoo.load("swav-resnet50")
    data = _prefixed(_random_resnet50(seed=0), "module.")
    torch.save(data, path)
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(SslzooError, match="corrupted or truncated"):
        zoo.load("swav-resnet50")


def test_a_mismatching_hub_download_is_deleted_with_its_blob(tmp_path):
    # huggingface_hub's layout: snapshots/REV/FILE is a link to blobs/ETAG; both go, nothing else in the repo does.
    repo = tmp_path / "models--timm--x"
    blob = repo / "blobs" / "0123abcd"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"not the pinned weights")
    other = repo / "blobs" / "config"
    other.write_text("{}")
    link = repo / "snapshots" / ("a" * 40) / "model.safetensors"
    link.parent.mkdir(parents=True)
    link.symlink_to(blob)
    with pytest.raises(SslzooError, match="the download was deleted") as info:
        _hub.check_digest(link, sha256="0" * 64, downloaded=True, name="timm/x model.safetensors")
    assert str(info.value).startswith("timm/x model.safetensors has SHA-256")
    assert not link.exists() and not link.is_symlink() and not blob.exists() and other.is_file()
