"""From an official checkpoint's layout to timm's parameter names, and strict loading with a clear report.

A :class:`KeyMapping` is data: which sub-dict holds the weights (``state_dict``), which prefix marks the encoder
(``module.encoder_q.``), and which keys belong to heads the paper throws away (``fc.``, ``projection_head.``).
Everything else must match the timm model exactly; :func:`load_strict` names what is missing or left over instead
of loading silently (the usual cause of a checkpoint that "loads" and then gives 2% k-NN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoo.errors import SslzooError

if TYPE_CHECKING:  # the registry's entries hold KeyMappings and load without torch (sslzoo models)
    import torch
    from torch import nn

__all__ = ["KeyMapping", "apply_mapping", "load_strict"]


@dataclass(frozen=True)
class KeyMapping:
    """How to find the encoder's weights in a checkpoint.

    Attributes:
        container: Keys to descend into, in order (``("state_dict",)`` for MoCo's ``.pth.tar``).
        container_optional: Descend only where the key is there, as SwAV's ``eval_linear.py`` does (its released
            files are flat, its training checkpoints hold ``state_dict``).
        prefix: Keep only keys that start with this and strip it (``"module.encoder_q."``); ``""`` keeps all.
        drop: Key prefixes (after stripping) of heads that are not part of the encoder (``"fc."``, ``"prototypes"``).
    """

    container: tuple[str, ...] = ()
    container_optional: bool = False
    prefix: str = ""
    drop: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"under {'/'.join(self.container)}" if self.container else "flat"]
        if self.container and self.container_optional:
            parts[0] += " when present"
        if self.prefix:
            parts.append(f"keys {self.prefix}*")
        if self.drop:
            parts.append("minus " + ", ".join(f"{d}*" for d in self.drop))
        return "; ".join(parts)


# timm's own layout (Hub repos written by timm or zoo.save_encoder): nothing to change.
IDENTITY = KeyMapping()


def apply_mapping(
    checkpoint: Mapping[str, object], mapping: KeyMapping, source: str
) -> dict[str, torch.Tensor]:
    """Turn a loaded checkpoint into a flat ``{timm_key: tensor}`` state dict.

    Raises:
        SslzooError: the container or prefix is not there (a checkpoint of another layout, or a corrupted file).
    """
    import torch

    state: Mapping[str, object] = checkpoint
    for key in mapping.container:
        if mapping.container_optional and isinstance(state, Mapping) and key not in state:
            continue
        if not isinstance(state, Mapping) or key not in state:
            found = ", ".join(list(state)[:5]) if isinstance(state, Mapping) else type(state).__name__
            raise SslzooError(
                f"{source}: expected the weights under {key!r} but found {found}; "
                "the file is not the checkpoint this entry expects (or it is corrupted)."
            )
        state = state[key]  # type: ignore[assignment]
    if not isinstance(state, Mapping):
        raise SslzooError(f"{source}: expected a dict of tensors, found {type(state).__name__}.")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if mapping.prefix:
            if not key.startswith(mapping.prefix):
                continue
            key = key[len(mapping.prefix) :]
        if any(key.startswith(d) for d in mapping.drop):
            continue
        if not isinstance(value, torch.Tensor):
            raise SslzooError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor.")
        out[key] = value
    if not out:
        raise SslzooError(
            f"{source}: no weights left after the key mapping ({mapping.describe()}); "
            f"first keys in the file: {', '.join(list(state)[:5])}."
        )
    return out


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state, strict=True)``, but any mismatch is one line naming the keys involved.

    Raises:
        SslzooError: missing keys, unexpected keys or wrong shapes.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")

    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {some(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {some(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} with the wrong shape: {some(wrong)}")
    if problems:
        raise SslzooError(
            f"{source} does not fit {type(model).__name__}: {'; '.join(problems)}. "
            "Check that the architecture and key mapping match the checkpoint, or re-download it if it is corrupted."
        )
    # Keep the model's dtypes (official checkpoints are sometimes half precision) and fill a meta-device model.
    state = {k: v.to(expected[k].dtype) if v.is_floating_point() else v for k, v in state.items()}
    on_meta = any(t.is_meta for t in expected.values())
    model.load_state_dict(state, strict=True, assign=on_meta)
