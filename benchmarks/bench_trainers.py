"""Training throughput (images/s) per method and backbone at a fixed batch, on this machine's device.

Each cell runs the engine's real step (crops from the input pipeline, batched colour augmentation, forward,
backward, optimiser, EMA/queue/centre updates) on digits upsampled to ``--image-size``, after one warm-up step, and
prints images/s, the share of the step spent on colour augmentation, and the ratio to the baseline measured first in the same process: a bare timm
forward + backward + SGD step on two views per image (``(bare)`` rows), i.e. SimCLR without augmentation, head
or loss.

    python benchmarks/bench_trainers.py                      # 4 methods × cnn4 and ViT-tiny, batch 128, 28 px
    python benchmarks/bench_trainers.py --archs sslzoo_resnet18_small --methods simclr --steps 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from trainers.engine import Trainer, build_configs
from trainers.methods import StepInfo


def bench(
    method: str,
    arch: str,
    batch: int,
    steps: int,
    image_size: int,
    device: str,
    amp: str = "auto",
    channels_last: bool = False,
    arch_args: tuple[str, ...] = (),
) -> tuple[float, float]:
    """(images/s of whole steps, fraction of a step spent in make_views: the device-side colour operations)."""
    with tempfile.TemporaryDirectory() as tmp:
        options = {
            "dataset": "digits",
            "arch": arch,
            "batch_size": batch,
            "image_size": image_size,
            "epochs": 1,
            "out": tmp,
            "progress": False,
            "knn_every": 0,
            "device": device,
            "amp": amp,
            "channels_last": channels_last,
            "arch_args": arch_args,
        }
        trainer = Trainer(*build_configs(method, options))
        trainer._setup()
        ctx = trainer.ctx
        order = torch.randperm(ctx.num_train).repeat(steps + 2)
        batches = iter(trainer.loader.epoch(0, order, batch, steps=steps + 1))
        first_views = None

        def one(i: int) -> None:
            nonlocal first_views
            views = next(batches)  # crops cut in this process (workers 0 on a CPU): part of the step's cost
            first_views = first_views or views
            info = StepInfo(i, 0, i, ctx.steps_per_epoch, ctx.total_steps)
            trainer._step(views, info, 0)

        def sync() -> None:
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()

        one(0)
        sync()
        start = time.perf_counter()
        for i in range(1, steps + 1):
            one(i)
        sync()
        step_s = (time.perf_counter() - start) / steps

        from trainers.augment import BatchRandom

        crops = [ctx.to_float(c) for c in first_views.crops]
        start = time.perf_counter()
        for i in range(steps):
            with torch.no_grad():
                trainer.method.make_views(crops, BatchRandom(0, i, batch, 0, batch, ctx.device))
        sync()
        aug_s = (time.perf_counter() - start) / steps
        return batch / step_s, aug_s / step_s


def bare(arch: str, batch: int, steps: int, image_size: int, device: str) -> float:
    """images/s of a bare timm forward + backward + SGD step on 2 views of each image: the floor of SimCLR."""
    import timm

    import zoo.architectures  # noqa: F401  (registers sslzoo_* architectures)

    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device
    )
    kwargs = {"img_size": image_size} if "vit" in arch else {}
    net = timm.create_model(arch, num_classes=0, in_chans=1, **kwargs).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(2 * batch, 1, image_size, image_size, device=dev)
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=["simclr", "moco", "byol", "dino"])
    parser.add_argument("--archs", nargs="+", default=["sslzoo_cnn4", "sslzoo_vit_tiny_patch4"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto", help="the trainer's --amp (bf16 pays on CPUs with AMX)")
    parser.add_argument("--channels-last", action="store_true", help="the trainer's --channels-last")
    parser.add_argument(
        "--arch-args", nargs="*", default=[], help="the trainer's --arch-args, e.g. channels=(16,32,64,128)"
    )
    args = parser.parse_args()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"{args.image_size} px, methods with --amp {args.amp}{' --channels-last' if args.channels_last else ''} "
        "(the (bare) baseline is float32)"
    )
    print(f"{'method':<8} {'arch':<24} {'images/s':>9} {'augment':>8} {'vs first':>9}")
    baseline = None
    for arch in args.archs:
        rate = bare(arch, args.batch_size, args.steps, args.image_size, args.device)
        baseline = baseline or rate
        print(f"{'(bare)':<8} {arch:<24} {rate:>9.1f} {'-':>8} {rate / baseline:>8.2f}×", flush=True)
        for method in args.methods:
            rate, aug = bench(
                method,
                arch,
                args.batch_size,
                args.steps,
                args.image_size,
                args.device,
                args.amp,
                args.channels_last,
                tuple(args.arch_args),
            )
            baseline = baseline or rate
            print(f"{method:<8} {arch:<24} {rate:>9.1f} {aug:>7.0%} {rate / baseline:>8.2f}×", flush=True)


if __name__ == "__main__":
    main()
