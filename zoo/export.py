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
from typing import TYPE_CHECKING, Any

from zoo.atomic import atomic_folder, write_json_atomic

if TYPE_CHECKING:  # torch loads when a function needs it: the file names below are read by cheap commands
    import torch
    from torch import nn

__all__ = [
    "METADATA_FILE",
    "WEIGHTS_SHA256_KEY",
    "check_destination",
    "check_finite",
    "is_export_folder",
    "nonfinite_tensors",
    "record_weights_sha256",
    "save_encoder",
    "write_json_atomic",
]

METADATA_FILE = "sslzoo.json"
# What an export folder may hold: timm's two files, our metadata, the model card and plots (zoo.publish).
EXPORT_FILES = frozenset({"config.json", "model.safetensors", METADATA_FILE, "README.md"})


def nonfinite_tensors(state: nn.Module | dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point parameters and buffers of ``state`` (a module or a state dict) holding NaN or ±inf.

    >>> nonfinite_tensors({"w": torch.ones(2), "running_var": torch.tensor([1.0, float("inf")])})
    ['running_var']
    """
    import torch

    tensors = state.state_dict() if isinstance(state, torch.nn.Module) else state
    return [
        name
        for name, t in tensors.items()
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]


def check_finite(state: nn.Module | dict[str, torch.Tensor], what: str) -> None:
    """One-line error naming the non-finite tensors of ``state`` (``what`` says whose), if there are any."""
    from zoo.errors import SslzooError

    bad = nonfinite_tensors(state)
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise SslzooError(
            f"{what} holds NaN or infinite values ({', '.join(bad[:3])}{more}); such weights score at chance. "
            "Use an earlier finite checkpoint, or train again with a lower --lr."
        )


def is_export_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder an earlier export wrote: timm's ``config.json`` and nothing but export files.

    Anything else in it (a subfolder, a file of yours, a hidden file) means it is not ours to replace.
    """
    path = Path(path)
    if not path.is_dir() or path.is_symlink() or not (path / "config.json").is_file():
        return False
    return all(
        p.is_file() and not p.is_symlink() and (p.name in EXPORT_FILES or p.suffix == ".png")
        for p in path.iterdir()
    )


def check_destination(out: str | Path, *, source: str | Path | None = None) -> Path:
    """Refuse, in one line, an export destination whose replacement would lose something.

    Accepted: a path that does not exist, an empty folder, or a folder an earlier export wrote
    (:func:`is_export_folder`). Refused: a file, any other non-empty folder, the source folder itself, a folder
    inside it or one holding it.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.
    """
    from zoo.errors import SslzooError

    out = Path(out).expanduser()
    if source is not None and Path(source).expanduser().exists():
        src, dst = Path(source).expanduser().resolve(), out.resolve()
        if dst == src or src in dst.parents or dst in src.parents:
            raise SslzooError(
                f"{out} is the source {source} or holds it or lies inside it; export to a new folder, "
                "e.g. --out hub/NAME."
            )
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise SslzooError(f"{out} is a file, not a folder; give --out a new or empty folder.")
    if out.is_dir() and any(out.iterdir()) and not is_export_folder(out):
        raise SslzooError(
            f"{out} is not empty and not an earlier export (it holds files an export does not write); nothing "
            "was changed. Give --out a new or empty folder."
        )
    return out


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
        folder: Destination folder: new, empty, or an earlier export (anything else is refused; see
            :func:`check_destination`).
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

    folder = check_destination(folder)
    check_finite(model, f"the encoder to save in {folder}")
    if any(not t.is_contiguous() for t in model.state_dict().values()):
        # safetensors stores row-major tensors only: save a contiguous copy of a channels-last model.
        import torch

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
