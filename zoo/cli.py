"""``sslzoo datasets`` (and later the zoo's other subcommands): argument parsing and printing only."""

from __future__ import annotations

import argparse
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from zoo.config import DEVICE_HELP, add_dataclass_arguments, dataclass_from_namespace
from zoo.errors import SslzooError
from zoo.image_errors import naming_unreadable_images


@dataclass
class EmbedConfig:
    """Options of ``sslzoo embed`` (the CLI is generated from these fields)."""

    out: str = field(default="features.npy", metadata={"help": "where to write the (N, D) float32 features"})
    split: str = field(default="test", metadata={"help": "dataset split to embed"})
    batch_size: int = field(default=256, metadata={"help": "images per forward pass"})
    device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    num_workers: int = field(
        default=0, metadata={"help": "DataLoader workers decoding and transforming images"}
    )


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the zoo's subcommands on the top-level ``sslzoo`` parser."""
    p = subparsers.add_parser("datasets", help="list datasets, or show one's splits and a sample grid")
    json_help = "print JSON instead of a table"
    p.add_argument("--json", action="store_true", help=json_help)
    sub = p.add_subparsers(dest="datasets_command", metavar="{list,show}")
    listing = sub.add_parser("list", help="list registered datasets with availability and size (the default)")
    # SUPPRESS: --json after the subcommand sets it, and its absence leaves the one before it alone.
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=json_help)
    show = sub.add_parser("show", help="counts per split and per class, and a PNG grid of samples")
    show.add_argument("name", help="registry name, hf:ORG/NAME or folder:PATH")
    show.add_argument("--out", type=Path, default=None, help="PNG path (default: ./NAME-samples.png)")
    show.add_argument("--per-class", type=int, default=8, help="images per class in the grid (default: 8)")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=json_help)
    p.set_defaults(handler=_datasets)

    p = subparsers.add_parser(
        "models",
        help="list the model zoo: method, architecture, dimension, licence, published numbers, cached or not",
    )
    p.add_argument(
        "filter", nargs="?", default=None, help="keep names or methods containing this (or a glob)"
    )
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    p.set_defaults(handler=_models)

    p = subparsers.add_parser(
        "embed",
        help="embed a dataset split with a model and save the features as .npy",
        description="Embed DATASET's split with MODEL and write (N, D) float32 features to --out, and the labels "
        "next to them (OUT with .labels.npy).",
    )
    p.add_argument(
        "model", help="zoo name (see `sslzoo models`), hf-hub:ORG/NAME[@REV], or an exported folder"
    )
    p.add_argument("dataset", help="dataset name (see `sslzoo datasets`)")
    add_dataclass_arguments(p, EmbedConfig)
    p.add_argument("--json", action="store_true", help="print what was written as JSON (and no progress bar)")
    p.set_defaults(handler=_embed)


