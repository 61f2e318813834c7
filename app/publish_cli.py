"""``sslzoo export``, ``sslzoo push`` and ``sslzoo card``: publishing glue between the leaderboard and the zoo.

Cards need the evaluators' records and the zoo's folders and registry; ``zoo`` may not import ``evaluators``, so
the joining happens here, at the top of the import graph. The work itself is in :mod:`zoo.publish` (export,
validation, upload) and :mod:`zoo.cards` (rendering), which take the records as plain dicts.
"""

from __future__ import annotations

import argparse
import json
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
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="destination: a new or empty folder, or an earlier export (replaced)",
    )
    p.add_argument(
        "--repo", default=None, help="Hub repo ORG/NAME it is meant for (names the card's snippets)"
    )
    p.add_argument("--name", default=None, help="model name in the card (default: the repo's or run's name)")
    p.add_argument("--leaderboard", type=Path, default=None, help=LEADERBOARD_HELP)
    p.add_argument("--json", action="store_true", help="print what was written and checked as JSON")
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
    p.add_argument("--json", action="store_true", help="print what was (or would be) sent as JSON")
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
    p.add_argument(
        "--update-results",
        action="store_true",
        help="a shipped model (models/NAME): show the leaderboard's latest records and pin them in its "
        "sslzoo.json, instead of the records it was shipped with",
    )
    p.epilog = (
        "A registry entry's card goes to model_cards/NAME.md, and a shipped model's (models/NAME) also to "
        "models/NAME/README.md; a run's or folder's card goes to its encoder folder's README.md. --out replaces "
        "the model_cards/ path."
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


def baseline_records(
    model_records: list[dict[str, Any]], records: list[dict[str, Any]], arch: str | None
) -> dict[str, list[dict[str, Any]]]:
    """The baselines' records on the datasets ``model_records`` cover: pixels, centred pixels, and ``arch`` (and
    the default CNN) with random weights; the card keeps those evaluated exactly like the model."""
    from evaluators.baselines import BASELINES, RANDOM_PREFIX

    names = list(dict.fromkeys([*BASELINES, *([f"{RANDOM_PREFIX}{arch}"] if arch else [])]))
    datasets = {r.get("dataset") for r in model_records}
    return {
        name: [r for r in records if r.get("model") == name and r.get("dataset") in datasets]
        for name in names
    }


def card_records(
    model: str,
    records: list[dict[str, Any]],
    *,
    folder: Path | None = None,
    repo_id: str | None = None,
    latest: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The records a card shows for ``model`` and the baselines' beside them.

    A shipped folder keeps the records it was shipped with (pinned in its ``sslzoo.json``) unless ``latest``;
    anything else gets the leaderboard's records of the model (see :func:`records_for`).
    """
    from zoo.publish import CONFIG_FILE, pinned_results

    pinned = pinned_results(folder) if folder is not None and not latest else None
    if pinned is not None:
        return list(pinned.get("model") or []), dict(pinned.get("baselines") or {})
    mine = records_for(model, records, folder=folder, repo_id=repo_id)
    arch = None
    if folder is not None and (folder / CONFIG_FILE).is_file():
        import json

        arch = json.loads((folder / CONFIG_FILE).read_text()).get("architecture")
    return mine, baseline_records(mine, records, arch)


def _results(model: str, leaderboard: Path | None, *, folder: Path | None = None, repo_id: str | None = None):
    """(results, baselines) as :class:`zoo.cards.Result` s, for a card of ``model``."""
    from zoo.cards import results_from_records

    mine, baselines = card_records(model, _records(leaderboard), folder=folder, repo_id=repo_id)
    return results_from_records(mine), {n: results_from_records(rows) for n, rows in baselines.items()}


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
    """The encoder folder of a local path, or of a mini-zoo name (``models/NAME``); None for other models."""
    from zoo.publish import encoder_folder, shipped_folder

    path = Path(source).expanduser()
    if not path.exists():
        path = shipped_folder(source) or path
    return encoder_folder(path) if path.exists() else None


# ---------------------------------------------------------------------------------------------- handlers


def _export(args: argparse.Namespace) -> int:
    from zoo.publish import check_repo_id, export_folder, validate_folder

    if args.repo:
        check_repo_id(args.repo)
    folder = _local_folder(args.source)
    results, baselines = _results(args.source, args.leaderboard, folder=folder, repo_id=args.repo)
    out = export_folder(
        args.source, args.out, repo_id=args.repo, name=args.name, results=results, baselines=baselines
    )
    validation = validate_folder(out, reference=folder, expected=results)
    if args.json:
        print(json.dumps(_validation_json(out, validation, results=len(results)), indent=2))
        return 0
    print(f"wrote {out} ({len(results)} recorded results in the card)")
    _print_validation(validation, out)
    return 0


def _validation_json(folder: Path, validation, **extra: Any) -> dict[str, Any]:
    return {
        "folder": str(folder),
        **extra,
        "files": {name: (folder / name).stat().st_size for name in validation.files},
        "bytes": validation.bytes,
        "model_index_rows": validation.results,
        "max_abs_diff": validation.max_abs_diff,
        "checks": validation.checks,
    }


def _is_hub_ready(path: Path) -> bool:
    from zoo.publish import REQUIRED_FILES

    return path.is_dir() and all((path / f).is_file() for f in REQUIRED_FILES)


def _push(args: argparse.Namespace) -> int:
    from zoo.publish import check_repo_id, export_folder, push

    check_repo_id(args.repo)
    source = Path(args.source).expanduser()
    staging = None
    say = (lambda text: None) if args.json else print
    try:
        if _is_hub_ready(source):
            folder, reference, expected = source, None, ()
            say(f"validating {folder} (uploaded as it is)")
        else:
            reference = _local_folder(args.source)
            expected, baselines = _results(args.source, args.leaderboard, folder=reference, repo_id=args.repo)
            staging = Path(tempfile.mkdtemp(prefix="sslzoo-push-"))
            folder = export_folder(
                args.source, staging / "hub", repo_id=args.repo, results=expected, baselines=baselines
            )
            say(f"exported {args.source} with a model card of {len(expected)} recorded results; validating")
        result = push(
            folder,
            args.repo,
            private=args.private,
            dry_run=args.dry_run,
            reference=reference,
            expected=expected,
            commit_message=args.message,
        )
        if args.json:
            extra = {
                "repo": result.repo_id,
                "url": result.url,
                "dry_run": result.dry_run,
                "private": args.private,
            }
            report = _validation_json(folder, result.validation, **extra, commit_url=result.commit_url)
            if staging is not None:
                report["folder"] = None  # a temporary export, removed below
            print(json.dumps(report, indent=2))
            return 0
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
    if args.out is not None:
        from zoo.atomic import check_file_destination

        check_file_destination(args.out, "--out")
    records = _records(args.leaderboard)
    if args.all:
        written = {}
        for entry in list_models():
            written.update(write_entry_cards(entry, records, latest=args.update_results))
    elif args.model in MODELS:
        written = write_entry_cards(
            MODELS[args.model], records, out=args.out, repo_id=args.repo, latest=args.update_results
        )
    else:
        written = _folder_card(args.model, records, out=args.out, repo_id=args.repo)
    for path, what in written.items():
        print(f"wrote {path}  ({what})")
    return 0


def entry_cards(
    entry,
    records: list[dict[str, Any]],
    *,
    repo_id: str | None = None,
    latest: bool = False,
    cards_dir: Path | None = None,
) -> tuple[dict[Path, Any], tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]] | None]:
    """A registry entry's cards, path → ``ModelCard``: ``model_cards/NAME.md``, and ``models/NAME/README.md`` for a
    shipped model; and, when ``latest``, the records to pin in the shipped folder (else None).

    A shipped model's cards show the records pinned in its ``sslzoo.json`` (what it was shipped with) unless
    ``latest``; nothing is written here, so a test can compare these with the files.
    """
    from zoo.cards import TEMPLATE_PATH, render_card, results_from_records
    from zoo.publish import (
        CARD_FILE,
        card_spec,
        encoder_folder,
        entry_card_spec,
        published_results,
        shipped_folder,
    )

    copy = Path(cards_dir or TEMPLATE_PATH.parent) / f"{entry.name}.md"
    published = published_results(entry)
    folder = shipped_folder(entry.name)
    if folder is None:
        mine, baselines = card_records(entry.name, records, repo_id=repo_id)
        card = render_card(
            entry_card_spec(entry, repo_id=repo_id),
            results_from_records(mine),
            published=published,
            baselines={n: results_from_records(rows) for n, rows in baselines.items()},
        )
        return {copy: card}, None
    folder = encoder_folder(folder)
    mine, baselines = card_records(entry.name, records, folder=folder, repo_id=repo_id, latest=latest)
    results = results_from_records(mine)
    baseline_results = {n: results_from_records(rows) for n, rows in baselines.items()}
    spec = card_spec(folder, name=entry.name, repo_id=repo_id)
    # The copy in model_cards/ points at the folder's figures from where it lives.
    figures = [os.path.relpath(folder / f, copy.parent.resolve()) for f in spec.figures]
    cards = {
        folder / CARD_FILE: render_card(spec, results, published=published, baselines=baseline_results),
        copy: render_card(
            replace(spec, figures=figures), results, published=published, baselines=baseline_results
        ),
    }
    return cards, ((mine, baselines) if latest else None)


def write_entry_cards(
    entry,
    records: list[dict[str, Any]],
    *,
    out: Path | None = None,
    repo_id: str | None = None,
    latest: bool = False,
    cards_dir: Path | None = None,
) -> dict[Path, str]:
    """Write :func:`entry_cards` (the ``model_cards/`` copy to ``out`` when given); returns every file written → what
    it is."""
    from zoo.publish import METADATA_FILE, pin_results

    if out is not None:  # the model_cards/ copy goes there instead, its figures linked from there
        cards_dir = Path(out).parent
    cards, pin = entry_cards(entry, records, repo_id=repo_id, latest=latest, cards_dir=cards_dir)
    if out is not None:
        cards[Path(out)] = cards.pop(Path(cards_dir) / f"{entry.name}.md")
    written: dict[Path, str] = {}
    for path, card in cards.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_atomic(card, path)
        written[path] = f"{len(card.data.eval_results or [])} model-index rows"
    if pin is not None:
        folder = next(iter(cards)).parent
        pin_results(folder, *pin)
        written[folder / METADATA_FILE] = f"{len(pin[0])} records pinned"
    return written


def _folder_card(
    model: str, records: list[dict[str, Any]], *, out: Path | None, repo_id: str | None
) -> dict[Path, str]:
    from zoo.cards import render_card, results_from_records
    from zoo.publish import CARD_FILE, card_spec, encoder_folder

    folder = encoder_folder(model)
    mine, baselines = card_records(model, records, folder=folder, repo_id=repo_id)
    card = render_card(
        card_spec(folder, repo_id=repo_id),
        results_from_records(mine),
        baselines={n: results_from_records(rows) for n, rows in baselines.items()},
    )
    path = Path(out) if out else folder / CARD_FILE
    _save_atomic(card, path)
    return {path: f"{len(card.data.eval_results or [])} model-index rows"}


def _save_atomic(card, path: Path) -> None:
    from zoo.atomic import atomic_file

    with atomic_file(path) as tmp:
        card.save(tmp)
