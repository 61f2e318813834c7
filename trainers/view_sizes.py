"""Check, before training, that the backbone accepts every view size the method will feed it.

A ViT built for a fixed side (``dynamic_img_size=False``), a Swin window, or a recipe's 224-px crops on an
architecture made for 32 px would otherwise fail at the first step — after data loading, network building and
checkpoint set-up. The backbone is built on PyTorch's ``meta`` device (no memory, no compute) and one
``(1, C, side, side)`` input per view side goes through it, so shape assertions fire here as one clear line.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import torch

from zoo.errors import SslzooError

if TYPE_CHECKING:
    from trainers.engine import TrainContext

__all__ = ["check_view_sizes"]


def check_view_sizes(ctx: TrainContext, sides: Collection[int]) -> None:
    """Raise :class:`SslzooError` when ``ctx.cfg.arch`` (with ``ctx.model_args()``) rejects a view side.

    Args:
        ctx: The engine's context (architecture, its arguments, input channels).
        sides: Square view sides the method makes (DINO: the global and the local crop side).
    """
    import timm

    import zoo  # noqa: F401  (registers the sslzoo_* architectures)

    try:
        with torch.device("meta"):
            model = timm.create_model(ctx.cfg.arch, pretrained=False, **ctx.model_args())
    except Exception:  # unknown names and bad arguments: the real build reports them
        return
    model.eval()
    for side in sorted(set(sides), reverse=True):
        try:
            with torch.no_grad():
                model(torch.empty(1, ctx.in_chans, side, side, device="meta"))
        except NotImplementedError:
            return  # an operation without a meta kernel: nothing to learn here, the first step will tell
        except (AssertionError, RuntimeError, ValueError) as exc:
            if "meta" in str(exc):
                return  # data-dependent code (.item(), .tolist()) cannot run on meta tensors
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SslzooError(
                f"{ctx.cfg.arch} does not accept the {side}×{side} views this run makes ({reason}); "
                "choose sizes it takes (--image-size, --local-crop-size) or an architecture with a dynamic "
                "input size (timm ViTs: --arch-args dynamic_img_size=True)."
            ) from None
