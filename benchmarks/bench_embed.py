"""``Encoder.embed`` throughput against a bare timm forward, and what CPU inference options change.

For each model, the same pre-transformed batches go through:

* ``timm no_grad``: ``model(x)`` under ``torch.no_grad()`` in a loop: the baseline (1.00×);
* ``Encoder.embed``: our path (batching, inference_mode, copy into one (N, D) float32 tensor), and with
  ``amp="bf16"`` (what ``sslzoo eval --amp bf16`` runs);
* ``inference_mode``, ``channels_last``, ``bf16 autocast``, ``channels_last + bf16``: the bare loop with one option;
* ``embed from PIL``: ``Encoder.embed`` on PIL images, i.e. including ``enc.transform`` (decode-free).

Ratios are images/s over the baseline's images/s in the same process (> 1 is faster); each number is the best of
``--repeats`` timed passes after one warm-up pass, timed in turns (round-robin) so that
load from other processes hits every path alike. bf16 outputs are checked against fp32 (max cosine distance).

    .venv/bin/python benchmarks/bench_embed.py                     # the default set (10+ min on 2 busy cores)
    .venv/bin/python benchmarks/bench_embed.py --models resnet50:224 --batches 2 --batch-size 16
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
from collections.abc import Callable

import numpy as np
import timm
import torch
from PIL import Image

import zoo.architectures  # registers the sslzoo_* architectures with timm

BASELINE = "timm no_grad (baseline)"
DEFAULT_MODELS = ("sslzoo_cnn4:28:1", "sslzoo_resnet18_small:32", "resnet50:224", "vit_small_patch16_224:224")


def round_robin(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each function, timing them in turns so that load from other processes hits all alike."""
    for fn in fns.values():
        fn()  # warm-up: allocator, oneDNN kernel selection
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for label, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[label] = min(best[label], time.perf_counter() - start)
    return best


def bare_loop(
    model, batches, *, grad_mode, channels_last=False, autocast=False
) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        outs = []
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with grad_mode(), ctx:
            for x in batches:
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                outs.append(model(x).float())
        return torch.cat(outs)

    return run


def bench_model(spec: str, batch_size: int, n_batches: int, repeats: int) -> None:
    arch, size, *chans = spec.split(":")
    size, in_chans = int(size), int(chans[0]) if chans else 3
    torch.manual_seed(0)
    kwargs = {"img_size": size} if "vit" in arch else {}
    model = timm.create_model(arch, num_classes=0, in_chans=in_chans, **kwargs).eval()
    enc = zoo.Encoder.from_model(model, name=arch)
    batches = [torch.randn(batch_size, in_chans, size, size) for _ in range(n_batches)]
    x_all = torch.cat(batches)
    n = len(x_all)
    rng = np.random.default_rng(0)
    mode = "L" if in_chans == 1 else "RGB"
    shape = (size, size) if in_chans == 1 else (size, size, 3)
    pil = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode) for _ in range(n)]

    reference = bare_loop(model, batches, grad_mode=torch.no_grad)()
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    fns: dict[str, Callable[[], object]] = {
        BASELINE: bare_loop(model, batches, grad_mode=torch.no_grad),
        "Encoder.embed": lambda: enc.embed(x_all, batch_size=batch_size),
        "inference_mode": bare_loop(model, batches, grad_mode=torch.inference_mode),
        "channels_last": bare_loop(model_cl, batches, grad_mode=torch.inference_mode, channels_last=True),
        "bf16 autocast": bare_loop(model, batches, grad_mode=torch.inference_mode, autocast=True),
        "channels_last + bf16": bare_loop(
            model_cl, batches, grad_mode=torch.inference_mode, channels_last=True, autocast=True
        ),
        "Encoder.embed(amp='bf16')": lambda: enc.embed(x_all, batch_size=batch_size, amp="bf16"),
        "embed from PIL (+transform)": lambda: enc.embed(pil, batch_size=batch_size),
    }
    seconds = round_robin(fns, repeats)
    notes = {}
    for label in ("bf16 autocast", "channels_last + bf16", "Encoder.embed(amp='bf16')"):
        distance = 1 - torch.nn.functional.cosine_similarity(fns[label]().float(), reference, dim=1)
        notes[label] = (
            f"cosine distance to fp32: mean {float(distance.mean()):.1e}, max {float(distance.max()):.1e}"
        )
    base = seconds[BASELINE]
    rows = [(label, seconds[label], notes.get(label, "")) for label in fns]

    print(f"\n{arch} at {in_chans}×{size}×{size}, {n_batches} batches of {batch_size} ({n} images)")
    print(f"  {'path':30s} {'img/s':>9s} {'vs baseline':>12s}")
    for label, seconds, note in rows:
        print(f"  {label:30s} {n / seconds:9.1f} {base / seconds:11.2f}×  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="ARCH:SIZE[:IN_CHANS] …")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} CPU threads")
    for spec in args.models:
        bench_model(spec, args.batch_size, args.batches, args.repeats)


if __name__ == "__main__":
    main()
