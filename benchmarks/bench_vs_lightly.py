"""Our trainers against lightly's at equal budget: SimCLR, MoCo v2, BYOL and DINO on the same backbone and data.

For each method the SAME timm backbone is trained twice from the same seed, on the same images, with the same budget
(epochs, global batch, AdamW, peak and final learning rate, warm-up, cosine schedule, weight decay with norms and
biases excluded) and the same method hyper-parameters (temperatures, momenta, queue, head widths, crop scales,
colour strength):

* **sslzoo**: ``trainers.train`` — our engine and method file, as ``sslzoo train`` runs them;
* **lightly**: a plain PyTorch loop built from lightly's own losses, heads, transforms and momentum, weight-decay
  and schedule utilities (``lightly_peer.py``), the way lightly's CIFAR-10 benchmark builds its models.

Both encoders are then evaluated by the same code (``evaluators.run_protocols``: weighted k-NN, k = 20, T = 0.07, and
the linear probe, on the full train → test split) and both trainings are timed in this one process, one after the
other, the framework that goes first alternating from method to method, with the same threads, DataLoader workers
and memory format. Where the two cannot match, ``lightly_peer.differences`` says how, and the report prints it.

    python benchmarks/bench_vs_lightly.py                              # cnn4, 3 epochs, full Fashion-MNIST
    python benchmarks/bench_vs_lightly.py --methods simclr --epochs 1 --threads 1
    python benchmarks/bench_vs_lightly.py --smoke --out /tmp/peer      # the smallest run (digits, a minute)

Needs the ``bench`` extra (``pip install -e '.[bench]'``: lightly). The table and a JSON of every row go to
``--out`` (``report.md``, ``results.json``); rows already in ``results.json`` for the same budget are kept, so an
interrupted comparison continues where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

METHODS = ("simclr", "moco", "byol", "dino")

# The method settings both frameworks get: our full mini-zoo recipes (app/benchmark.py FULL_PRESET) on the CNN.
_VIEWS = {"crop_min_scale": 0.2, "jitter": 0.5}
RECIPES: dict[str, dict[str, Any]] = {
    "simclr": {**_VIEWS, "temperature": 0.2, "proj_hidden_dim": 512, "proj_dim": 128},
    "moco": {
        **_VIEWS,
        "temperature": 0.2,
        "queue_size": 4096,
        "momentum": 0.99,
        "proj_hidden_dim": 512,
        "proj_dim": 128,
        "bn_splits": 8,
    },
    "byol": {**_VIEWS, "momentum": 0.99, "proj_hidden_dim": 1024, "proj_dim": 256},
    "dino": {
        "jitter": 0.5,
        "global_crop_min_scale": 0.4,
        "n_local_crops": 6,
        "out_dim": 1024,
        "hidden_dim": 512,
        "bottleneck_dim": 128,
        "teacher_temp": 0.04,
        "student_temp": 0.1,
        "momentum": 0.99,
        "freeze_last_layer_epochs": 0.25,
        "grad_clip": 3.0,  # lightly's loop: the global norm; ours clips each parameter at 3.0 (param_grad_clip)
    },
}
# Our option names where they differ from the recipe keys (the rest are our method configs' own fields).
_OURS_ONLY = {
    "moco": {"shuffle_bn": "split-bn"},
    "dino": {"warmup_teacher_temp": 0.04, "warmup_teacher_temp_epochs": 0.0, "param_grad_clip": 3.0},
}
_NOT_OURS = {"grad_clip", "local_crop_size"}
# --ours-option / --peer-option: settings changed on one side, for experiments that look for the cause of a gap
# (they are printed with the table; the published comparison uses none).
OVERRIDES: dict[str, dict[str, Any]] = {"sslzoo": {}, "lightly": {}}


@dataclass
class Budget:
    """What both frameworks get."""

    dataset: str = "fashion-mnist"
    arch: str = "sslzoo_cnn4"
    arch_args: tuple[str, ...] = ()
    epochs: int = 3
    batch_size: int = 256
    lr: float = 2e-3
    min_lr: float = 1e-5
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    seed: int = 0
    workers: int = 0
    channels_last: bool = True

    def key(self) -> str:
        """The budget rows are comparable under: everything but the seed (each row records its own)."""
        return json.dumps({k: v for k, v in dataclasses.asdict(self).items() if k != "seed"}, sort_keys=True)


def method_budget(method: str, budget: Budget) -> Budget:
    """The budget of ``method``: MoCo trains contiguous on both sides, as lightly's SplitBatchNorm views its
    input as (N / splits, C · splits, H, W), which a channels-last tensor cannot be viewed as."""
    return dataclasses.replace(budget, channels_last=False) if method == "moco" else budget


def _ours_options(method: str, budget: Budget, out: Path) -> dict[str, Any]:
    recipe = {k: v for k, v in RECIPES[method].items() if k not in _NOT_OURS}
    if method == "dino":
        recipe["local_crop_max_scale"] = recipe[
            "global_crop_min_scale"
        ]  # lightly's DINOTransform: (0.05, 0.4)
        recipe["weight_decay_end"] = budget.weight_decay  # constant, as lightly's loop
    return {
        **recipe,
        **_OURS_ONLY.get(method, {}),
        "dataset": budget.dataset,
        "arch": budget.arch,
        "arch_args": budget.arch_args,
        "epochs": budget.epochs,
        "batch_size": budget.batch_size,
        "optimizer": "adamw",
        "lr": budget.lr,
        "min_lr": budget.min_lr,
        "warmup_epochs": budget.warmup_epochs,
        "weight_decay": budget.weight_decay,
        "seed": budget.seed,
        "workers": budget.workers,
        "channels_last": budget.channels_last,
        "amp": "none",
        "knn_every": 0,
        "log_every": 50,
        "progress": False,
        "out": str(out),
        **OVERRIDES["sslzoo"],
    }


def train_ours(method: str, budget: Budget, out: Path) -> dict[str, Any]:
    from trainers import train

    if out.exists():
        shutil.rmtree(out)  # ours: OUT/sslzoo-METHOD, written by this script
    start = time.perf_counter()
    run_dir = train(method, **_ours_options(method, budget, out))
    seconds = time.perf_counter() - start
    meta = json.loads((run_dir / "encoder" / "sslzoo.json").read_text())
    steps = int(meta["global_step"])
    return {"folder": run_dir / "encoder", "seconds": seconds, "images": steps * budget.batch_size}


def train_peer(method: str, budget: Budget, out: Path) -> dict[str, Any]:
    from lightly_peer import train_lightly

    import zoo
    from trainers.engine import FULL_FRAME_BELOW
    from trainers.views import EvalSpec

    source, side, mean, std, model_args, make_backbone = _peer_data(budget)
    recipe = {**RECIPES[method], **OVERRIDES["lightly"]}
    run = train_lightly(method, recipe, budget, source.images, mean, std, side, make_backbone)
    spec = EvalSpec(side, 1.0 if side < FULL_FRAME_BELOW else 0.875)
    folder = out / "encoder"
    if out.exists():
        shutil.rmtree(out)  # OUT/lightly-METHOD, written by this script
    zoo.save_encoder(
        run.encoder,
        folder,
        model_args=model_args,
        pretrained_cfg={
            "input_size": (source.channels, side, side),
            "mean": mean,
            "std": std,
            "crop_pct": spec.crop_pct,
            "interpolation": spec.interpolation,
            "num_classes": 0,
        },
        metadata={"method": method, "framework": "lightly", "budget": dataclasses.asdict(budget)},
    )
    return {"folder": folder, "seconds": run.seconds, "images": run.images}


def _peer_data(budget: Budget):
    """What the lightly loop needs of the dataset: images, mean/std, side, and a backbone factory."""
    import timm

    import zoo.architectures  # noqa: F401  (registers sslzoo_cnn4 and friends)
    from trainers.config import parse_arch_args
    from trainers.engine import MIN_IMAGE_SIDE
    from trainers.sources import load_source

    source = load_source(budget.dataset, "train")
    side = max(source.native_side, MIN_IMAGE_SIDE)
    mean, std = source.mean_std()
    model_args = {"in_chans": source.channels, **parse_arch_args(budget.arch_args)}

    def make_backbone() -> torch.nn.Module:
        return timm.create_model(budget.arch, num_classes=0, **model_args)

    return source, side, mean, std, model_args, make_backbone


def speed(method: str, budget: Budget, rounds: int, steps: int) -> tuple[float, float]:
    """Training images/s of ``method`` with ours and with lightly's loop, measured in alternating bursts of
    ``steps`` optimiser steps (``rounds`` each, the first going first in every other round) after one warm-up
    step each; a step includes its data loading and augmentation on both sides."""
    import tempfile

    from lightly_peer import LightlyLoop

    from trainers.engine import Trainer, build_configs
    from trainers.methods import StepInfo

    budget = method_budget(method, budget)
    source, side, mean, std, _, make_backbone = _peer_data(budget)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(*build_configs(method, _ours_options(method, budget, Path(tmp) / "run")))
        trainer._setup()
        ctx = trainer.ctx
        order = torch.randperm(ctx.num_train).repeat(rounds * steps // max(1, ctx.steps_per_epoch) + 2)
        ours_batches = iter(trainer.loader.epoch(0, order, budget.batch_size, steps=rounds * steps + 1))
        recipe = {**RECIPES[method], **OVERRIDES["lightly"]}
        loop = LightlyLoop(method, recipe, budget, source.images, mean, std, side, make_backbone)

        def peer_batches():
            while True:
                yield from loop.loader

        peer = peer_batches()

        def run_ours(t: int) -> None:
            trainer._step(next(ours_batches), StepInfo(t, 0, t, ctx.steps_per_epoch, ctx.total_steps), 0)

        def run_peer(t: int) -> None:
            loop.step(next(peer), t)

        seconds = {"sslzoo": 0.0, "lightly": 0.0}
        step_fns = {"sslzoo": run_ours, "lightly": run_peer}
        for fn in step_fns.values():
            fn(0)  # warm-up: first-call allocations and caches
        for r in range(rounds):
            for name in ("sslzoo", "lightly") if r % 2 == 0 else ("lightly", "sslzoo"):
                start = time.perf_counter()
                for i in range(steps):
                    step_fns[name](1 + r * steps + i)
                seconds[name] += time.perf_counter() - start
    images = rounds * steps * budget.batch_size
    return images / seconds["sslzoo"], images / seconds["lightly"]


def evaluate(folder: Path, dataset: str) -> dict[str, float]:
    from evaluators.evaluate import EvalConfig, protocol_params, run_protocols

    params = protocol_params(EvalConfig(protocols="knn,linear"))
    records = run_protocols(str(folder), dataset, params, device="cpu", progress=False)
    return {r.protocol: float(r.metrics["top1"]) for r in records}


def _row(
    method: str, framework: str, seed: int, trained: dict[str, Any], scores: dict[str, float]
) -> dict[str, Any]:
    return {
        "method": method,
        "framework": framework,
        "seed": seed,
        "knn": round(scores["knn"], 2),
        "linear": round(scores["linear"], 2),
        "train_seconds": round(trained["seconds"], 1),
        "images_per_s": round(trained["images"] / trained["seconds"], 1),
    }


def _row_key(row: dict[str, Any]) -> tuple[str, str, int]:
    return row["method"], row["framework"], row.get("seed", 0)


def _save_row(path: Path, budget: Budget, machine: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Add ``row`` to ``path``'s rows of this budget, re-read first: several processes may share one ``--out``
    (each with its own ``--methods``)."""
    from zoo.export import write_json_atomic

    saved = json.loads(path.read_text()) if path.is_file() else {}
    rows = saved.get("rows", []) if saved.get("budget") == budget.key() else []
    rows = [r for r in rows if _row_key(r) != _row_key(row)] + [row]
    write_json_atomic(path, {"budget": budget.key(), "machine": machine, "rows": rows})
    return rows


