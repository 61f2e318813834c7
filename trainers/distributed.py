"""Thin helpers over ``torch.distributed`` that are no-ops in a single process.

Started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), the engine joins the process group
with NCCL on CUDA and gloo on CPU, with ``--dist-timeout`` as the longest a collective waits for the other ranks.
Every helper here works unchanged when there is no process group.

Rank 0 decides and the others follow (:func:`broadcast_object`): its run folder is the run's, so ranks on other
nodes need no shared file system. A rank that died or hung surfaces as a backend error in the others' next
collective (:func:`lost_peer` recognises it), which the engine turns into one line.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist

from zoo.errors import SslzooError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "all_gather_no_grad",
    "all_gather_object",
    "all_gather_with_grad",
    "all_reduce_mean",
    "amp_dtype",
    "broadcast",
    "broadcast_object",
    "cuda_has_native_bf16",
    "dtype_name",
    "elastic_restart",
    "init_distributed",
    "is_distributed",
    "lost_peer",
    "peer_error_summary",
    "rank",
    "resolve_device",
    "resumed_amp_dtype",
    "world_size",
]

DEFAULT_TIMEOUT_S = 1800.0  # --dist-timeout: 30 min, long enough for a slow first checkpoint or k-means round


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_distributed(device_type: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Join the process group when launched by ``torchrun``; returns whether we are distributed.

    ``timeout_s`` bounds every collective: a rank that waits longer for the others (one died or hangs) raises
    instead of blocking until the backend's own default (10–30 min, or for ever without NCCL's async handling).
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return True


def elastic_restart() -> bool:
    """Whether ``torchrun --max-restarts N`` restarted this worker after a failure (``TORCHELASTIC_RESTART_COUNT``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (any picklable object: a decision, a config, a whole checkpoint) on every rank."""
    if not is_distributed():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def lost_peer(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that failed because another rank died or stopped answering.

    gloo raises a plain ``RuntimeError`` naming its transport (``Connection reset by peer``, ``Timed out waiting
    …ms``); NCCL and the c10d store raise ``torch.distributed.DistError``.
    """
    if not is_distributed():
        return False
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and ("gloo" in str(exc) or "NCCL" in str(exc))


def peer_error_summary(exc: BaseException) -> str:
    """The backend's own words, short: ``Read error [127.0.0.1]:52443: Connection reset by peer``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.split("] ", 1)[1] if text.startswith("[") and "] " in text else text  # gloo's source location
    return text.split(". ", 1)[0][:200]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) from all ranks → (W·B, ...), with gradients flowing back to every rank.

    SimCLR needs this: each rank's anchors use all other ranks' embeddings as negatives, and the gradient of those
    negatives must reach the rank that computed them.
    """
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


@torch.no_grad()
def all_gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) from all ranks → (W·B, ...) without gradient (MoCo's keys, features)."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (in place on a copy); the identity in one process."""
    if not is_distributed():
        return x
    x = x.clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x / world_size()


def broadcast(x: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s ``x`` on every rank (in place)."""
    if is_distributed():
        dist.broadcast(x, src=src)
    return x


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SslzooError("--device cuda was asked for but CUDA is not available; use --device cpu.")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX or AVX512-BF16, as oneDNN detects it).

    Where it does, ``--amp bf16 --channels-last`` trains the small CNNs 1.7–2.9× faster; elsewhere (AVX2 only)
    bf16 is emulated and several times slower than float32.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cuda_has_native_bf16() -> bool:
    """Whether the current GPU computes bf16 in hardware (compute capability 8.0+: A100, H100, RTX 30xx, L4).

    ``torch.cuda.is_bf16_supported()`` alone also says yes where bf16 is only emulated (V100, T4: sm_70/75), which
    runs far slower than fp16 there.
    """
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # a torch without the argument
        major, _ = torch.cuda.get_device_capability()
        return major >= 8 and bool(torch.cuda.is_bf16_supported())


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``--amp`` on ``device``: ``auto`` is bf16 on a GPU with native bf16, else fp16 (with
    the GradScaler), and none on a CPU."""
    if amp == "none":
        return None
    if device.type != "cuda":
        # CPU autocast only pays where the CPU has bf16 matrix units (AMX, AVX512-BF16): opt-in with --amp bf16.
        if amp == "fp16":
            raise SslzooError("--amp fp16 is for CUDA; on a CPU use --amp bf16 or --amp none.")
        return torch.bfloat16 if amp == "bf16" else None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or cuda_has_native_bf16():
        return torch.bfloat16
    return torch.float16


def dtype_name(dtype: torch.dtype | None) -> str | None:
    """``torch.bfloat16`` → ``"bfloat16"`` (how checkpoints and ``train_config.json`` record it)."""
    return None if dtype is None else str(dtype).removeprefix("torch.")


def resumed_amp_dtype(
    resolved: torch.dtype | None, checkpoint: dict[str, Any], device: torch.device
) -> torch.dtype | None:
    """The autocast dtype a resumed run keeps: the one its checkpoint recorded when the run started.

    ``--amp auto`` resolves once: resumed on another GPU (an A100 run continued on a V100) it must not switch
    between bf16 and fp16, whose GradScaler state the other has none of. Checkpoints that predate the record: fp16
    where the scaler state holds a scale, else what ``auto`` gives here unless that is fp16 (then bf16, which
    ``auto`` chose on every GPU before).
    """
    if "amp_dtype" in checkpoint:
        name = checkpoint["amp_dtype"]
        kept = None if name is None else getattr(torch, name)
    elif checkpoint.get("scaler"):
        kept = torch.float16
    else:
        kept = torch.bfloat16 if resolved == torch.float16 else resolved
    if kept == torch.float16 and device.type != "cuda":
        raise SslzooError(
            "this run was trained with fp16 autocast and its GradScaler (CUDA): resume it on a GPU."
        )
    return kept
