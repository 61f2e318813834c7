"""``sslzoo eval`` and ``sslzoo leaderboard``: argument parsing and printing only."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
from pathlib import Path

from zoo.config import DEVICE_HELP, LEADERBOARD_HELP, add_dataclass_arguments, dataclass_from_namespace

# The options of `sslzoo eval` that `sslzoo reproduce` takes (the protocols and their settings are the papers').
REPRODUCE_OPTIONS = (
    "paper_epochs",
    "paper_batch_size",
    "paper_steps_per_epoch",
    "batch_size",
    "num_workers",
    "device",
    "cache",
)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``eval`` and ``leaderboard`` on the top-level ``sslzoo`` parser."""
    from evaluators.config import EvalConfig

    p = subparsers.add_parser(
        "eval",
        help="k-NN, linear probe and clustering scores of a model's frozen features; writes leaderboard records",
        description="Evaluate MODEL (a zoo name, hf-hub:ORG/NAME[@REV], a local folder, raw-pixels, "
        "raw-pixels-centred or random-ARCH) on DATASET, print the scores and record them in your leaderboard "
        "(--leaderboard; the repository's leaderboard/ only when named there).",
    )
    p.add_argument(
        "model", help="zoo name, hf-hub:ORG/NAME[@REV], folder, raw-pixels, raw-pixels-centred or random-ARCH"
    )
    p.add_argument("dataset", help="dataset name (see `sslzoo datasets`)")
    add_dataclass_arguments(p, EvalConfig)
    p.add_argument("--json", action="store_true", help="print the records as JSON")
    p.add_argument("--no-record", action="store_true", help="do not write to the leaderboard")
    p.add_argument("--leaderboard", type=Path, default=None, help=LEADERBOARD_HELP)
    p.set_defaults(handler=_eval)

    p = subparsers.add_parser(
        "reproduce",
        help="re-measure a registry model's published ImageNet numbers (k-NN, the paper's linear evaluation)",
        description="Run the protocols NAME's published ImageNet numbers come from, on an ImageNet folder "
        "(train/ and val/ with synset folders, or a flat val/ with LOC_val_solution.csv or "
        "ILSVRC2012_validation_ground_truth.txt + meta.mat), print measured vs published with the tolerance and "
        "record the results. Exit 1 when a comparable run misses its number. Under torchrun every rank embeds "
        "its shard and trains the linear heads with DDP.",
    )
    p.add_argument("name", help="registry name with published numbers (see `sslzoo models`)")
    p.add_argument("--dataset", default=None, help="folder:PATH of ImageNet-1k (train/ and val/)")
    add_dataclass_arguments(
        p,
        EvalConfig,
        skip=[f.name for f in dataclasses.fields(EvalConfig) if f.name not in REPRODUCE_OPTIONS],
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--no-record", action="store_true", help="do not write to the leaderboard")
    p.add_argument("--leaderboard", type=Path, default=None, help=LEADERBOARD_HELP)
    p.set_defaults(handler=_reproduce)

    p = subparsers.add_parser(
        "leaderboard",
        help="render the leaderboard (markdown + PNG), or re-run rows and check they reproduce",
        description="Show the repository's committed records and your own, each row saying where it comes from "
        "(source: repository / yours), and bring your leaderboard's generated files up to date; --leaderboard "
        "DIR shows that folder alone (and regenerates its files). --reproduce re-runs rows and exits 1 when one "
        "moves by more than the tolerance.",
    )
    p.add_argument(
        "--leaderboard",
        type=Path,
        default=None,
        help="show only this folder of evaluation records (default: the repository's leaderboard/ and yours, "
        "$SSLZOO_LEADERBOARD, else ~/.cache/sslzoo/leaderboard)",
    )
    p.add_argument("--dataset", default=None, help="only this dataset's rows")
    p.add_argument(
        "--reproduce",
        nargs="*",
        metavar="ROW",
        default=None,
        help="re-run these rows (id, model or MODEL@DATASET; none = all) and compare each metric",
    )
    p.add_argument(
        "--tolerance", type=float, default=0.5, help="largest allowed difference in points (default: 0.5)"
    )
    p.add_argument(
        "--use-cache", action="store_true", help="reproduce from cached features (default: re-embed)"
    )
    p.add_argument("--device", default="auto", help=f"{DEVICE_HELP}, for re-runs (default: auto)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_leaderboard)


def _eval(args: argparse.Namespace) -> int:
    from evaluators._dist import rank_world
    from evaluators.evaluate import EvalConfig, evaluate

    config = dataclass_from_namespace(EvalConfig, args)
    config.validate()  # fail on a bad option before loading anything
    if not args.no_record:
        _check_writable(args.leaderboard)
    command = "sslzoo " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["eval"] else ""
    records = evaluate(args.model, args.dataset, config, progress=not args.json, command=command)
    if rank_world()[0] != 0:  # under torchrun rank 0 reports for all
        return 0
    # Results first: an unwritable leaderboard must not lose what took minutes to compute.
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2, default=str), flush=True)
    else:
        _print_records(args, records)
    if not args.no_record:
        written = _record(records, args.leaderboard)
        if not args.json:
            print(_written_text(written, records))
    return 0


