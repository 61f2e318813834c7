"""``Encoder``: a loaded model together with its preprocessing, metadata and the embedding its paper evaluates.

>>> import timm, torch, zoo
>>> enc = zoo.Encoder.from_model(timm.create_model("sslzoo_cnn4", in_chans=1), name="random-sslzoo_cnn4")
>>> enc.embed(torch.zeros(5, 1, 32, 32)).shape, enc.dim
(torch.Size([5, 256]), 256)
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from zoo.errors import SslzooError
from zoo.registry import ModelEntry, Preprocessing

__all__ = ["FEATURE_KINDS", "Encoder", "build_transform", "model_in_chans"]

# Below this many images, converting a CNN's weights to channels-last costs more than it saves.
CHANNELS_LAST_MIN_IMAGES = 32
# ``Encoder.embed(amp=...)``: autocast precisions.
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# The features the papers' linear probes read, by name (see Encoder.features). ViT kinds take the tokens after the
# final norm, as DINO's and DINOv2's ``get_intermediate_layers`` return them.
FEATURE_KINDS: dict[str, str] = {
    "default": "what forward returns: the entry's embedding (CLS token for ViTs, pooled map for CNNs)",
    "last4_cls": "[CLS] of the last 4 blocks, concatenated (DINO eval_linear.py for ViT-S: n_last_blocks=4)",
    "cls_avgpool": "[CLS] of the last block + mean of its patch tokens (DINO ViT-B: avgpool_patchtokens; "
    "DINOv2's 1-layer linear head)",
    "last4_cls_avgpool": "[CLS] of the last 4 blocks + mean patch token of the last (DINOv2's 4-layer linear head)",
}
# kind → (number of last blocks whose [CLS] is taken, whether the last block's mean patch token is appended)
_VIT_KINDS = {"last4_cls": (4, False), "cls_avgpool": (1, True), "last4_cls_avgpool": (4, True)}


class _ConvertMode:
    """:func:`zoo.imaging.to_channels` as a picklable transform (``L`` for 1-channel encoders, ``RGB`` for 3):
    the decoding rule training uses (16-bit scaled, transparency on white)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __call__(self, image):
        from zoo.imaging import to_channels

        return to_channels(image, 1 if self.mode == "L" else 3)

    def __repr__(self) -> str:
        return f"ConvertMode({self.mode!r})"


def model_in_chans(model: nn.Module) -> int:
    """Input channels of a timm model: from its ``first_conv`` when the config names it, else the first conv."""
    first = getattr(model, "pretrained_cfg", {}).get("first_conv")
    if isinstance(first, str):
        try:
            return int(model.get_submodule(first).weight.shape[1])
        except AttributeError:
            pass
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    return 3


def _fit_channels(values: Sequence[float], in_chans: int) -> tuple[float, ...]:
    """Mean/std with one value per input channel: averaged when an RGB config meets a grayscale model.

    Normalize would otherwise broadcast a 3-value mean over a 1-channel image and silently return 3 channels.
    """
    values = tuple(float(v) for v in values)
    if len(values) == in_chans:
        return values
    avg = sum(values) / len(values)
    return (avg,) * in_chans


def build_transform(model: nn.Module, preprocessing: Preprocessing | None = None) -> Callable:
    """PIL image → ``(C, H, W)`` float tensor: mode conversion, then timm's eval transform (resize, crop, normalise).

    Args:
        model: A timm model; its ``pretrained_cfg`` gives the preprocessing unless ``preprocessing`` is given.
        preprocessing: Overrides (the registry entry's evaluation protocol).
    """
    from timm.data import create_transform, resolve_data_config
    from torchvision import transforms

    in_chans = model_in_chans(model)
    cfg = resolve_data_config({}, model=model)
    if preprocessing is not None:
        cfg.update(preprocessing.as_pretrained_cfg())
    cfg["input_size"] = (in_chans, *tuple(cfg["input_size"])[-2:])
    cfg["mean"] = _fit_channels(cfg["mean"], in_chans)
    cfg["std"] = _fit_channels(cfg["std"], in_chans)
    keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
    timm_tf = create_transform(**{k: cfg[k] for k in keys if k in cfg}, is_training=False)
    steps = list(getattr(timm_tf, "transforms", [timm_tf]))
    return transforms.Compose([_ConvertMode("L" if in_chans == 1 else "RGB"), *steps])


def _weights_digest(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class _PILList(torch.utils.data.Dataset):
    def __init__(self, images: Sequence[Any], transform: Callable) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.images[i])


