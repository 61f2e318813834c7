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

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

METADATA_FILE = "sslzoo.json"


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON so that readers see either the old file or the whole new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
    os.replace(tmp, path)


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
        metadata: Our own provenance (method, training config, dataset, seed, commit), saved as ``sslzoo.json``.

    Returns:
        The folder path.
    """
    from timm.models import save_for_hf

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    if pretrained_cfg:
        model.pretrained_cfg = {**getattr(model, "pretrained_cfg", {}), **pretrained_cfg}
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        save_for_hf(model, tmp, model_args=model_args or None, safe_serialization=True)
        write_json_atomic(tmp / METADATA_FILE, metadata or {})
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
