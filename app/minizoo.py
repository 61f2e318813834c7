"""The mini-zoo: full-recipe encoders shipped in the repository as Hub-ready folders, and the README's leaderboard.

:func:`ship` turns a finished training run into ``models/NAME/`` — the very folder ``sslzoo push`` uploads
(``model.safetensors``, timm's ``config.json``, ``sslzoo.json``, training curves, ``README.md`` model card with a
``model-index``) — evaluates it by its registry name into the repository's leaderboard, renders its card from those
records (also to ``model_cards/NAME.md``) and validates the folder (card parses, weights load through timm's Hub
path and ``zoo.load`` identically). ``zoo.registry`` registers every ``models/NAME/`` by name, so on a fresh clone
``zoo.load("simclr-fmnist")``, the app and ``sslzoo leaderboard --reproduce simclr-fmnist`` work offline.

Each card records the exact command, code commit and machine of every session that trained the encoder (from the
run's ``benchmark.json``).

:func:`update_readme_leaderboard` writes the leaderboard's table between ``<!-- leaderboard:start -->`` and
``<!-- leaderboard:end -->`` in the README, with the command that wrote it and the machines that measured it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluators.generated import README_END, README_START, readme_table, update_readme_leaderboard  # noqa: F401
from zoo.errors import SslzooError

EMBEDDINGS = {"vit": "CLS token after the final LayerNorm", "cnn": "global-average-pooled last feature map"}


def _provenance(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "benchmark.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def ship(
    run_dir: str | Path,
    name: str,
    *,
    models_dir: str | Path | None = None,
    leaderboard: str | Path | None = None,
    cards_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[Path, list[Any]]:
    """Export a finished run to ``models_dir/name`` (default ``models/``), evaluate it by name, card and validate it.

    Args:
        run_dir: A training run folder (``RUN/encoder/`` is what ships).
        name: Registry name (``simclr-fmnist``).
        models_dir: Where shipped folders live (default: the repository's ``models/``, which the registry scans).
        leaderboard: Records folder (default: the repository's ``leaderboard/``, or ``$SSLZOO_LEADERBOARD``).
        cards_dir: Where the card's copy goes (default: ``model_cards/``).
        progress: Show progress bars while evaluating.

    Returns:
        The shipped folder and its evaluation records.
    """
    from app.publish_cli import write_entry_cards
    from evaluators.evaluate import EvalConfig, protocol_params, run_protocols
    from evaluators.generated import write_and_regenerate
    from evaluators.records import read_records, repository_leaderboard_dir
    from zoo.cards import results_from_records
    from zoo.export import METADATA_FILE, write_json_atomic
    from zoo.local_paths import scrub_local_paths
    from zoo.publish import export_folder, pinned_results, validate_folder
    from zoo.registry import MODELS, SHIPPED_DIR, shipped_entries

    run_dir = Path(run_dir)
    models_dir = Path(models_dir) if models_dir else SHIPPED_DIR
    if name in MODELS and not MODELS[name].source.startswith("folder:"):
        raise SslzooError(f"{name!r} is an official registry entry; ship under another name.")
    folder = export_folder(run_dir, models_dir / name, name=name)

    # The folder's own provenance: what trained it, where and with which code (every session of a resumed run).
    meta = json.loads((folder / METADATA_FILE).read_text())
    prov = _provenance(run_dir)
    sessions = prov.get("sessions", [])
    # The sessions that trained steps (not those that found the run finished, like this --ship one).
    trained = [s for s in sessions if s.get("steps_trained", 1) > 0] or sessions
    vit = str(meta.get("arch", "")).startswith(("vit", "sslzoo_vit"))
    meta.update(
        name=name,
        licence="apache-2.0",
        embedding=EMBEDDINGS["vit" if vit else "cnn"],
        recipe=prov.get("preset"),
        command=" ; ".join(dict.fromkeys(s["command"] for s in trained if s.get("command"))) or None,
        commit=", ".join(dict.fromkeys(str(s["commit"]) for s in trained if s.get("commit")))
        or meta.get("commit"),
        machine="; ".join(dict.fromkeys(_machine_line(s["machine"]) for s in trained if s.get("machine")))
        or None,
        created=trained[-1].get("finished") if trained else None,
        sessions=sessions,
    )
    write_json_atomic(
        folder / METADATA_FILE, scrub_local_paths(meta)
    )  # published: no local paths or user names

    # Register it now (a fresh process finds it by scanning models/), then evaluate it by that name.
    for entry in shipped_entries(models_dir):
        if entry.name == name:
            MODELS[name] = entry
    dataset = str(meta.get("dataset") or "fashion-mnist")
    records = run_protocols(
        name,
        dataset,
        protocol_params(EvalConfig()),
        progress=progress,
        command=f"sslzoo eval {name} {dataset}",
    )
    leaderboard = (
        leaderboard or repository_leaderboard_dir()
    )  # shipping is what the repository's records are for
    write_and_regenerate(records, leaderboard)  # the leaderboard's markdown and chart, and the README's table

    # The card shows, for good, the records it ships with and the baselines' beside them: pinned in sslzoo.json.
    all_records = [r.to_dict() for r in read_records(leaderboard)]
    write_entry_cards(
        MODELS[name], all_records, latest=True, cards_dir=Path(cards_dir) if cards_dir else None
    )
    results = results_from_records(pinned_results(folder)["model"])
    validate_folder(folder, reference=run_dir / "encoder", expected=results)
    return folder, records


def _machine_line(machine: dict[str, Any]) -> str:
    from evaluators.generated import machine_text

    return machine_text(machine)