def _speed_key(budget: Budget) -> str:
    """What images/s depends on: not the epochs, seed or learning rate."""
    keys = ("dataset", "arch", "arch_args", "batch_size", "workers", "channels_last")
    return json.dumps({k: getattr(budget, k) for k in keys}, sort_keys=True, default=list)


def _seeds(rows: list[dict[str, Any]]) -> str:
    return ", ".join(str(s) for s in sorted({r.get("seed", 0) for r in rows}))


def report(
    rows: list[dict[str, Any]],
    budget: Budget,
    machine: str,
    command: str,
    speeds: dict[str, Any] | None = None,
) -> str:
    """The Markdown table: one line per method × framework with the differences sslzoo − lightly; images/s from
    the alternating bursts of ``--speed`` where measured (``speeds``), else from the whole training runs."""
    from lightly_peer import differences

    rates = (speeds or {}).get("rates", {})
    lines = [
        f"Budget: `{budget.arch}` on `{budget.dataset}`, {budget.epochs} epoch{'s' * (budget.epochs != 1)} of "
        f"batches of {budget.batch_size}, "
        f"AdamW lr {budget.lr:g} → {budget.min_lr:g} (cosine, {budget.warmup_epochs:g} warm-up epoch), wd "
        f"{budget.weight_decay:g} (not on norms and biases), seeds {_seeds(rows)}, {budget.workers} DataLoader "
        f"workers, {'channels-last' if budget.channels_last else 'contiguous'} float32. Evaluation: weighted "
        "k-NN (k 20, T 0.07) and linear probe, train → full test split, one code path for both.",
        "",
        f"Machine: {machine}. Command: `{command}`"
        + "".join(f"; {side} changed: {v}" for side, v in OVERRIDES.items() if v),
        "",
        "| method | framework | k-NN | linear | per seed (k-NN / linear) | train s | images/s | Δ k-NN | Δ linear "
        "| speed ratio |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=_row_key):
        by.setdefault((row["method"], row["framework"]), []).append(row)

    def mean(group: list[dict[str, Any]], key: str) -> float:
        return sum(r[key] for r in group) / len(group)

    for method in METHODS:
        ours, peer = by.get((method, "sslzoo")), by.get((method, "lightly"))
        speed = rates.get(method)
        for group in (ours, peer):
            if group is None:
                continue
            framework = group[0]["framework"]
            rate = speed[0 if group is ours else 1] if speed else mean(group, "images_per_s")
            delta = ("", "", "")
            if group is ours and peer is not None:
                ratio = (
                    speed[0] / speed[1] if speed else mean(ours, "images_per_s") / mean(peer, "images_per_s")
                )
                delta = (
                    f"{mean(ours, 'knn') - mean(peer, 'knn'):+.2f}",
                    f"{mean(ours, 'linear') - mean(peer, 'linear'):+.2f}",
                    f"{ratio:.2f}×",
                )
            seeds = ", ".join(f"{r['knn']:.2f} / {r['linear']:.2f}" for r in group)
            lines.append(
                f"| {method} | {framework} | {mean(group, 'knn'):.2f} | {mean(group, 'linear'):.2f} | {seeds} | "
                f"{mean(group, 'train_seconds'):.0f} | {rate:.0f} | {delta[0]} | {delta[1]} | {delta[2]} |"
            )
    lines += [
        "",
        "k-NN and linear: means over the seeds (per seed beside them, seed 0 first). Δ and the speed ratio are "
        "sslzoo − lightly and sslzoo / lightly. ",
    ]
    if rates:
        lines[-1] += (
            f"images/s: {speeds['rounds']} alternating bursts of {speeds['steps']} steps per framework in one "
            f"process (`--speed`), on {speeds['machine']}; train s: the whole training run, setup included."
        )
    else:
        lines[-1] += "images/s: the whole training run (run `--speed` for alternating bursts)."
    lines += ["", "How the two differ:"]
    for method in METHODS:
        if any(r["method"] == method for r in rows):
            lines += [f"- {method}: " + "; ".join(differences(method))]
    return "\n".join(lines) + "\n"


RESULTS_FILE = Path(__file__).resolve().parent / "results" / "vs-lightly.json"
README = Path(__file__).resolve().parent / "README.md"
MARKERS = ("<!-- peer:start -->", "<!-- peer:end -->")


def render(data: dict[str, Any]) -> str:
    """The published block (``benchmarks/README.md``) from the committed ``results/vs-lightly.json``."""
    budget_fields = json.loads(data["results"]["budget"])
    budget = Budget(**{**budget_fields, "arch_args": tuple(budget_fields["arch_args"])})
    return report(data["results"]["rows"], budget, data["results"]["machine"], data["command"], data["speed"])


def publish(out: Path, command: str, readme: Path = README, results_file: Path = RESULTS_FILE) -> None:
    """Copy ``OUT``'s rows and speeds into ``results_file`` and write :func:`render` of them into ``readme``
    between its markers (``tests/test_bench_vs_lightly.py`` says when the two disagree)."""
    from zoo.export import write_json_atomic
    from zoo.local_paths import scrub_local_paths

    speed_path = out / "speed.json"
    data = scrub_local_paths(
        {
            "results": json.loads((out / "results.json").read_text()),
            "speed": json.loads(speed_path.read_text()) if speed_path.is_file() else None,
            "command": command,
        }
    )
    results_file.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(results_file, data)
    text = readme.read_text()
    head, rest = text.split(MARKERS[0], 1)
    _, tail = rest.split(MARKERS[1], 1)
    readme.write_text(f"{head}{MARKERS[0]}\n{render(data)}{MARKERS[1]}{tail}")


def _machine(threads: int) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} thread(s)"


