"""Write an encoder as a Hub-ready folder: ``model.safetensors`` + timm ``config.json`` + ``sslzoo.json``.

The folder is what ``sslzoo push`` uploads and what ``zoo.load(FOLDER)`` and
``timm.create_model("hf-hub:ORG/NAME", pretrained=True, num_classes=0)`` read back. timm's own ``save_for_hf``
writes the weights and config, so the layout is exactly the one timm expects.

>>> import timm, zoo
>>> net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0)
>>> folder = save_encoder(net, "/tmp/cnn", model_args={"in_chans": 1}, metadata={"method": "simclr"})
>>> sorted(p.name for p in folder.iterdir())
['config.json', 'model.safetensors', 'sslzoo.json']
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.atomic import atomic_folder, write_json_atomic

__all__ = [
    "METADATA_FILE",
    "WEIGHTS_SHA256_KEY",
    "record_weights_sha256",
    "save_encoder",
    "write_json_atomic",
]

METADATA_FILE = "sslzoo.json"
# sslzoo.json's record of the weights file's SHA-256; zoo.load refuses a folder whose weights no longer match it.
WEIGHTS_SHA256_KEY = "weights_sha256"


def save_encoder(
    model: nn.Module,
    folder: str | Path,
    *,
    model_args: dict[str, Any] | None = None,
    pretrained_cfg: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save a timm-built encoder (``num_classes=0``) to ``folder``, replacing it atomically.

    Args:
        model: A model created by ``timm.create_model`` (so it carries ``pretrained_cfg``), head removed.
        folder: Destination folder.
        model_args: Keyword arguments the architecture needs again (``in_chans``, ``img_size``, …); timm passes
            them to ``create_model`` when loading from the Hub.
        pretrained_cfg: Overrides of the evaluation preprocessing (``input_size``, ``mean``, ``std``,
            ``crop_pct``, ``interpolation``).
        metadata: Our own provenance (method, training config, dataset, seed, commit), saved as ``sslzoo.json``
            together with the SHA-256 of ``model.safetensors`` (``weights_sha256``).

    Returns:
        The folder path.
    """
    from timm.models import save_for_hf

    folder = Path(folder)
    if any(not t.is_contiguous() for t in model.state_dict().values()):
        # safetensors stores row-major tensors only: save a contiguous copy of a channels-last model.
        model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    if pretrained_cfg:
        model.pretrained_cfg = {**getattr(model, "pretrained_cfg", {}), **pretrained_cfg}
    with atomic_folder(folder) as tmp:
        save_for_hf(model, tmp, model_args=model_args or None, safe_serialization=True)
        write_json_atomic(tmp / METADATA_FILE, metadata or {})
        record_weights_sha256(tmp)
    return folder


def record_weights_sha256(folder: str | Path, weights_file: str = "model.safetensors") -> str:
    """Write the SHA-256 of ``folder/weights_file`` into ``folder/sslzoo.json`` (kept otherwise as it is).

    :func:`save_encoder` calls it; it also brings folders exported before the hash was recorded up to date.

    Returns:
        The hex digest.
    """
    import json

    from zoo._hub import sha256_file

    folder = Path(folder)
    digest = sha256_file(folder / weights_file)
    meta_path = folder / METADATA_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta[WEIGHTS_SHA256_KEY] = digest
    write_json_atomic(meta_path, meta)
    return digest
