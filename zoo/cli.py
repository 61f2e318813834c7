"""``sslzoo datasets`` (and later the zoo's other subcommands): argument parsing and printing only."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the zoo's subcommands on the top-level ``sslzoo`` parser."""
    p = subparsers.add_parser("datasets", help="list datasets, or show one's splits and a sample grid")
    sub = p.add_subparsers(dest="datasets_command", metavar="{list,show}")
    sub.add_parser("list", help="list registered datasets with availability and size (the default)")
    show = sub.add_parser("show", help="counts per split and per class, and a PNG grid of samples")
    show.add_argument("name", help="registry name, hf:ORG/NAME or folder:PATH")
    show.add_argument("--out", type=Path, default=None, help="PNG path (default: ./NAME-samples.png)")
    show.add_argument("--per-class", type=int, default=8, help="images per class in the grid (default: 8)")
    show.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(handler=_datasets)


def _datasets(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from zoo import datasets

    console = Console()
    if args.datasets_command in (None, "list"):
        table = Table(title="sslzoo datasets")
        for col in ("name", "available", "source", "splits", "train", "test"):
            table.add_column(col)
        for name in datasets.dataset_names():
            spec = datasets.resolve(name)
            available, how = spec.availability()
            sizes = {}
            if available:
                sizes = {s: str(len(ds)) for s, ds in datasets.load_dataset(name).items()}
            table.add_row(
                name,
                "yes" if available else "no",
                how,
                spec.splits,
                sizes.get("train", "-"),
                sizes.get("test", "-"),
            )
        for pattern, what in datasets.PATTERNS.items():
            table.add_row(pattern, "", what, "", "", "")
        console.print(table)
        return 0

    info = datasets.describe_dataset(args.name)
    safe = args.name.replace("/", "_").replace(":", "_")
    out = datasets.save_sample_grid(
        args.name, args.out or Path(f"{safe}-samples.png"), per_class=args.per_class
    )
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
