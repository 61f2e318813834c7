"""``zoo.load``: resolve a name, folder or Hub id to weights, build the timm model, map keys, load strictly."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

import zoo.architectures  # noqa: F401  (registers the sslzoo_* architectures the registry's entries name)
from zoo import _hub
from zoo._keymaps import IDENTITY, KeyMapping, apply_mapping, load_strict
from zoo.devices import resolve_device
from zoo.encoder import Encoder, build_transform
from zoo.errors import SslzooError
from zoo.export import METADATA_FILE, WEIGHTS_SHA256_KEY
from zoo.registry import MODELS, REPO_ROOT, ModelEntry, entry_folder, get_entry, is_cached

__all__ = ["REPO_ROOT", "check_recorded_sha256", "is_cached", "load", "resolve_device", "resolve_folder"]

CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _create(arch: str, model_args: dict[str, Any], pretrained_cfg: dict[str, Any] | None = None) -> nn.Module:
    import timm

    args = {**model_args, "num_classes": 0}

    def build() -> nn.Module:
        return timm.create_model(
            arch, pretrained=False, pretrained_cfg_overlay=pretrained_cfg or None, **args
        )

    if not timm.is_model(arch):
        close = ", ".join(difflib.get_close_matches(arch, timm.list_models(), n=3))
        raise SslzooError(f"timm has no architecture {arch!r}{f' (similar: {close})' if close else ''}.")
    try:
        # Built on the meta device: random initialisation of weights the checkpoint overwrites anyway costs
        # seconds for a ViT-B on a CPU. load_strict then assigns the checkpoint's tensors.
        with torch.device("meta"):
            model = build()
        persistent = model.state_dict().keys()
        if all(name in persistent for name, _ in model.named_buffers()):
            return model
        # Otherwise buffers computed at init and not saved would be lost on the meta device.
    except (RuntimeError, NotImplementedError, ValueError, TypeError):
        pass  # some architectures compute with tensors at init (.item(), .tolist()), which meta cannot do
    try:
        return build()
    except RuntimeError as exc:
        raise SslzooError(f"cannot build architecture {arch!r}: {exc}") from None
    except TypeError as exc:
        raise SslzooError(f"architecture {arch!r} does not accept {sorted(args)}: {exc}") from None


def _place(model: nn.Module, device: str | torch.device | None, dtype: torch.dtype | None) -> nn.Module:
    return model.to(device=resolve_device(device), dtype=dtype).eval()


# ------------------------------------------------------------------ timm-layout folders (save_encoder, Hub repos)


def resolve_folder(path: str | Path) -> Path:
    """The folder holding ``config.json``: ``path`` itself, or ``path/encoder`` for a training run folder.

    Raises:
        SslzooError: neither holds an exported encoder.
    """
    path = Path(path).expanduser()
    for candidate in (path, path / "encoder"):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    if (path / "checkpoints").is_dir() or (path / "config.json").exists():
        hint = "it looks like a run that has not exported its encoder yet (RUN/encoder/ is missing)"
    else:
        hint = "expected config.json + model.safetensors as written by zoo.save_encoder, or RUN/encoder/"
    raise SslzooError(f"{path} holds no exported encoder: {hint}.")


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SslzooError(
            f"cannot read {path}: {exc}; export the encoder again with zoo.save_encoder."
        ) from None
    if not isinstance(config, dict) or "architecture" not in config:
        raise SslzooError(
            f"{path} is not a timm config.json (no 'architecture'); export with zoo.save_encoder."
        )
    return config


def _build_from_config(config: dict[str, Any], state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Build ``config['architecture']`` headless and load ``state`` into it, dropping a classifier if one was saved."""
    pretrained_cfg = dict(config.get("pretrained_cfg") or {})
    model = _create(config["architecture"], dict(config.get("model_args") or {}), pretrained_cfg)
    if config.get("num_classes"):  # a timm classifier repo: the embedding is what comes before the head
        classifier = pretrained_cfg.get("classifier", "head")
        heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        state = {k: v for k, v in state.items() if not k.startswith(tuple(f"{h}." for h in heads))}
    load_strict(model, state, source)
    return model


