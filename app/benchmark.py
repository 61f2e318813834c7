"""``sslzoo benchmark``: the main job — every method trained on Fashion-MNIST and evaluated next to baselines.

One command shows the whole product on a CPU: each of the seven methods is trained with the shared engine, its
frozen encoder is evaluated with the evaluators' protocols (weighted k-NN, linear probe, k-means clustering) next to
the raw-pixel and random-init baselines and the encoders shipped in ``models/`` (the mini-zoo), and the run leaves
leaderboard records, model cards, training curves and a bar chart behind.

Two presets (the recipes are data, :data:`PRESETS`):

* ``quick`` — a demo that fits in minutes on two CPU cores: each method trains for two epochs (DINO one) on a
  stratified 10,000-image subset of the train split and everything is evaluated on the same subset against the
  full 10,000-image test split (``fashion-mnist?train=10000``). These are **quick-budget rows**: far too little
  training to beat raw pixels, and labelled so everywhere; each says in words whether it beat the random init of its
  architecture by more than the noise of a paired comparison on those test images (:mod:`app.learning`). Records
  go to ``OUT/leaderboard``, not the repository's.
* ``full`` — the recipes that make the mini-zoo: 15 epochs of the small CNN (3 of the nano ViT) on the full 60,000
  images, resumable (checkpoints every 50 steps; run it again to continue), minutes on a GPU, about an hour or two
  per method on one CPU thread. ``--validation``
  trains and evaluates on a validation split carved from train (``fashion-mnist?val=10000``) to choose
  hyper-parameters without looking at the test split; ``--ship`` exports finished encoders to ``models/NAME``
  (see :mod:`app.minizoo`) and records them in the repository's leaderboard.

>>> config = BenchmarkConfig(preset="quick", methods=("simclr",), dataset="digits", epochs=1)
>>> summary = run_benchmark(config)  # doctest: +SKIP
>>> summary["rows"][0]["kind"]  # doctest: +SKIP
'baseline'
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluators.generated import machine_text
from zoo.atomic import save_figure_atomic, write_lines_atomic
from zoo.errors import SslzooError

ALL_METHODS = ("simclr", "moco", "byol", "dino", "deepcluster", "deepercluster", "selflabel")
# The full test split: scoring is cheap, and 10,000 images make a paired margin of ~0.3 points visible.
QUICK_DATASET = "fashion-mnist?train=10000"
FULL_DATASET = "fashion-mnist"
VALIDATION_DATASET = "fashion-mnist?val=10000"
FULL_RUNS_DIR = "~/.cache/sslzoo/full-runs"
QUICK_OUT = "outputs/benchmark-quick"
# Row kinds, as the tables print them.
BASELINE, QUICK_BUDGET, MINI_ZOO, FULL_RECIPE = "baseline", "quick-budget", "mini-zoo", "full recipe"


# ------------------------------------------------------------------------------------------------ recipes
@dataclass(frozen=True)
class Preset:
    """A named set of per-method training recipes.

    Attributes:
        name: ``quick`` or ``full``.
        kind: What its rows are called in tables (``quick-budget``, ``full recipe``).
        dataset: Training and evaluation dataset (``zoo.load_dataset`` name, subset options included).
        shared: Training options every method gets (fields of ``TrainConfig``).
        recipes: Per-method options over ``shared`` (``TrainConfig`` fields and the method's own ``Config``).
        resumable: Continue an existing run folder (full) instead of starting over (quick).
    """

    name: str
    kind: str
    dataset: str
    shared: dict[str, Any]
    recipes: dict[str, dict[str, Any]]
    resumable: bool

    def options(self, method: str) -> dict[str, Any]:
        """The training options of ``method`` in this preset (without dataset, out and device)."""
        return {**self.shared, **self.recipes.get(method, {})}


# Presets ask for bf16 autocast only where the CPU multiplies bf16 in hardware (AMX, AVX512-BF16): there it trains
# the CNNs 1.7-2.9x faster; on an AVX2-only CPU bf16 is emulated and slower than float32 (resolved in _train_one).
NATIVE_BF16 = "bf16-if-native"

# Quick: two epochs of 10,000 images per method (~313 steps of 64), small CNN, no online k-NN (evaluated once
# afterwards), DINO with 2 + 2 crops: the seven trainings and eighteen evaluations fit ten minutes on two CPU
# cores (~6 min measured).
# Chosen on a validation split (fashion-mnist?val=10000&train=10000&test=5000, one thread; random init 79.4 k-NN /
# 82.4 linear there), not on test. The old recipe (one epoch of 39 steps of 256, crops down to 20%, AdamW for all)
# left every method 1-6 k-NN points below the random CNN: at this budget the steps, not the images, are what
# count (batches of 64: +2.6 k-NN for BYOL), milder crops keep the random features' detail (crops from 70% of the
# image: SimCLR 79.9 -> 80.9, MoCo 78.3 -> 80.3) and SGD moves the weights only as far as their gradients ask
# (DeepCluster 76.9 -> 77.9, BYOL 78.6 -> 78.8 over AdamW). Validation scores of the recipes below, k-NN / linear:
# SimCLR 80.9 / 85.4, MoCo 80.3 / 85.3, BYOL 79.5 / 84.6, DINO 79.5 / 83.0, DeepCluster 78.9 / 83.9, DeeperCluster
# 79.6 / 85.4, Self-Label 79.6 / 84.9: every linear probe above the random CNN, k-NN within a point of it.
_QUICK_SGD = {"optimizer": "sgd", "lr": 0.05, "weight_decay": 1e-5}  # DeepCluster's SGD settings
QUICK_PRESET = Preset(
    name="quick",
    kind=QUICK_BUDGET,
    dataset=QUICK_DATASET,
    shared={
        "arch": "sslzoo_cnn4",
        "batch_size": 64,
        "epochs": 2,
        "warmup_epochs": 0.25,
        "knn_every": 0,
        "log_every": 10,
        # channels-last convolutions: +25% (SimCLR) to +37% (BYOL) images/s on an AVX2 CPU, more with bf16 units.
        "amp": NATIVE_BF16,
        "channels_last": True,
    },
    recipes={
        "simclr": {"crop_min_scale": 0.7},
        "moco": {"queue_size": 2048, "crop_min_scale": 0.7},
        "byol": {**_QUICK_SGD, "crop_min_scale": 0.7},
        # Two global and two local crops instead of 2 + 6: multi-crop is most of DINO's cost on a CPU. One epoch of
        # batches of 256 (79.5 / 83.0) did as well as two of 128 (79.6 / 83.0) in half the time; of 64, 78.7 / 83.1.
        "dino": {"batch_size": 256, "epochs": 1, "n_local_crops": 2, "warmup_teacher_temp_epochs": 1.0},
        "deepcluster": {**_QUICK_SGD, "crop_min_scale": 0.85, "k": 50},
        "deepercluster": {
            **_QUICK_SGD,
            "crop_min_scale": 0.7,
            "super_clusters": 2,
            "sub_clusters": 8,
            "cluster_every": 1,
        },
        "selflabel": {**_QUICK_SGD, "crop_min_scale": 0.7, "num_clusters": 50, "label_updates": 2},
    },
    resumable=False,
)

# Full: the mini-zoo recipes on Fashion-MNIST (28 px, grey), sized to finish in about an hour per method on one
# CPU thread with bf16 autocast (AMX) and channels-last convs, or in minutes on a GPU. Settings are the papers'
# scaled to small images, a small network and a short schedule: crops down to 20% of the image, AdamW at 2e-3 for the
# CNN methods (SGD at MoCo's 0.06 learns too slowly in 15 epochs), the papers' temperatures and momenta, 10×
# over-clustering for the clustering methods. They were not tuned: `--validation` re-runs a recipe on a split carved
# from train to compare settings. DINO trains a small ViT (patch 4, 96-d, 4 blocks) so the app's attention view has a
# trained ViT offline; on CPU the ViT costs ~5× the CNN per image, so it gets 3 epochs.
# The six CNN recipes share one optimiser and the CPU speed-ups; DINO keeps its own optimiser defaults.
_FULL_CNN = {
    "min_lr": 1e-5,
    "optimizer": "adamw",
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "amp": NATIVE_BF16,
    "channels_last": True,
}
FULL_PRESET = Preset(
    name="full",
    kind=FULL_RECIPE,
    dataset=FULL_DATASET,
    shared={
        "arch": "sslzoo_cnn4",
        "batch_size": 256,
        "epochs": 15,
        "warmup_epochs": 1,
        "knn_every": 5,
        "checkpoint_every": 50,
        "log_every": 20,
    },
    recipes={
        # NT-Xent at τ=0.2 (SimCLR's best for small batches, Fig. B.7).
        "simclr": {**_FULL_CNN, "temperature": 0.2},
        # MoCo v2: τ=0.2, m=0.99 for a short schedule and a queue of ~7% of the data set.
        "moco": {**_FULL_CNN, "queue_size": 4096, "momentum": 0.99},
        # BYOL: τ_base 0.99 → 1 (cosine), as for CIFAR-10 in the paper's appendix.
        "byol": {**_FULL_CNN, "momentum": 0.99},
        # DINO on the CNN (the paper trains ResNet-50 as well as ViTs): the CNN optimiser above with a constant weight
        # decay (DINO's ResNet-50 run keeps 1e-4 throughout), 2 global 28 px + 6 local 12 px crops, the teacher at
        # τ_t 0.04 throughout, λ 0.99 → 1 for the short schedule, a 1024-way head, last layer frozen ¼ epoch.
        "dino": {
            **_FULL_CNN,
            "weight_decay_end": 1e-4,
            "local_crop_size": 12,
            "teacher_temp": 0.04,
            "warmup_teacher_temp_epochs": 0.0,
            "freeze_last_layer_epochs": 0.25,
            "momentum": 0.99,
            "out_dim": 1024,
        },
        # DINO on the nano ViT (float32: bf16 autocast is slower for it on CPU): 2 global 28 px + 6 local 12 px
        # crops, the teacher at τ_t 0.04 throughout (the DINO repository's default: at 0.07 this small ViT's
        # teacher went uniform, entropy 6.8 of ln 1024 = 6.9, k-NN 55% after 2 epochs), λ 0.996 → 1,
        # wd 0.04 → 0.4 (DINO's own optimiser defaults), last layer frozen ¼ epoch. 3 epochs: ~13 min each on one
        # CPU thread.
        "dino-vit": {
            "arch": "sslzoo_vit_nano_patch4",
            "epochs": 3,
            "warmup_epochs": 0.5,
            "amp": "none",
            "local_crop_size": 12,
            "teacher_temp": 0.04,
            "warmup_teacher_temp_epochs": 0.0,
            "freeze_last_layer_epochs": 0.25,
            "momentum": 0.996,
            "out_dim": 1024,
            "knn_every": 1,
        },
        # Clustering methods: 10× over-clustering (k=100 for 10 classes), re-clustered every epoch.
        "deepcluster": {**_FULL_CNN, "k": 100},
        "deepercluster": {**_FULL_CNN, "super_clusters": 4, "sub_clusters": 25, "cluster_every": 1},
        "selflabel": {**_FULL_CNN, "num_clusters": 100, "num_heads": 3, "label_updates": 10},
    },
    resumable=True,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (QUICK_PRESET, FULL_PRESET)}


# Entries of a preset other than its method's name: the mini-zoo ships DINO twice, on the CNN (``dino-fmnist``)
# and on the nano ViT whose attention the app draws (``dino-vit-fmnist``).
ENTRY_METHODS = {"dino-vit": "dino"}


def method_of(entry: str) -> str:
    """The training method of a preset entry: ``dino-vit`` → ``dino``, ``simclr`` → ``simclr``."""
    return ENTRY_METHODS.get(entry, entry)


def zoo_name(entry: str) -> str:
    """The mini-zoo name of a full-recipe entry's encoder: ``simclr`` → ``simclr-fmnist``."""
    return f"{entry}-fmnist"


# ------------------------------------------------------------------------------------------------ config
@dataclass
class BenchmarkConfig:
    """Options of ``sslzoo benchmark`` (the preset's recipes are in :data:`PRESETS`)."""

    preset: str = field(
        default="quick",
        metadata={
            "help": "quick: minutes on a CPU (quick-budget rows); full: the mini-zoo recipes, resumable",
            "choices": tuple(PRESETS),
        },
    )
    methods: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "entries to train: methods, and dino-vit in the full preset (default: all of the preset's)"
        },
    )
    dataset: str | None = field(
        default=None,
        metadata={"help": f"dataset (default: quick {QUICK_DATASET!r}, full {FULL_DATASET!r})"},
    )
    out: str | None = field(
        default=None, metadata={"help": f"output folder (default: quick {QUICK_OUT}, full {FULL_RUNS_DIR})"}
    )
    leaderboard: str | None = field(
        default=None,
        metadata={
            "help": "records folder (default: OUT/leaderboard; with --ship the repository's leaderboard/)"
        },
    )
    epochs: int | None = field(default=None, metadata={"help": "override every recipe's epochs"})
    batch_size: int | None = field(default=None, metadata={"help": "override every recipe's batch size"})
    validation: bool = field(
        default=False,
        metadata={
            "help": f"train and evaluate on a validation split carved from train ({VALIDATION_DATASET})"
        },
    )
    baselines: bool = field(default=True, metadata={"help": "evaluate raw-pixels and random-sslzoo_cnn4"})
    mini_zoo: bool = field(default=True, metadata={"help": "evaluate the encoders shipped in models/"})
    ship: bool = field(
        default=False,
        metadata={"help": "full preset: export finished encoders to models/METHOD-fmnist and record them"},
    )
    threads: int | None = field(default=None, metadata={"help": "torch threads (default: torch's)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


@dataclass
class _Run:
    method: str
    run_dir: Path
    seconds: float
    cpu_seconds: float
    epochs: float
    images: int


def _resolve(cfg: BenchmarkConfig) -> tuple[Preset, list[str], str, Path, Path]:
    if cfg.preset not in PRESETS:
        raise SslzooError(f"unknown preset {cfg.preset!r}; choose {' or '.join(PRESETS)}.")
    preset = PRESETS[cfg.preset]
    entries = tuple(dict.fromkeys([*ALL_METHODS, *preset.recipes]))
    methods = list(dict.fromkeys(cfg.methods or entries))
    unknown = [m for m in methods if m not in entries]
    if unknown:
        raise SslzooError(
            f"unknown method {', '.join(unknown)} for the {preset.name} preset; choose from {', '.join(entries)}."
        )
    if cfg.ship and preset.name != "full":
        raise SslzooError("--ship ships full-recipe encoders only; use it with --preset full.")
    if cfg.ship and (cfg.validation or cfg.dataset or cfg.epochs):
        raise SslzooError(
            "--ship ships encoders trained with the full recipe on the full train split; drop --validation, "
            "--dataset and --epochs."
        )
    dataset = cfg.dataset or (VALIDATION_DATASET if cfg.validation else preset.dataset)
    default_out = QUICK_OUT if preset.name == "quick" else FULL_RUNS_DIR + ("-val" if cfg.validation else "")
    out = Path(cfg.out or default_out).expanduser()
    if cfg.leaderboard:
        leaderboard = Path(cfg.leaderboard).expanduser()
    elif cfg.ship:
        from evaluators.records import repository_leaderboard_dir

        leaderboard = repository_leaderboard_dir()
    else:
        leaderboard = out / "leaderboard"
    return preset, methods, dataset, out, leaderboard


# ------------------------------------------------------------------------------------------------ training
def _session(command: str) -> dict[str, Any]:
    from evaluators.records import code_commit, machine_info, now_utc

    commit, dirty = code_commit()
    return {
        "started": now_utc(),
        "command": command,
        "commit": commit,
        "code_dirty": dirty,
        "machine": machine_info(),
    }


def resolve_amp(options: dict[str, Any], run_dir: Path, device: str | None = None) -> dict[str, Any]:
    """``amp: bf16-if-native`` as this machine runs it: ``auto`` on CUDA, ``bf16`` on a CPU with bf16 units, else
    ``none``. A run folder that already holds a run keeps the precision it was started with (``--resume`` refuses
    changed options), whichever machine continues it."""
    if options.get("amp") != NATIVE_BF16:
        return options
    from trainers.config import RUN_CONFIG

    previous = run_dir / RUN_CONFIG
    if previous.is_file():
        amp = json.loads(previous.read_text())["train"]["amp"]
    else:
        from trainers.distributed import cpu_has_native_bf16
        from zoo.devices import resolve_device

        cuda = resolve_device(device).type == "cuda"
        amp = "auto" if cuda else ("bf16" if cpu_has_native_bf16() else "none")
    return {**options, "amp": amp}


def _train_one(
    preset: Preset, method: str, cfg: BenchmarkConfig, dataset: str, out: Path, command: str
) -> _Run:
    from trainers import train
    from zoo.export import write_json_atomic

    run_dir = out / "runs" / f"{method}-{preset.name}"
    options = preset.options(method)
    if cfg.epochs is not None:
        options["epochs"] = cfg.epochs
    if cfg.batch_size is not None:
        options["batch_size"] = cfg.batch_size
    if not preset.resumable and run_dir.exists():
        shutil.rmtree(run_dir)  # a quick run starts over; its folder is ours (OUT/runs/METHOD-quick)
    options = resolve_amp(options, run_dir, cfg.device)
    # Provenance of every session that trained this run (a full run may be resumed on other days and machines).
    provenance_path = run_dir / "benchmark.json"
    provenance = json.loads(provenance_path.read_text()) if provenance_path.is_file() else {}
    provenance.update(preset=preset.name, kind=preset.kind, method=method, dataset=dataset, options=options)
    provenance.setdefault("sessions", []).append(_session(command))
    write_json_atomic(provenance_path, provenance)

    exported = run_dir / "encoder" / "sslzoo.json"  # rewritten at every checkpoint: the step reached so far
    steps_before = int(json.loads(exported.read_text()).get("global_step", 0)) if exported.is_file() else 0
    start, cpu = time.perf_counter(), time.process_time()
    train(
        method_of(method),
        dataset=dataset,
        out=str(run_dir),
        resume=preset.resumable,
        device=cfg.device,
        progress=cfg.progress,
        **options,
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    meta = json.loads(exported.read_text())
    steps = int(meta.get("global_step", 0))
    provenance["sessions"][-1].update(
        finished=_session(command)["started"],
        train_seconds=round(seconds, 1),
        train_cpu_seconds=round(cpu, 1),
        steps_trained=steps - steps_before,  # 0: the run was finished already (e.g. a --ship session)
    )
    write_json_atomic(provenance_path, provenance)
    return _Run(
        method, run_dir, seconds, cpu, float(meta.get("epochs_done", 0)), steps * options["batch_size"]
    )


# ------------------------------------------------------------------------------------------------ evaluation
def _model_string(path: Path) -> str:
    """A run folder as the records name it: relative to the working directory when inside it (re-loadable)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def _evaluate(model: str, dataset: str, leaderboard: Path, cfg: BenchmarkConfig, command: str) -> list[Any]:
    from evaluators.evaluate import EvalConfig, protocol_params, run_protocols
    from evaluators.records import write_records

    device = None if cfg.device == "auto" else cfg.device
    records = run_protocols(
        model, dataset, protocol_params(EvalConfig()), device=device, progress=cfg.progress, command=command
    )
    write_records(records, leaderboard)
    return records


def _row(model: str, kind: str, records: list[Any], run: _Run | None, cpu: float) -> dict[str, Any]:
    by = {r.protocol: r for r in records}
    row: dict[str, Any] = {"name": run.run_dir.name if run else model, "model": model, "kind": kind}
    row["knn_top1"] = by["knn"].metrics["top1"] if "knn" in by else None
    row["linear_top1"] = by["linear"].metrics["top1"] if "linear" in by else None
    row["nmi"] = by["clustering"].metrics["nmi"] if "clustering" in by else None
    row["cluster_acc"] = by["clustering"].metrics["acc"] if "clustering" in by else None
    row["test_images"] = next((r.splits.get("test") for r in records), None)
    if run is not None:
        row.update(
            method=run.method,
            train_seconds=round(run.seconds, 1),
            train_cpu_seconds=round(run.cpu_seconds, 1),
            epochs=round(run.epochs, 2),
            images_seen=run.images,
        )
    row["eval_cpu_seconds"] = round(cpu, 1)
    return row


def _epochs_text(runs: list[_Run]) -> str:
    """``2 epochs``, ``1–2 epochs`` or ``1 epoch``: what the trained rows had, as their run folders say."""
    done = sorted({round(float(run.epochs), 2) for run in runs})
    if not done:
        return "no epochs"
    text = f"{done[0]:g}" if len(done) == 1 else f"{done[0]:g}–{done[-1]:g}"
    return f"{text} epoch" + ("" if done == [1.0] else "s")


def _quick_card(run: _Run, leaderboard: Path, kind: str) -> Path:
    """The run's model card (``RUN/encoder/README.md``) with its records; quick ones say what they are."""
    from dataclasses import replace

    from app.publish_cli import records_for
    from evaluators.records import read_records
    from zoo.cards import render_card, results_from_records
    from zoo.publish import CARD_FILE, card_spec

    folder = run.run_dir / "encoder"
    records = [r.to_dict() for r in read_records(leaderboard)]
    results = results_from_records(records_for(_model_string(run.run_dir), records, folder=folder))
    spec = card_spec(folder, load_name=_model_string(run.run_dir))
    if kind == QUICK_BUDGET:
        spec = replace(
            spec,
            limitations=(
                f"Quick-budget encoder from `sslzoo benchmark --preset quick`: {run.epochs:g} epochs, "
                f"{run.images:,} images seen. A demonstration of the pipeline, not a good encoder; the mini-zoo's "
                "full-recipe encoders are.",
            ),
        )
    path = folder / CARD_FILE
    render_card(spec, results).save(path)
    return path


# ------------------------------------------------------------------------------------------------ plots, tables
def _curves_plot(runs: list[_Run], path: Path, title: str) -> Path:
    """One panel per run: loss per epoch, and the online k-NN accuracy where it was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, max(1, len(runs)))
    rows = (len(runs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(runs) :]:
        ax.axis("off")
    for ax, run in zip(axes.flat, runs):
        metrics = run.run_dir / "metrics.jsonl"
        data = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
        loss = [(r["epoch"], r["loss"]) for r in data if "loss" in r]
        if loss:
            ax.plot(*zip(*loss), color="C0", lw=1.2)
        ax.set_title(run.method, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("loss", fontsize=8, color="C0")
        ax.tick_params(labelsize=7)
        knn = [(r["epoch"], r["knn_acc"]) for r in data if "knn_acc" in r]
        if knn:
            twin = ax.twinx()
            twin.plot(*zip(*knn), color="C1", marker="o", ms=3, lw=1)
            twin.set_ylabel("k-NN acc", fontsize=8, color="C1")
            twin.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def _bar_chart(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Grouped bars (k-NN, linear, cluster acc) per model, labelled with its kind; raw pixels' k-NN as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = (
        ("knn_top1", "k-NN top-1", 1.0),
        ("linear_top1", "linear top-1", 1.0),
        ("cluster_acc", "cluster acc", 1.0),
    )
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.0))
    width = 0.8 / len(metrics)
    for i, (key, label, scale) in enumerate(metrics):
        values = [np.nan if r[key] is None else r[key] * scale for r in rows]
        bars = ax.bar(x + (i - 1) * width, values, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
    raw = next(
        (r["knn_top1"] for r in rows if r["model"] == "raw-pixels" and r["knn_top1"] is not None), None
    )
    if raw is not None:
        ax.axhline(raw, color="grey", ls="--", lw=0.8, label="raw pixels, k-NN")
    ax.set_xticks(x, [f"{r['name']}\n({r['kind']})" for r in rows], rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 115)
    ax.set_ylabel("%")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper center", ncol=4, frameon=False)
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def _compare_with_random(
    rows: list[dict[str, Any]], runs: list[_Run], preset: Preset, dataset: str, cfg: BenchmarkConfig
) -> None:
    """Add ``vs_random`` (paired margins and a verdict in words, :func:`app.learning.verdict`) to each trained row
    whose architecture's random init is a baseline row."""
    from app.learning import predictions, verdict
    from evaluators.evaluate import EvalConfig, protocol_params

    params = protocol_params(EvalConfig(protocols="knn,linear"))
    device = None if cfg.device == "auto" else cfg.device
    random_right: dict[str, Any] = {}
    for row, run in zip([r for r in rows if r["kind"] == preset.kind], runs):
        baseline = f"random-{preset.options(run.method).get('arch', 'sslzoo_cnn4')}"
        if not any(r["model"] == baseline for r in rows):
            continue
        if baseline not in random_right:
            random_right[baseline] = predictions(baseline, dataset, params, device)
        _say(cfg, f"[compare] {row['name']} with {baseline} (paired, on the same test images)")
        result = verdict(predictions(row["model"], dataset, params, device), random_right[baseline])
        row["vs_random"] = {"baseline": baseline, **result}


def _test_images(rows: list[dict[str, Any]]) -> str:
    n = next((r["test_images"] for r in rows if r.get("test_images")), None)
    return f"{n:,}" if n else "the"


def _z() -> str:
    from app.learning import Z

    return f"{Z:g}"


def _fmt(value: float | None, scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:.1f}"


def summary_markdown(summary: dict[str, Any]) -> str:
    """The benchmark's table: one row per model with its kind (baseline, quick-budget, mini-zoo, full recipe)."""
    lines = [
        f"# sslzoo benchmark: preset `{summary['preset']}` on `{summary['dataset']}`",
        "",
        f"Command: `{summary['command']}`; {summary['wall_seconds']:.0f} s wall ({summary['cpu_seconds']:.0f} CPU s) "
        f"on {summary['machine_text']}.",
        "",
        "| model | kind | k-NN top-1 | linear top-1 | NMI | cluster acc | epochs | train s (CPU s) | vs random init |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in summary["rows"]:
        train = f"{r['train_seconds']} ({r['train_cpu_seconds']})" if "train_seconds" in r else "–"
        lines.append(
            f"| `{r['model']}` | {r['kind']} | {_fmt(r['knn_top1'])} | {_fmt(r['linear_top1'])} | "
            f"{_fmt(r['nmi'])} | {_fmt(r['cluster_acc'])} | {r.get('epochs', '–')} | {train} | "
            f"{r['vs_random']['text'] if 'vs_random' in r else ''} |"
        )
    lines += ["", summary["note"], ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the job
def run_benchmark(cfg: BenchmarkConfig, *, command: str = "") -> dict[str, Any]:
    """Train, evaluate and report; returns the summary (also written to ``OUT/summary.json``).

    Args:
        cfg: The options.
        command: The command line, stored in records, cards and the summary.

    Returns:
        ``{"preset", "dataset", "rows": [{"model", "kind", "knn_top1", ...}], "files": {...}, "wall_seconds"}``.
    """
    import torch

    from evaluators.baselines import BASELINES
    from evaluators.leaderboard import render_markdown, save_chart
    from evaluators.records import machine_info, read_records
    from zoo import registry
    from zoo.export import write_json_atomic

    start, cpu_start = time.perf_counter(), time.process_time()
    preset, methods, dataset, out, leaderboard = _resolve(cfg)
    command = command or f"sslzoo benchmark --preset {preset.name}"
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    kind = preset.kind
    _say(cfg, f"sslzoo benchmark --preset {preset.name}: {len(methods)} methods on {dataset} → {out}")
    if preset.name == "quick":
        _say(
            cfg,
            "quick-budget rows: a minute or two of training per method, a demo of the pipeline, not good encoders",
        )

    runs = []
    for method in methods:
        _say(cfg, f"[train] {method} ({kind})")
        runs.append(_train_one(preset, method, cfg, dataset, out, command))
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun the other ranks only help to train
        return {
            "preset": preset.name,
            "dataset": dataset,
            "rows": [],
            "files": {},
            "rank": os.environ["RANK"],
        }

    rows, stage = [], time.perf_counter()
    models: list[tuple[str, str, _Run | None]] = []
    if cfg.baselines:
        models += [(name, BASELINE, None) for name in BASELINES]
    if not cfg.ship:  # shipped runs are evaluated under their zoo name below, never under a local path
        models += [(_model_string(run.run_dir), kind, run) for run in runs]
    if cfg.mini_zoo and not cfg.ship:
        models += [(entry.name, MINI_ZOO, None) for entry in registry.shipped_entries(registry.SHIPPED_DIR)]
    for model, row_kind, run in models:
        _say(cfg, f"[eval] {model} ({row_kind})")
        cpu = time.process_time()
        records = _evaluate(model, dataset, leaderboard, cfg, command)
        rows.append(_row(model, row_kind, records, run, time.process_time() - cpu))

    files: dict[str, Any] = {"leaderboard": str(leaderboard), "cards": [], "shipped": []}
    if cfg.ship:
        from app.minizoo import ship

        for run in runs:
            name = zoo_name(run.method)
            _say(cfg, f"[ship] {run.method} → {registry.SHIPPED_DIR / name}")
            cpu = time.process_time()
            folder, records = ship(run.run_dir, name, leaderboard=leaderboard, progress=cfg.progress)
            rows.append({**_row(name, MINI_ZOO, records, run, time.process_time() - cpu), "name": name})
            files["shipped"].append(str(folder))
            files["cards"].append(str(folder / "README.md"))
    else:
        for run in runs:
            files["cards"].append(str(_quick_card(run, leaderboard, kind)))
    if preset.name == "quick" and cfg.baselines:
        _compare_with_random(rows, runs, preset, dataset, cfg)
    eval_seconds = time.perf_counter() - stage
    if runs:
        files["curves"] = str(
            _curves_plot(
                runs, out / "training-curves.png", f"{preset.name} preset on {dataset}: training loss"
            )
        )
    records = [r for r in read_records(leaderboard) if r.dataset == dataset]
    files["chart"] = str(
        _bar_chart(rows, out / "leaderboard.png", f"sslzoo benchmark, {preset.name} preset, {dataset}")
    )
    files["all_records_chart"] = str(save_chart(records, out / "leaderboard-all.png"))
    write_lines_atomic(out / "leaderboard.md", [render_markdown(records)])
    files["leaderboard_md"] = str(out / "leaderboard.md")

    machine = machine_info()
    note = {
        "quick": f"quick-budget rows: each method trained for {_epochs_text(runs)} (per its recipe) on {dataset} — a demo "
        "of the pipeline, not expected to beat the pixel baselines; compare them with the random init of their "
        "architecture: 'vs random init' gives each protocol's margin over it ± its paired standard error on the "
        f"same {_test_images(rows)} test images (McNemar's, from the images only one of the two gets right), and a "
        f"row is called above random init where the margin exceeds {_z()} standard errors. Mini-zoo rows are "
        "full-recipe encoders evaluated on the same data. "
        "Baselines: raw pixels, centred pixels (minus the train mean image) and a randomly initialised "
        "sslzoo_cnn4.",
        "full": f"full-recipe rows: the mini-zoo recipes (app/benchmark.py, FULL_PRESET) on {dataset}.",
    }[preset.name]
    summary = {
        "preset": preset.name,
        "dataset": dataset,
        "command": command,
        "methods": methods,
        "rows": rows,
        "train_seconds": {run.method: round(run.seconds, 1) for run in runs},
        "eval_seconds": round(eval_seconds, 1),
        "wall_seconds": round(time.perf_counter() - start, 1),
        # CPU time of this process (all threads): on a shared machine wall time says more about the neighbours.
        "cpu_seconds": round(time.process_time() - cpu_start, 1),
        "machine": machine,
        "machine_text": machine_text(machine),
        "note": note,
        "files": files,
    }
    write_lines_atomic(out / "benchmark.md", [summary_markdown(summary)])
    files["table"] = str(out / "benchmark.md")
    write_json_atomic(out / "summary.json", summary)
    files["summary"] = str(out / "summary.json")
    return summary


def _say(cfg: BenchmarkConfig, text: str) -> None:
    if cfg.progress:
        print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ CLI
def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sslzoo benchmark`` and ``sslzoo readme-leaderboard``."""
    from zoo.config import LEADERBOARD_HELP, add_dataclass_arguments

    p = subparsers.add_parser(
        "benchmark",
        help="the main job: train every method, evaluate with baselines and the mini-zoo, write cards and plots",
        description="Train the seven methods on Fashion-MNIST and evaluate them (k-NN, linear probe, clustering) "
        "next to raw-pixel and random-init baselines and the shipped mini-zoo. --preset quick takes minutes on a "
        "CPU (quick-budget rows); --preset full runs the mini-zoo recipes (resumable: run it again to continue).",
    )
    add_dataclass_arguments(p, BenchmarkConfig)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=_benchmark)

    p = subparsers.add_parser(
        "readme-leaderboard",
        help="write the leaderboard's Fashion-MNIST table into README.md between its markers",
    )
    p.add_argument(
        "--readme", type=Path, default=None, help="file to update (default: the repository's README)"
    )
    p.add_argument(
        "--dataset", default=FULL_DATASET, help=f"dataset whose records to show (default: {FULL_DATASET})"
    )
    p.add_argument("--leaderboard", type=Path, default=None, help=LEADERBOARD_HELP)
    p.set_defaults(handler=_readme)


def _benchmark(args: argparse.Namespace) -> int:
    from zoo.config import dataclass_from_namespace

    cfg = dataclass_from_namespace(BenchmarkConfig, args)
    if args.json:
        cfg.progress = False
    command = "sslzoo " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["benchmark"] else ""
    summary = run_benchmark(cfg, command=command)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sslzoo benchmark, preset {summary['preset']}, on {summary['dataset']}")
    columns = ["model", "kind", "k-NN top-1", "linear top-1", "NMI", "cluster acc", "train s"]
    learned = any("vs_random" in r for r in summary["rows"])
    for col in columns + (["vs random init"] if learned else []):
        table.add_column(col, justify="left" if col in ("model", "kind", "vs random init") else "right")
    for r in summary["rows"]:
        table.add_row(
            r["name"],
            r["kind"],
            _fmt(r["knn_top1"]),
            _fmt(r["linear_top1"]),
            _fmt(r["nmi"]),
            _fmt(r["cluster_acc"]),
            str(r.get("train_seconds", "–")),
            *([r["vs_random"]["text"] if "vs_random" in r else ""] if learned else []),
        )
    console = Console()
    console = Console(width=max(console.width, 120))  # a pipe gets 80 columns: too narrow for the table
    console.print(table)
    console.print(summary["note"])
    files = summary["files"]
    console.print(
        f"wall time {summary['wall_seconds']:.0f} s ({summary['cpu_seconds']:.0f} CPU s) on {summary['machine_text']}"
    )
    console.print(f"records:  {files['leaderboard']}")
    console.print(f"table:    {files['table']}  (and {files['leaderboard_md']})")
    console.print(f"chart:    {files['chart']}")
    if files.get("curves"):
        console.print(f"curves:   {files['curves']}  (and RUN/curves.png per run)")
    for card in files["cards"]:
        console.print(f"card:     {card}")
    for folder in files["shipped"]:
        console.print(f"shipped:  {folder}")
    console.print(f"summary:  {files['summary']}")
    return 0


def _readme(args: argparse.Namespace) -> int:
    from app.minizoo import update_readme_leaderboard

    path, n = update_readme_leaderboard(args.readme, dataset=args.dataset, leaderboard=args.leaderboard)
    print(f"wrote the {args.dataset} leaderboard ({n} models) into {path}")
    return 0