class _HFImages(torch.utils.data.Dataset):
    def __init__(self, ds: Any, transform: Callable) -> None:
        self.ds, self.transform = ds, transform

    def __len__(self) -> int:
        return len(self.ds)

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        # One Arrow read per batch instead of one per image.
        return [self.transform(image) for image in self.ds[indices]["image"]]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.ds[i]["image"])


class _PathList(torch.utils.data.Dataset):
    """Image files, decoded and transformed in the DataLoader's workers (the ImageNet-scale path)."""

    def __init__(self, paths: Sequence[Any], transform: Callable) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            return self.transform(image)


class Encoder(nn.Module):
    """An image encoder: ``forward`` maps ``(N, C, H, W)`` to the ``(N, D)`` embedding its paper evaluates.

    Build one with :func:`zoo.load` or :meth:`Encoder.from_model`.

    Attributes:
        model: The timm model (``num_classes=0``).
        entry: Metadata (:class:`~zoo.registry.ModelEntry`).
        transform: PIL image → ``(C, H, W)`` tensor, exactly the entry's evaluation preprocessing.
        identity: Stable cache key: registry name + revision, or SHA-256 of the weights.
    """

    def __init__(self, model: nn.Module, entry: ModelEntry, transform: Callable, identity: str) -> None:
        super().__init__()
        self.model = model.eval()
        self.entry = entry
        self.transform = transform
        self.identity = identity
        self.eval()

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        *,
        name: str,
        transform: Callable | None = None,
        method: str = "unknown",
        entry: ModelEntry | None = None,
    ) -> Encoder:
        """Wrap any timm model built with ``num_classes=0`` (e.g. a randomly initialised baseline).

        The transform defaults to the one in the model's ``pretrained_cfg``; the identity is ``name`` plus a hash of
        the current weights, so two different random initialisations never share a cache entry.

        >>> import timm
        >>> enc = Encoder.from_model(timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0), name="random")
        >>> enc.transform.transforms[0]
        ConvertMode('L')
        """
        if getattr(model, "num_classes", 0):
            model.reset_classifier(0)
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        if entry is None:
            entry = ModelEntry(
                name=name,
                method=method,
                arch=str(cfg.get("architecture") or type(model).__name__),
                source="memory",
                dim=int(getattr(model, "num_features", 0)),
                preprocessing=None,
                licence=str(cfg.get("license", "unknown")),
            )
        identity = f"{name}@weights-sha256:{_weights_digest(model)[:16]}"
        return cls(model, entry, transform or build_transform(model), identity)

    @property
    def dim(self) -> int:
        """Embedding dimension ``D``."""
        return int(self.model.num_features)

    @property
    def in_chans(self) -> int:
        return model_in_chans(self.model)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` → ``(N, D)``: CLS token after the final norm for ViTs, average-pooled map for CNNs."""
        return self.model(x)

    def features(self, x: torch.Tensor, kind: str = "default") -> torch.Tensor:
        """``(N, C, H, W)`` → ``(N, feature_dim(kind))``: the features a paper's linear probe reads.

        ``kind`` is one of :data:`FEATURE_KINDS`. The [CLS] tokens come first, then the mean patch token
        (DINOv2's order; DINO's ``eval_linear.py`` interleaves the two vectors, a fixed permutation of the same
        numbers that changes nothing for a linear classifier trained from an i.i.d. initialisation).

        >>> import timm
        >>> enc = Encoder.from_model(timm.create_model("vit_tiny_patch16_224", img_size=32), name="vit")
        >>> enc.features(torch.zeros(2, 3, 32, 32), "last4_cls").shape
        torch.Size([2, 768])
        """
        if kind == "default":
            return self.model(x)
        n_blocks, avgpool = self._vit_kind(kind)
        # [(patch tokens (N, L, C), prefix tokens (N, P, C)) for each of the last n blocks], after the final norm.
        outputs = self.model.get_intermediate_layers(x, n=n_blocks, return_prefix_tokens=True, norm=True)
        parts = [prefix[:, 0] for _, prefix in outputs]
        if avgpool:
            parts.append(outputs[-1][0].mean(dim=1))  # register tokens are prefix tokens: not averaged
        return torch.cat(parts, dim=-1)

    def feature_dim(self, kind: str = "default") -> int:
        """Width of :meth:`features` for ``kind``."""
        if kind == "default":
            return self.dim
        n_blocks, avgpool = self._vit_kind(kind)
        return int(self.model.embed_dim) * (n_blocks + int(avgpool))

    def _vit_kind(self, kind: str) -> tuple[int, bool]:
        if kind not in FEATURE_KINDS:
            raise SslzooError(f"unknown feature kind {kind!r}; choose from {', '.join(FEATURE_KINDS)}.")
        if not hasattr(self.model, "get_intermediate_layers") or not hasattr(self.model, "embed_dim"):
            raise SslzooError(
                f"feature kind {kind!r} reads a ViT's [CLS] tokens; {self.entry.name} is a "
                f"{type(self.model).__name__} ({self.entry.arch}): use kind='default'."
            )
        return _VIT_KINDS[kind]

    def __repr__(self) -> str:
        return f"Encoder({self.entry.name!r}, arch={self.entry.arch!r}, dim={self.dim}, identity={self.identity!r})"

    # ---------------------------------------------------------------- inputs

    def _batches(self, images: Any, batch_size: int, num_workers: int) -> tuple[Iterator[torch.Tensor], int]:
        """Split any accepted input into ``(B, C, H, W)`` float batches; returns (iterator, number of images)."""
        if batch_size < 1:
            raise SslzooError(f"batch_size must be at least 1, got {batch_size}.")
        if isinstance(images, torch.Tensor):
            if images.ndim != 4 or not images.is_floating_point() or images.shape[1] != self.in_chans:
                raise SslzooError(
                    f"a tensor input must be an already-transformed float (N, {self.in_chans}, H, W) batch, got "
                    f"{images.dtype} {tuple(images.shape)}; pass PIL images to have enc.transform applied."
                )
            return iter(images.split(batch_size)), len(images)
        if _is_hf_dataset(images):
            if "image" not in images.column_names:
                raise SslzooError(
                    f"the dataset has no 'image' column (columns: {', '.join(images.column_names)}); "
                    "rename the image column to 'image'."
                )
            source: torch.utils.data.Dataset = _HFImages(images, self.transform)
        elif isinstance(images, Sequence) and not isinstance(images, str) and all(map(_is_pil, images)):
            source = _PILList(images, self.transform)
        elif isinstance(images, Sequence) and not isinstance(images, str) and all(map(_is_path, images)):
            source = _PathList(images, self.transform)
        else:
            raise SslzooError(
                f"cannot embed a {type(images).__name__}: pass a list of PIL images or image file paths, an "
                f"already-transformed (N, {self.in_chans}, H, W) float tensor, or a datasets.Dataset with an "
                "'image' column."
            )
        loader = torch.utils.data.DataLoader(
            source,
            batch_size=batch_size,
            num_workers=num_workers,
            pin_memory=self.device.type == "cuda",
            # Workers decode ahead of the model; a few batches each keep it fed without holding many in RAM.
            prefetch_factor=4 if num_workers else None,
        )
        return iter(loader), len(source)

    # ---------------------------------------------------------------- outputs

    @torch.inference_mode()
    def embed(
        self,
        images: Any,
        batch_size: int = 256,
        progress: bool = False,
        num_workers: int = 0,
        kind: str = "default",
        out: Any = None,
        amp: str | None = None,
    ) -> torch.Tensor:
        """Embeddings of many images, in order.

        Args:
            images: A list of PIL images or image file paths, an already-transformed ``(N, C, H, W)`` float
                tensor, or a ``datasets.Dataset`` with an ``image`` column.
            batch_size: Images per forward pass.
            progress: Show a progress bar.
            num_workers: DataLoader workers decoding and transforming the images.
            kind: Which features (:data:`FEATURE_KINDS`; see :meth:`features`).
            out: Optional ``(N, feature_dim(kind))`` float32 array or tensor to fill (e.g. a memory-mapped
                ``.npy``, so a split larger than RAM never exists as one tensor); returned.
            amp: ``"bf16"`` or ``"fp16"``: run the forward under ``torch.autocast`` in that precision: faster on GPUs
                and on CPUs with native bf16 (AVX512-BF16 / AMX), but several times slower on AVX2-only CPUs, which
                emulate it (``benchmarks/bench_embed.py``). Embeddings move by a cosine distance of ~1e-5 to 1e-3,
                which ``sslzoo eval --amp`` measures and records. None (default): the model's own precision.

        Returns:
            ``(N, D)`` float32 tensor on the CPU (or ``out``).
        """
        from tqdm.auto import tqdm

        check_loader_options(batch_size, num_workers)
        if amp is not None and amp not in AMP_DTYPES:
            raise SslzooError(
                f"unknown amp precision {amp!r}; choose from {', '.join(AMP_DTYPES)} (or none)."
            )
        batches, total = self._batches(images, batch_size, num_workers)
        was_training = self.model.training
        self.model.eval()
        device, dtype = self.device, self.dtype
        if out is None:
            out = torch.empty(total, self.feature_dim(kind), dtype=torch.float32)
        elif tuple(out.shape) != (total, self.feature_dim(kind)):
            raise SslzooError(
                f"out has shape {tuple(out.shape)}; expected ({total}, {self.feature_dim(kind)})."
            )
        done = 0
        autocast = (
            torch.autocast(device.type, dtype=AMP_DTYPES[amp])
            if amp is not None
            else contextlib.nullcontext()
        )
        with (
            self._channels_last(total) as layout,
            tqdm(total=total, disable=not progress, desc=f"embed {self.entry.name}", unit="img") as bar,
            autocast,
        ):
            for x in batches:
                x = x.to(device, dtype, non_blocking=True).contiguous(memory_format=layout)
                feats = self.features(x, kind).float().cpu()
                out[done : done + len(x)] = feats if isinstance(out, torch.Tensor) else feats.numpy()
                done += len(x)
                bar.update(len(x))
        self.model.train(was_training)
        return out

    @contextlib.contextmanager
    def _channels_last(self, n_images: int) -> Iterator[torch.memory_format]:
        """Run a CNN in channels-last layout for the duration of a large ``embed`` (1.2–2.5× on CPU, see
        ``benchmarks/bench_embed.py``), then give the weights back their original layout.

        The model is restored afterwards because safetensors (``save_encoder``) only writes contiguous tensors and
        a trainer may wrap its live model. ViTs (one patch-embedding conv) and small calls are left alone.
        """
        convs = [m for m in self.model.modules() if isinstance(m, nn.Conv2d)]
        if len(convs) < 2 or n_images < CHANNELS_LAST_MIN_IMAGES:
            yield torch.contiguous_format
            return
        if convs[0].weight.is_contiguous(memory_format=torch.channels_last):  # already so: leave it that way
            yield torch.channels_last
            return
        self.model.to(memory_format=torch.channels_last)
        try:
            yield torch.channels_last
        finally:
            self.model.to(memory_format=torch.contiguous_format)

    @torch.inference_mode()
    def attention_maps(self, images: Any, batch_size: int = 64) -> torch.Tensor:
        """The last block's CLS-to-patch attention per head (DINO's ``visualize_attention.py`` definition).

        Softmax of ``q_cls · k_patch / sqrt(d)`` over all tokens, keeping the patch columns (CLS and register
        tokens dropped), reshaped to the patch grid.

        Args:
            images: As for :meth:`embed`.
            batch_size: Images per forward pass.

        Returns:
            ``(N, heads, h, w)`` float32 on the CPU, ``h = H / patch``, ``w = W / patch``.

        Raises:
            SslzooError: the encoder is not a ViT.
        """
        model = self.model
        blocks = getattr(model, "blocks", None)
        attn = getattr(blocks[-1], "attn", None) if blocks is not None and len(blocks) else None
        if attn is None or not hasattr(attn, "qkv") or not hasattr(model, "patch_embed"):
            raise SslzooError(
                f"attention maps need a ViT; {self.entry.name} is a {type(model).__name__} ({self.entry.arch})."
            )
        captured: list[torch.Tensor] = []
        hook = attn.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
        batches, _ = self._batches(images, batch_size, 0)
        maps = []
        try:
            self.model.eval()
            for x in batches:
                x = x.to(self.device, self.dtype)
                captured.clear()
                model.forward_features(x)
                tokens = captured[-1]  # (B, T, C): input of the last attention (after norm1)
                B, T, _ = tokens.shape
                qkv = attn.qkv(tokens).reshape(B, T, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
                q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
                weights = ((q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)).softmax(
                    dim=-1
                )  # (B, heads, 1, T)
                patch = model.patch_embed.patch_size
                h, w = x.shape[-2] // patch[0], x.shape[-1] // patch[1]
                cls = weights[:, :, 0, model.num_prefix_tokens :]
                maps.append(cls.reshape(B, attn.num_heads, h, w).float().cpu())
        finally:
            hook.remove()
        return torch.cat(maps) if maps else torch.empty(0)


def check_loader_options(batch_size: int, num_workers: int = 0) -> None:
    """One-line errors for a batch size below 1 or a negative number of DataLoader workers."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SslzooError(f"batch size must be a whole number of at least 1, got {batch_size!r}.")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise SslzooError(f"--num-workers must be 0 (decode in this process) or more, got {num_workers!r}.")


def _is_pil(obj: Any) -> bool:
    from PIL import Image

    return isinstance(obj, Image.Image)


def _is_path(obj: Any) -> bool:
    import os

    return isinstance(obj, (str, os.PathLike))


def _is_hf_dataset(obj: Any) -> bool:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        return False
    return isinstance(obj, datasets.Dataset)