def _speed_table(methods: list[str], budget: Budget, rounds: int, steps: int, out: Path) -> int:
    """Measure ``methods``' images/s in alternating bursts, print them, keep them in ``OUT/speed.json``."""
    from zoo.export import write_json_atomic

    machine = _machine(torch.get_num_threads())
    print(
        f"Training images/s, {rounds} alternating bursts of {steps} steps of {budget.batch_size}, {machine}"
    )
    print(f"{'method':<8} {'sslzoo':>9} {'lightly':>9} {'ratio':>7}")
    path = out / "speed.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if saved.get("key") != _speed_key(budget):
        saved = {}
    rates = saved.get("rates", {})
    for method in methods:
        ours, peer = speed(method, budget, rounds, steps)
        rates[method] = [round(ours, 1), round(peer, 1)]
        print(f"{method:<8} {ours:>9.1f} {peer:>9.1f} {ours / peer:>6.2f}×", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            path,
            {"key": _speed_key(budget), "rounds": rounds, "steps": steps, "machine": machine, "rates": rates},
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS)
    )
    parser.add_argument("--dataset", default=Budget.dataset)
    parser.add_argument("--arch", default=Budget.arch, help="timm backbone both frameworks train")
    parser.add_argument(
        "--arch-args", nargs="*", default=[], help="KEY=VALUE timm arguments, e.g. widths=(16,32)"
    )
    parser.add_argument("--epochs", type=int, default=Budget.epochs)
    parser.add_argument("--batch-size", type=int, default=Budget.batch_size)
    parser.add_argument("--lr", type=float, default=Budget.lr)
    parser.add_argument(
        "--warmup-epochs", type=float, default=Budget.warmup_epochs, help="(at most half the run)"
    )
    parser.add_argument("--seed", type=int, default=Budget.seed)
    parser.add_argument("--workers", type=int, default=Budget.workers, help="DataLoader workers, both sides")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--out", default="outputs/bench-vs-lightly", help="run folders, report.md, results.json"
    )
    parser.add_argument("--smoke", action="store_true", help="the smallest run: digits, 1 epoch of 64")
    parser.add_argument("--frameworks", default="sslzoo,lightly", help="train only these (experiments)")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="write OUT's table into benchmarks/README.md and its rows into benchmarks/results/vs-lightly.json",
    )
    parser.add_argument(
        "--ours-option",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra `sslzoo train` options (experiments)",
    )
    parser.add_argument(
        "--peer-option",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="recipe keys of the lightly side (experiments)",
    )
    parser.add_argument(
        "--speed",
        type=int,
        nargs=2,
        metavar=("ROUNDS", "STEPS"),
        help="only measure training images/s: ROUNDS alternating bursts of STEPS steps per framework",
    )
    args = parser.parse_args(argv)
    try:
        import lightly  # noqa: F401
    except ImportError:
        print("bench_vs_lightly: lightly is not installed; run `pip install -e '.[bench]'`.", file=sys.stderr)
        return 2
    from trainers.config import parse_arch_args

    OVERRIDES["sslzoo"].update(parse_arch_args(tuple(args.ours_option)))
    OVERRIDES["lightly"].update(parse_arch_args(tuple(args.peer_option)))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        print(f"bench_vs_lightly: unknown method {', '.join(unknown)}; choose from {', '.join(METHODS)}.")
        return 2
    budget = Budget(
        dataset=args.dataset,
        arch=args.arch,
        arch_args=tuple(args.arch_args),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_epochs=args.warmup_epochs,
        seed=args.seed,
        workers=args.workers,
    )
    if args.smoke:
        budget = dataclasses.replace(budget, dataset="digits", epochs=1, batch_size=64, warmup_epochs=0.5)
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.speed:
        return _speed_table(methods, budget, *args.speed, Path(args.out))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    saved = json.loads(results_path.read_text()) if results_path.is_file() else {}
    rows = saved.get("rows", []) if saved.get("budget") == budget.key() else []
    command = "python benchmarks/bench_vs_lightly.py " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = _machine(torch.get_num_threads())
    trainers = {"sslzoo": train_ours, "lightly": train_peer}
    for i, method in enumerate(methods):
        order = ("sslzoo", "lightly") if i % 2 == 0 else ("lightly", "sslzoo")
        for framework in order:
            if framework not in args.frameworks.split(","):
                continue
            if any(_row_key(r) == (method, framework, budget.seed) for r in rows):
                continue  # measured before with this budget and seed
            print(f"[{time.strftime('%H:%M:%S')}] {method}: training with {framework} …", flush=True)
            trained = trainers[framework](
                method, method_budget(method, budget), out / f"{framework}-{method}-seed{budget.seed}"
            )
            scores = evaluate(trained["folder"], budget.dataset)
            rows.append(_row(method, framework, budget.seed, trained, scores))
            print(f"    {json.dumps(rows[-1])}", flush=True)
            rows = _save_row(results_path, budget, machine, rows[-1])
    speed_path = out / "speed.json"
    speeds = json.loads(speed_path.read_text()) if speed_path.is_file() else None
    if speeds and speeds.get("key") != _speed_key(budget):
        speeds = None
    text = report(rows, budget, machine, command, speeds)
    (out / "report.md").write_text(text)
    print(text)
    if args.publish:
        if any(OVERRIDES.values()):
            print("bench_vs_lightly: --publish takes the comparison without --ours-option/--peer-option.")
            return 2
        seeds = sorted({r.get("seed", 0) for r in rows})
        canonical = (
            f"python benchmarks/bench_vs_lightly.py --epochs {budget.epochs} --warmup-epochs {budget.warmup_epochs:g} "
            f"--threads {torch.get_num_threads()} --out OUT --seed S` for S in {', '.join(map(str, seeds))}, then "
            "`... --out OUT --speed 3 6`, then `... --out OUT --publish"
        )
        publish(out, canonical)
        print(f"published into {README} and {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