def _load_timm_folder(files: dict[str, Path], source: str, mapping: KeyMapping = IDENTITY) -> nn.Module:
    config = _read_config(files[CONFIG_FILE])
    state = apply_mapping(_hub.read_checkpoint(files["weights"]), mapping, source)
    return _build_from_config(config, state, source)


def _folder_entry(folder: Path, config: dict[str, Any], name: str) -> ModelEntry:
    meta_path = folder / METADATA_FILE
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            meta = {}
    return ModelEntry(
        name=str(meta.get("name") or name),
        method=str(meta.get("method") or "unknown"),
        arch=config["architecture"],
        source=str(folder),
        dim=int(config.get("num_features") or 0),
        model_args=dict(config.get("model_args") or {}),
        preprocessing=None,
        licence=str(meta.get("licence") or (config.get("pretrained_cfg") or {}).get("license", "unknown")),
        paper=str(meta.get("paper", "")),
        published=dict(meta.get("published") or {}),
        embedding=str(meta.get("embedding", "")),
    )


def _weights_in(folder: Path) -> Path:
    for filename in WEIGHT_FILES:
        if (folder / filename).is_file():
            return folder / filename
    raise SslzooError(f"{folder} has a config.json but no {' or '.join(WEIGHT_FILES)}; export it again.")


def check_recorded_sha256(folder: Path, weights: Path) -> None:
    """Refuse weights whose SHA-256 differs from the one :func:`zoo.save_encoder` recorded in ``sslzoo.json``.

    Folders exported before the hash was recorded (no ``weights_sha256``) are read as they are.

    Raises:
        SslzooError: the weights changed after export (edited, half-copied, or an LFS pointer instead of the file).
    """
    meta_path = folder / METADATA_FILE
    if not meta_path.is_file():
        return
    try:
        expected = json.loads(meta_path.read_text()).get(WEIGHTS_SHA256_KEY)
    except (OSError, json.JSONDecodeError, AttributeError):
        return  # the metadata is descriptive; an unreadable one does not stop the weights from loading
    if not isinstance(expected, str) or not expected:
        return
    actual = _hub.sha256_file(weights)
    if actual != expected:
        raise SslzooError(
            f"{weights} has SHA-256 {actual[:16]}…, but {meta_path.name} records {expected[:16]}… for it: the file "
            "changed after export (a partial copy or a Git LFS pointer?); restore it (git lfs pull, or copy it "
            "again) or export the encoder again."
        )


def _load_local(path: str | Path, device, dtype) -> Encoder:
    folder = resolve_folder(path)
    weights = _weights_in(folder)
    check_recorded_sha256(folder, weights)
    model = _load_timm_folder({CONFIG_FILE: folder / CONFIG_FILE, "weights": weights}, str(weights))
    config = _read_config(folder / CONFIG_FILE)
    run_name = folder.parent.name if folder.name == "encoder" else folder.name
    entry = _folder_entry(folder, config, run_name)
    identity = f"sha256:{_hub.sha256_file(weights)}"
    model = _place(model, device, dtype)
    return Encoder(model, entry, build_transform(model), identity)


def _load_hub_repo(spec: str, device, dtype) -> Encoder:
    repo_id, revision = _hub.parse_hub_id(spec)
    config_path = _hub.hub_file(repo_id, CONFIG_FILE, revision)
    # The config is there (so the repo and revision are right); the weights are safetensors, or an older .bin.
    try:
        weights = _hub.hub_file(repo_id, WEIGHT_FILES[0], revision)
    except SslzooError as first:
        try:
            weights = _hub.hub_file(repo_id, WEIGHT_FILES[1], revision)
        except SslzooError:
            raise first from None  # the safetensors error is the one worth reading
    check_recorded_sha256(config_path.parent, weights)  # when the repo's sslzoo.json is in the cache
    model = _load_timm_folder({CONFIG_FILE: config_path, "weights": weights}, f"{repo_id}/{weights.name}")
    config = _read_config(config_path)
    entry = _folder_entry(config_path.parent, config, spec).with_(source=spec)
    identity = f"hf-hub:{repo_id}@{_hub.snapshot_revision(weights) or revision or 'main'}"
    model = _place(model, device, dtype)
    return Encoder(model, entry, build_transform(model), identity)


