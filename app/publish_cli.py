"""``sslzoo export``, ``sslzoo push`` and ``sslzoo card``: publishing glue between the leaderboard and the zoo.

Cards need the evaluators' records and the zoo's folders and registry; ``zoo`` may not import ``evaluators``, so
the joining happens here, at the top of the import graph. The work itself is in :mod:`zoo.publish` (export,
validation, upload) and :mod:`zoo.cards` (rendering), which take the records as plain dicts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``export``, ``push`` and ``card`` on the top-level ``sslzoo`` parser."""
    from zoo.config import LEADERBOARD_HELP

    source_help = (
        "a training run folder, a folder written by zoo.save_encoder, a registry name or hf-hub:ORG/NAME"
    )

    p = subparsers.add_parser(
        "export", help="write a Hub-ready folder (weights, timm config, metadata, model card) and validate it"
    )
    p.add_argument("source", help=source_help)
    p.add_argument("--out", type=Path, required=True, help="destination folder (replaced)")
    p.add_argument(
        "--repo", default=None, help="Hub repo ORG/NAME it is meant for (names the card's snippets)"
    )
    p.add_argument("--name", default=None, help="model name in the card (default: the repo's or run's name)")
    p.add_argument("--leaderboard", type=Path, default=None, help=LEADERBOARD_HELP)
    p.set_defaults(handler=_export)

    p = subparsers.add_parser(
        "push", help="validate, then upload a run or Hub-ready folder to the Hugging Face Hub"
    )
    p.add_argument(
        "source", help=f"a Hub-ready folder (uploaded as it is), or {source_help} (exported first)"
    )
    p.add_argument("--repo", required=True, help="Hub repo ORG/NAME (created if missing)")
    p.add_argument(
        "--private",
        action="store_true",
        help="create the repo private (an existing repo keeps its visibility)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="validate and list what would be sent; upload nothing"
    )
    p.add_argument("--message", default=None, help="commit message")
    p.add_argument("--leaderboard", type=Path, default=None, help=LEADERBOARD_HELP)
    p.set_defaults(handler=_push)

    p = subparsers.add_parser("card", help="regenerate a model card from the leaderboard's records")
    p.add_argument("model", nargs="?", help="registry name, run folder or encoder folder")
    p.add_argument(
        "--all", action="store_true", help="regenerate model_cards/NAME.md for every registry entry"
    )
    p.add_argument("--out", type=Path, default=None, help="where to write the card (default: see below)")
    p.add_argument(
        "--repo", default=None, help="Hub repo ORG/NAME the card is for (names its loading snippets)"
    )
    p.add_argument("--leaderboard", type=Path, default=None, help=LEADERBOARD_HELP)
    p.epilog = (
        "A registry entry's card goes to model_cards/NAME.md (and into its folder when the entry ships one); a run's "
        "or folder's card goes to its encoder folder's README.md."
    )
    p.set_defaults(handler=_card)


# ---------------------------------------------------------------------------------------------- records


def _records(leaderboard: Path | None) -> list[dict[str, Any]]:
    from evaluators.records import read_records

    return [r.to_dict() for r in read_records(leaderboard)]


def records_for(
    model: str, records: list[dict[str, Any]], *, folder: Path | None = None, repo_id: str | None = None
) -> list[dict[str, Any]]:
    """The records that evaluated ``model``: by the name given, by path (a run or its encoder folder), by the
    SHA-256 of the weights (the record's ``model_identity``), or by Hub repo."""
    from zoo._hub import sha256_file

    paths: set[Path] = set()
    digest = None
    if folder is not None:
        paths = (
            {folder.resolve(), folder.parent.resolve()} if folder.name == "encoder" else {folder.resolve()}
        )
        weights = folder / "model.safetensors"
        digest = sha256_file(weights) if weights.is_file() else None
    hub = f"hf-hub:{repo_id}" if repo_id else None

    def matches(record: dict[str, Any]) -> bool:
        name = str(record.get("model", ""))
        identity = str(record.get("model_identity", ""))
        if name == model or (hub and (name == hub or name.startswith(f"{hub}@"))):
            return True
        if digest and digest in identity:
            return True
        if paths and name and not name.startswith("hf-hub:"):
            try:
                return Path(name).expanduser().resolve() in paths
            except OSError:
                return False
        return False

    return [r for r in records if matches(r)]


def _results(model: str, leaderboard: Path | None, *, folder: Path | None = None, repo_id: str | None = None):
    from zoo.cards import results_from_records

    return results_from_records(records_for(model, _records(leaderboard), folder=folder, repo_id=repo_id))


# ---------------------------------------------------------------------------------------------- printing


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _print_validation(validation, folder: Path) -> None:
    for check in validation.checks:
        print(f"  ok  {check}")
    for name in validation.files:
        print(f"      {name:<20} {_size((folder / name).stat().st_size):>9}")


def _local_folder(source: str) -> Path | None:
    from zoo.publish import encoder_folder

    path = Path(source).expanduser()
    return encoder_folder(path) if path.exists() else None


# ---------------------------------------------------------------------------------------------- handlers