def _written_text(written: list[Path], records) -> str:
    """What a write did: the records' files, then the generated files it changed (only those)."""
    files = [p for p in written if p.suffix == ".jsonl"]
    changed = [p for p in written if p.suffix != ".jsonl"]
    text = f"recorded in {', '.join(map(str, files))} (rows {', '.join(r.id for r in records)})"
    if changed:
        text += f"; updated {', '.join(map(str, changed))}"
    return text


def _check_writable(leaderboard: Path | None) -> None:
    """Fail before any work when the leaderboard folder cannot be created or written."""
    from evaluators.records import default_leaderboard_dir
    from zoo.errors import SslzooError

    folder = Path(leaderboard or default_leaderboard_dir()).expanduser()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK)):
        what = "is a file" if not existing.is_dir() else "is not writable"
        raise SslzooError(
            f"cannot record in the leaderboard {folder}: {existing} {what}; give --leaderboard a writable "
            "folder, or --no-record."
        )


def _record(records, leaderboard: Path | None) -> list[Path]:
    """Write the records, or fail in one line that says the results above were not recorded."""
    from evaluators.generated import write_and_regenerate
    from evaluators.records import default_leaderboard_dir
    from zoo.errors import SslzooError

    try:
        return write_and_regenerate(records, leaderboard)
    except OSError as exc:
        folder = leaderboard or default_leaderboard_dir()
        raise SslzooError(
            f"the results above were not recorded: cannot write to the leaderboard {folder} "
            f"({exc.strerror or type(exc).__name__}); rerun with --leaderboard DIR (features are cached) or "
            "--no-record."
        ) from None


def _print_records(args: argparse.Namespace, records) -> None:
    from rich.console import Console
    from rich.table import Table

    from evaluators.evaluate import PROTOCOL_DESCRIPTIONS
    from zoo.scores import format_points, points

    table = Table(title=f"{args.model} on {args.dataset} (scores in %)")
    for col in ("protocol", "metric", "value", "parameters", "seconds"):
        table.add_column(col, justify="right" if col in ("value", "seconds") else "left")
    for r in records:
        params = ", ".join(f"{k}={v}" for k, v in r.params.items() if k != "weight_decays" and v is not None)
        for i, (name, value) in enumerate(r.metrics.items()):
            if name.endswith("_std"):
                continue
            shown = format_points(points(value))
            table.add_row(
                r.protocol if i == 0 else "",
                name,
                shown,
                params if i == 0 else "",
                f"{r.wall_time_s:.1f}" if i == 0 else "",
            )
    console = Console()
    console.print(table)
    for name in dict.fromkeys(r.protocol for r in records):
        console.print(f"{name}: {PROTOCOL_DESCRIPTIONS[name]}")
    first = records[0]
    console.print(
        f"features: {first.splits['train']} train + {first.splits['test']} test, D={first.feature_dim}, "
        + (
            "from the feature cache"
            if first.features_time_s == 0
            else f"embedded in {first.features_time_s:.1f} s"
        )
    )