# ------------------------------------------------------------------ registry entries


def _entry_weights(entry: ModelEntry) -> tuple[Path, str]:
    """Fetch an entry's weights file, checked against its pin; returns (path, revision-like string for the identity).

    A Hub file is identified by the commit it was read at, a URL file by its own SHA-256 (so a feature cache never
    mixes two versions of a file that changed upstream).
    """
    if entry.source.startswith(_hub.HUB_PREFIX):
        repo_id, revision = _hub.parse_hub_id(entry.source)
        path = _hub.hub_file(repo_id, entry.filename, revision, sha256=entry.sha256)
        return path, _hub.snapshot_revision(path) or revision or "main"
    if entry.source.startswith(("http://", "https://")):
        path = _hub.url_file(entry.source, sha256=entry.sha256, md5=entry.md5)
        return path, _hub.sha256_file(path)[:16]
    raise SslzooError(f"entry {entry.name!r} has an unsupported source {entry.source!r}.")


def _load_entry(entry: ModelEntry, device, dtype) -> Encoder:
    folder = entry_folder(entry)
    if folder is not None:
        folder = resolve_folder(folder)
        weights = _weights_in(folder)
        if entry.sha256:
            _hub.check_digest(weights, sha256=entry.sha256)
        check_recorded_sha256(folder, weights)
        model = _load_timm_folder({CONFIG_FILE: folder / CONFIG_FILE, "weights": weights}, str(weights))
        identity = f"{entry.name}@sha256:{_hub.sha256_file(weights)[:16]}"
    else:
        weights, revision = _entry_weights(entry)
        model = _create(entry.arch, entry.model_args)
        state = apply_mapping(_hub.read_checkpoint(weights), entry.key_mapping, f"{entry.name} ({weights})")
        load_strict(model, state, f"{entry.name} ({weights.name})")
        identity = f"{entry.name}@{revision}"
    if entry.preprocessing is not None:
        model.pretrained_cfg = {**model.pretrained_cfg, **entry.preprocessing.as_pretrained_cfg()}
    model = _place(model, device, dtype)
    return Encoder(model, entry, build_transform(model, entry.preprocessing), identity)


def load(
    name_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Encoder:
    """Load an encoder by registry name, ``hf-hub:ORG/NAME[@REVISION]``, exported folder or training run folder.

    Args:
        name_or_path: ``"dino-vits16"`` (see ``sslzoo models``), ``"hf-hub:ORG/NAME@REV"``, a folder written by
            :func:`zoo.save_encoder`, or a run folder whose encoder was exported to ``RUN/encoder/``.
        device: Where to put the model; ``None`` picks CUDA when available, else the CPU.
        dtype: Parameter dtype (``torch.bfloat16`` …); ``None`` keeps float32.

    Returns:
        An :class:`~zoo.encoder.Encoder` in eval mode.

    Raises:
        SslzooError: unknown name (with the closest names), offline and not cached, a checkpoint that does not fit.

    >>> enc = load("dino-vits16")  # doctest: +SKIP
    >>> enc.embed([image]).shape  # doctest: +SKIP
    torch.Size([1, 384])
    """
    if isinstance(name_or_path, Path):
        return _load_local(name_or_path, device, dtype)
    name = str(name_or_path)
    if name.startswith(_hub.HUB_PREFIX):
        return _load_hub_repo(name, device, dtype)
    if name in MODELS:
        return _load_entry(MODELS[name], device, dtype)
    path = Path(name).expanduser()
    if path.exists():
        return _load_local(path, device, dtype)
    if "/" in name or name.startswith((".", "~")):
        raise SslzooError(
            f"no such folder {name!r}; pass an exported encoder folder, a run folder or a model name."
        )
    get_entry(name)  # raises with the closest names
    raise AssertionError("unreachable")
