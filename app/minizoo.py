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
import re
from pathlib import Path
from typing import Any

from zoo.errors import SslzooError

README_START = "<!-- leaderboard:start -->"
README_END = "<!-- leaderboard:end -->"
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
        leaderboard: Records folder (default: the repository's ``leaderboard/``).
        cards_dir: Where the card's copy goes (default: ``model_cards/``).
        progress: Show progress bars while evaluating.

    Returns:
        The shipped folder and its evaluation records.
    """
    from app.publish_cli import write_entry_cards
    from evaluators.evaluate import EvalConfig, protocol_params, run_protocols
    from evaluators.records import read_records, write_records
    from zoo.cards import results_from_records
    from zoo.export import METADATA_FILE, write_json_atomic
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
    write_json_atomic(folder / METADATA_FILE, meta)

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
    write_records(records, leaderboard)

    # The card shows, for good, the records it ships with and the baselines' beside them: pinned in sslzoo.json.
    all_records = [r.to_dict() for r in read_records(leaderboard)]
    write_entry_cards(
        MODELS[name], all_records, latest=True, cards_dir=Path(cards_dir) if cards_dir else None
    )
    results = results_from_records(pinned_results(folder)["model"])
    validate_folder(folder, reference=run_dir / "encoder", expected=results)
    return folder, records


# ------------------------------------------------------------------------------------------------ README
def _machine_line(machine: dict[str, Any]) -> str:
    from app.benchmark import machine_text

    return machine_text(machine)


def readme_table(records: list[Any], dataset: str, leaderboard_label: str) -> str:
    """Markdown for the README: the dataset's models (best k-NN first) with their kind, and where they came from."""
    from evaluators.baselines import BASELINES, RANDOM_PREFIX
    from zoo.registry import MODELS

    by_model: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.dataset == dataset:
            by_model.setdefault(r.model, {})[r.protocol] = r
    if not by_model:
        return f"No records for {dataset} yet: `sslzoo eval raw-pixels {dataset}` makes the first."

    def kind(model: str) -> str:
        if model in BASELINES or model.startswith(RANDOM_PREFIX):
            return "baseline"
        entry = MODELS.get(model)
        if entry is not None and entry.source.startswith("folder:"):
            return f"mini-zoo ({entry.method}, `{entry.arch}`)"
        return "other"

    def knn(item: tuple[str, dict[str, Any]]) -> float:
        r = item[1].get("knn")
        return -(r.metrics.get("top1", -1.0) if r else -1.0)

    lines = [
        "| model | kind | k-NN top-1 | linear top-1 | NMI | cluster acc |",
        "|---|---|---:|---:|---:|---:|",
    ]
    machines, commits = {}, set()
    for model, protocols in sorted(by_model.items(), key=knn):

        def metric(protocol: str, name: str, scale: float = 1.0, protocols=protocols) -> str:
            r = protocols.get(protocol)
            value = r.metrics.get(name) if r else None
            return "–" if value is None else f"{value * scale:.1f}"

        lines.append(
            f"| `{model}` | {kind(model)} | {metric('knn', 'top1')} | {metric('linear', 'top1')} | "
            f"{metric('clustering', 'nmi', 100)} | {metric('clustering', 'acc', 100)} |"
        )
        for r in protocols.values():
            machines[_machine_line(r.machine)] = True
            commits.add(r.commit[:10])
    if not any(kind(model).startswith("mini-zoo") for model in by_model):
        lines += [
            "",
            "No mini-zoo encoder is shipped yet (`sslzoo benchmark --preset full --ship` adds its rows).",
        ]
    any_record = next(iter(next(iter(by_model.values())).values()))
    sizes = ", ".join(f"{n:,} {s}" for s, n in any_record.splits.items())
    lines += [
        "",
        f"{dataset}: {sizes} images. k-NN: DINO's weighted vote (k=20, T=0.07); linear: logistic regression, λ "
        "chosen on a split of train; clustering: k-means on the test split (NMI and Hungarian accuracy in %).",
        f"Generated by `sslzoo readme-leaderboard` from `{leaderboard_label}`; measured on "
        f"{'; '.join(machines)} (code commits {', '.join(sorted(commits))}).",
    ]
    return "\n".join(lines)


def update_readme_leaderboard(
    readme: str | Path | None = None, *, dataset: str = "fashion-mnist", leaderboard: str | Path | None = None
) -> tuple[Path, int]:
    """Replace the text between the README's leaderboard markers with :func:`readme_table`; returns (path, models)."""
    from evaluators.records import REPO_ROOT, dataset_file, default_leaderboard_dir, read_records

    path = Path(readme) if readme else REPO_ROOT / "README.md"
    folder = Path(leaderboard) if leaderboard else default_leaderboard_dir()
    text = path.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise SslzooError(
            f"{path} has no {README_START} … {README_END} markers; add them where the table goes."
        )
    records = read_records(folder, dataset)
    try:
        label = str(dataset_file(folder, dataset).resolve().relative_to(REPO_ROOT))
    except ValueError:
        label = str(dataset_file(folder, dataset))
    table = readme_table(records, dataset, label)
    text = pattern.sub(lambda _: f"{README_START}\n{table}\n{README_END}", text, count=1)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path, len({r.model for r in records})