def _datasets(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from zoo import datasets

    console = Console()
    if args.datasets_command in (None, "list"):
        rows = []
        for name in datasets.dataset_names():
            spec = datasets.resolve(name)
            available, how = spec.availability()
            sizes = dict(spec.sizes) if available else {}  # data: listing builds no dataset
            rows.append(
                {"name": name, "available": available, "source": how, "splits": spec.splits, "sizes": sizes}
            )
        if args.json:
            print(json.dumps({"datasets": rows, "patterns": datasets.PATTERNS}, indent=2))
            return 0
        table = Table(title="sslzoo datasets")
        for col in ("name", "available", "source", "splits", "train", "test"):
            table.add_column(col)
        for row in rows:
            sizes = row["sizes"]
            table.add_row(
                row["name"],
                "yes" if row["available"] else "no",
                row["source"],
                row["splits"],
                str(sizes.get("train", "-")),
                str(sizes.get("test", "-")),
            )
        for pattern, what in datasets.PATTERNS.items():
            table.add_row(pattern, "", what, "", "", "")
        console.print(table)
        return 0

    if args.per_class < 1:
        raise SslzooError(
            f"--per-class must be at least 1 (images per class in the grid), got {args.per_class}."
        )
    from zoo.atomic import check_file_destination

    safe = args.name.replace("/", "_").replace(":", "_")
    out = check_file_destination(args.out or Path(f"{safe}-samples.png"), "--out")
    with naming_unreadable_images(args.name):
        info = datasets.describe_dataset(args.name)
        out = datasets.save_sample_grid(args.name, out, per_class=args.per_class)
    if args.json:
        print(json.dumps({**info, "grid": str(out)}, indent=2))
        return 0
    summary = ", ".join(f"{v['size']} {s}" for s, v in info["splits"].items())
    console.print(
        f"[bold]{args.name}[/]: {summary} images in {len(info['classes'])} classes ({info['source']})"
    )
    table = Table()
    table.add_column("class")
    for split in info["splits"]:
        table.add_column(split, justify="right")
    for cls in info["classes"]:
        table.add_row(cls, *(str(v["per_class"][cls]) for v in info["splits"].values()))
    console.print(table)
    console.print(f"sample grid: {out}")
    return 0


def headline_numbers(entry) -> dict[str, object]:
    """An entry's k-NN and linear top-1 (%) and where they were measured: the paper's ImageNet numbers for
    official weights, the records a mini-zoo model shipped with (its ``sslzoo.json``) for ours."""
    from zoo.publish import pinned_results, shipped_folder
    from zoo.scores import points

    if entry.published:
        return {
            "measured_on": "imagenet-1k (published)",
            "knn_top1": entry.published.get("imagenet_knn"),
            "linear_top1": entry.published.get("imagenet_linear"),
        }
    folder = shipped_folder(entry.name)
    pinned = (pinned_results(folder) or {}).get("model", []) if folder is not None else []
    out: dict[str, object] = {"measured_on": None, "knn_top1": None, "linear_top1": None}
    for record in pinned:
        top1 = (record.get("metrics") or {}).get("top1")
        if record.get("protocol") in ("knn", "linear") and top1 is not None:
            out[f"{record['protocol']}_top1"] = points(top1)
            out["measured_on"] = f"{record.get('dataset')} (recorded)"
    return out


def _models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from zoo import registry
    from zoo.errors import SslzooError
    from zoo.scores import format_points

    entries = registry.list_models(args.filter)
    if not entries:
        close = difflib.get_close_matches(args.filter, registry.model_names(), n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise SslzooError(f"no model matches {args.filter!r}; {hint}`sslzoo models` lists them all.")
    if args.json:
        rows = [
            {
                "name": e.name,
                "method": e.method,
                "arch": e.arch,
                "dim": e.dim,
                "licence": e.licence,
                "source": e.source,
                "published": e.published,
                "published_source": e.published_source,
                **headline_numbers(e),
                "paper": e.paper,
                "cached": registry.is_cached(e),
            }
            for e in entries
        ]
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="sslzoo models (top-1 %)")
    for col, justify in (
        ("name", "left"),
        ("method", "left"),
        ("arch", "left"),
        ("dim", "right"),
        ("licence", "left"),
        ("k-NN", "right"),
        ("linear", "right"),
        ("measured on", "left"),
        ("cached", "left"),
    ):
        table.add_column(col, justify=justify)
    for e in entries:
        numbers = headline_numbers(e)
        table.add_row(
            e.name,
            e.method,
            e.arch,
            str(e.dim),
            e.licence,
            format_points(numbers["knn_top1"]),
            format_points(numbers["linear_top1"]),
            numbers["measured_on"] or "-",
            "yes" if registry.is_cached(e) else "no",
        )
    console = Console()
    # Piped output gets rich's 80 columns otherwise, which truncates every name.
    (console if console.is_terminal else Console(width=180)).print(table)
    print("Also: hf-hub:ORG/NAME[@REVISION], a folder written by zoo.save_encoder, or a training run folder.")
    return 0


def _embed(args: argparse.Namespace) -> int:

    import numpy as np

    import zoo
    from zoo.atomic import check_file_destination, save_npy_atomic
    from zoo.encoder import check_loader_options

    cfg = dataclass_from_namespace(EmbedConfig, args)
    check_loader_options(cfg.batch_size, cfg.num_workers)
    out = check_file_destination(cfg.out, "--out")
    labels_out = check_file_destination(out.with_name(out.name.removesuffix(".npy") + ".labels.npy"), "--out")
    encoder = zoo.load(args.model, device=None if cfg.device == "auto" else cfg.device)
    with naming_unreadable_images(args.dataset):
        ds = zoo.load_dataset(args.dataset, split=cfg.split)
    with naming_unreadable_images(args.dataset, ds):
        feats = encoder.embed(
            ds, batch_size=cfg.batch_size, progress=not args.json, num_workers=cfg.num_workers
        ).numpy()
    for path, array in ((out, feats), (labels_out, np.asarray(ds["label"], dtype=np.int64))):
        save_npy_atomic(path, array)
    if args.json:
        report = {
            "model": args.model,
            "identity": encoder.identity,
            "dataset": args.dataset,
            "split": cfg.split,
            "shape": list(feats.shape),
            "dtype": str(feats.dtype),
            "features": str(out),
            "labels": str(labels_out),
        }
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{feats.shape[0]} × {feats.shape[1]} features of {args.dataset}/{cfg.split} by {encoder.identity}: {out}"
    )
    print(f"labels: {labels_out}")
    return 0