def _export(args: argparse.Namespace) -> int:
    from zoo.publish import check_repo_id, export_folder, validate_folder

    if args.repo:
        check_repo_id(args.repo)
    folder = _local_folder(args.source)
    results = _results(args.source, args.leaderboard, folder=folder, repo_id=args.repo)
    out = export_folder(args.source, args.out, repo_id=args.repo, name=args.name, results=results)
    validation = validate_folder(out, reference=folder, expected=results)
    print(f"wrote {out} ({len(results)} recorded results in the card)")
    _print_validation(validation, out)
    return 0


def _is_hub_ready(path: Path) -> bool:
    from zoo.publish import REQUIRED_FILES

    return path.is_dir() and all((path / f).is_file() for f in REQUIRED_FILES)


def _push(args: argparse.Namespace) -> int:
    from zoo.publish import check_repo_id, export_folder, push

    check_repo_id(args.repo)
    source = Path(args.source).expanduser()
    staging = None
    try:
        if _is_hub_ready(source):
            folder, reference, expected = source, None, ()
            print(f"validating {folder} (uploaded as it is)")
        else:
            reference = _local_folder(args.source)
            expected = _results(args.source, args.leaderboard, folder=reference, repo_id=args.repo)
            staging = Path(tempfile.mkdtemp(prefix="sslzoo-push-"))
            folder = export_folder(args.source, staging / "hub", repo_id=args.repo, results=expected)
            print(f"exported {args.source} with a model card of {len(expected)} recorded results; validating")
        result = push(
            folder,
            args.repo,
            private=args.private,
            dry_run=args.dry_run,
            reference=reference,
            expected=expected,
            commit_message=args.message,
        )
        _print_validation(result.validation, folder)
        # create_repo(exist_ok=True) leaves an existing repo as it is, so the flag speaks only for a new one.
        visibility = "private if new" if args.private else "public if new"
        if result.dry_run:
            print(
                f"dry run: would upload {len(result.files)} files ({_size(result.bytes)}) to {result.url} "
                f"({visibility}); nothing was sent"
            )
        else:
            print(
                f"uploaded {len(result.files)} files ({_size(result.bytes)}) to {result.url} ({visibility})"
            )
            if result.commit_url:
                print(f"commit: {result.commit_url}")
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return 0


def _card(args: argparse.Namespace) -> int:
    from zoo.errors import SslzooError
    from zoo.registry import MODELS, list_models

    if args.all == bool(args.model):
        raise SslzooError("give one MODEL (a registry name or a folder) or --all, not both and not neither.")
    if args.all:
        records = _records(args.leaderboard)
        for entry in list_models():
            path, n = _entry_card(entry, records, out=None, repo_id=None)
            print(f"{path}  ({n} recorded results)")
        return 0
    if args.model in MODELS:
        path, n = _entry_card(MODELS[args.model], _records(args.leaderboard), out=args.out, repo_id=args.repo)
    else:
        path, n = _folder_card(args.model, args.leaderboard, out=args.out, repo_id=args.repo)
    print(f"{path}  ({n} recorded results)")
    return 0


def _entry_card(
    entry, records: list[dict[str, Any]], *, out: Path | None, repo_id: str | None
) -> tuple[Path, int]:
    """Write a registry entry's card to ``out`` or ``model_cards/NAME.md`` (and into its folder if it ships one)."""
    from zoo._loader import entry_folder
    from zoo.cards import TEMPLATE_PATH, render_card, results_from_records
    from zoo.publish import CARD_FILE, card_spec, encoder_folder, entry_card_spec, published_results

    path = Path(out) if out else TEMPLATE_PATH.parent / f"{entry.name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = entry_folder(entry)
    if (
        folder is not None
    ):  # an encoder shipped with the repository: our own training, described by its folder
        folder = encoder_folder(folder)
        results = results_from_records(records_for(entry.name, records, folder=folder, repo_id=repo_id))
        spec = card_spec(folder, name=entry.name, repo_id=repo_id, load_name=entry.name)
        published = published_results(entry)
        _save_atomic(render_card(spec, results, published=published), folder / CARD_FILE)
        # The copy in model_cards/ points at the folder's figures from where it lives.
        figures = [os.path.relpath(folder / f, path.parent.resolve()) for f in spec.figures]
        card = render_card(replace(spec, figures=figures), results, published=published)
    else:
        results = results_from_records(records_for(entry.name, records, repo_id=repo_id))
        card = render_card(
            entry_card_spec(entry, repo_id=repo_id), results, published=published_results(entry)
        )
    _save_atomic(card, path)
    return path, len(results)


def _folder_card(
    model: str, leaderboard: Path | None, *, out: Path | None, repo_id: str | None
) -> tuple[Path, int]:
    from zoo.cards import render_card
    from zoo.publish import CARD_FILE, card_spec, encoder_folder

    folder = encoder_folder(model)
    results = _results(model, leaderboard, folder=folder, repo_id=repo_id)
    card = render_card(card_spec(folder, repo_id=repo_id, load_name=model), results)
    path = Path(out) if out else folder / CARD_FILE
    _save_atomic(card, path)
    return path, len(results)


def _save_atomic(card, path: Path) -> None:
    from zoo.atomic import atomic_file

    with atomic_file(path) as tmp:
        card.save(tmp)