def _reproduce(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from evaluators.sources import imagenet_root

    imagenet_root(args.dataset)  # one line and exit 2 without ImageNet, before importing torch
    from evaluators._dist import rank_world
    from evaluators.config import EvalConfig
    from evaluators.reproduce import reproduce

    if not args.no_record:
        _check_writable(args.leaderboard)
    config = dataclass_from_namespace(EvalConfig, args)
    command = "sslzoo " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["reproduce"] else ""
    comparisons, records, notes = reproduce(
        args.name, args.dataset, config, progress=not args.json, command=command
    )
    if rank_world()[0] != 0:
        return 0
    written = [] if args.no_record else _record(records, args.leaderboard)
    missed = [c for c in comparisons if c.comparable and not c.ok]
    if args.json:
        print(json.dumps({"comparisons": [c.to_dict() for c in comparisons], "notes": notes}, indent=2))
        return 1 if missed else 0
    table = Table(title=f"{args.name}: measured vs published (ImageNet top-1 %)")
    for col in ("metric", "protocol", "published", "measured", "Δ points", "tolerance", "ok"):
        table.add_column(col, justify="left" if col in ("metric", "protocol") else "right")
    for c in comparisons:
        verdict = ("yes" if c.ok else "[red]NO[/]") if c.comparable else "not comparable"
        table.add_row(
            c.metric,
            c.protocol,
            f"{c.published:.1f}",
            f"{c.measured:.2f}",
            f"{c.delta:+.2f}",
            f"±{c.tolerance}",
            verdict,
        )
    console = Console()
    console.print(table)
    for note in notes:
        console.print(f"note: {note}")
    if written:
        console.print(_written_text(written, records))
    return 1 if missed else 0


def _leaderboard(args: argparse.Namespace) -> int:
    from evaluators.leaderboard import render_markdown, reproduce, select_records
    from evaluators.records import YOURS, read_sourced_records, reading_sources
    from zoo.errors import SslzooError

    if args.leaderboard is not None and args.leaderboard.exists() and not args.leaderboard.is_dir():
        raise SslzooError(
            f"--leaderboard {args.leaderboard} is a file; give the folder of DATASET.jsonl records."
        )
    if not (args.tolerance >= 0 and math.isfinite(args.tolerance)):
        raise SslzooError(f"--tolerance must be a finite number of points, 0 or more; got {args.tolerance}.")
    folders = reading_sources(args.leaderboard)
    sourced = read_sourced_records(args.leaderboard, args.dataset)
    sources = [source for source, _ in sourced]
    records = [record for _, record in sourced]
    if args.reproduce is None:
        if args.json:
            print(json.dumps([{"source": s, **r.to_dict()} for s, r in sourced], indent=2, default=str))
            return 0
        # One folder named: its own table, as its generated README.md shows it; both: a source column.
        print(render_markdown(records, None if args.leaderboard is not None else sources))
        if args.dataset is None:
            _regenerate_written_board(args.leaderboard, folders.get(YOURS))
        return 0

    if not records:
        where = " and ".join(map(str, folders.values()))
        raise SslzooError(f"no leaderboard records in {where}; run `sslzoo eval MODEL DATASET` first.")
    chosen = select_records(records, args.reproduce)
    by_source: dict[str, list] = {}
    for record in chosen:  # the same row in two sources is two records, each re-run with its own parameters
        source = next(s for s, r in sourced if r is record)
        by_source.setdefault(source, []).append(record)
    results = []
    for source, group in by_source.items():
        for res in reproduce(
            group,
            tolerance=args.tolerance,
            use_cache=args.use_cache,
            progress=not args.json,
            device=args.device,
        ):
            res.source = source
            results.append(res)
    failed = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 1 if failed else 0
    from rich.console import Console
    from rich.table import Table

    from zoo.scores import format_points, points

    table = Table(title=f"reproduction (scores in %, tolerance {args.tolerance} points)")
    for col in ("row", "metric", "recorded", "reproduced", "Δ points", "ok"):
        table.add_column(col, justify="left" if col in ("row", "metric") else "right")
    for res in results:
        rec = res.record
        shown = [(k, v) for k, v in res.differences.items() if not k.endswith("_std")]
        for i, (name, (old, new, diff)) in enumerate(shown):
            table.add_row(
                f"{rec.id} {rec.model}@{rec.dataset} {rec.protocol} ({res.source})" if i == 0 else "",
                name,
                format_points(points(old)),
                format_points(points(new)),
                f"{diff:+.3f}",
                "yes" if abs(diff) <= args.tolerance else "[red]NO[/]",
            )
    console = Console()
    console.print(table)
    for res in failed:
        console.print(
            f"[red]row {res.record.id} ({res.source}) does not reproduce:[/] " + "; ".join(res.problems)
        )
    console.print(
        f"{len(results) - len(failed)} of {len(results)} rows reproduce within {args.tolerance} points."
    )
    return 1 if failed else 0


def _regenerate_written_board(named: Path | None, yours: Path | None) -> None:
    """Bring the generated files of the folder that commands write up to date, and say so: the one named, else the
    user's (never the repository's committed files, which change only when named)."""
    from evaluators.generated import regenerate

    folder = named if named is not None else yours
    if folder is None or not folder.is_dir():
        return
    changed = regenerate(folder)
    if changed:
        print(f"updated: {', '.join(map(str, changed))}")
    elif any(folder.glob("*.jsonl")):
        print(f"{folder}: generated files up to date")
