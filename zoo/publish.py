"""Publishing: a Hub-ready folder (weights, timm config, our metadata, model card), validated, then uploaded.

The folder is the one ``timm.create_model("hf-hub:ORG/NAME", pretrained=True, num_classes=0)`` and
``zoo.load("hf-hub:ORG/NAME")`` read back::

    model.safetensors   weights (timm's layout, head removed)
    config.json         timm: architecture, num_features, model_args, pretrained_cfg (mean/std/input size/crop)
    sslzoo.json         ours: method, full training config, dataset, seed, code commit
    README.md           the model card (zoo.cards), model-index with every recorded evaluation

This module takes plain data (evaluation results as :class:`zoo.cards.Result`); reading the leaderboard's records
is the evaluators' business, and the ``sslzoo push`` / ``sslzoo card`` glue in ``app/publish_cli.py`` joins them.

Tokens: the upload uses huggingface_hub's own lookup (``HF_TOKEN`` or the login saved by ``hf auth login``); this
module never reads, prints or writes the token itself, and error messages are scrubbed of it.

>>> folder = export_folder("runs/simclr-digits", "hub/simclr-digits", repo_id="me/simclr-digits")  # doctest: +SKIP
>>> report = validate_folder(folder)  # doctest: +SKIP
>>> push(folder, "me/simclr-digits", dry_run=True).files  # doctest: +SKIP
['README.md', 'config.json', 'model.safetensors', 'sslzoo.json']
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.atomic import atomic_folder, is_temporary
from zoo.cards import CardSpec, Result, parse_card, render_card
from zoo.errors import SslzooError
from zoo.export import METADATA_FILE, check_destination, check_finite
from zoo.local_paths import scrub_local_paths

# torch loads for validation only: `sslzoo models` reads the shipped folders' records from here.
if TYPE_CHECKING:
    import torch

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
# Besides the required files, these are uploaded when present (plots the card links to).
EXTRA_PATTERNS = (METADATA_FILE, "*.png")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
PROBE_SEED = 0
PROBE_BATCH = 4


# ---------------------------------------------------------------------------------------------- reading a folder


def encoder_folder(path: str | Path) -> Path:
    """The folder holding an exported encoder: ``path`` itself, or ``path/encoder`` for a training run.

    Raises:
        SslzooError: neither holds ``config.json`` (timm's, with an ``architecture``) and ``model.safetensors``.
    """
    path = Path(path).expanduser()
    for candidate in (path, path / "encoder"):
        config = candidate / CONFIG_FILE
        if config.is_file() and (candidate / WEIGHTS_FILE).is_file() and "architecture" in _read_json(config):
            return candidate
    raise SslzooError(
        f"{path} holds no exported encoder (config.json + model.safetensors from zoo.save_encoder, or a run's "
        "RUN/encoder/); train or export one first."
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SslzooError(f"cannot read {path}: {exc}.") from None
    return data if isinstance(data, dict) else {}


def _run_config(folder: Path) -> dict[str, Any] | None:
    """The training config saved by the trainer in the run folder around ``RUN/encoder/``, if any."""
    if folder.name != "encoder":
        return None
    for name in ("config.json", "train_config.json", "run.json"):
        path = folder.parent / name
        if path.is_file():
            data = _read_json(path)
            return data.get("config", data) if isinstance(data.get("config"), dict) else data
    return None


def card_spec(
    folder: str | Path, *, name: str | None = None, repo_id: str | None = None, load_name: str | None = None
) -> CardSpec:
    """A :class:`~zoo.cards.CardSpec` from an encoder folder's ``config.json`` and ``sslzoo.json`` (and the run's
    training config when the folder is ``RUN/encoder``).

    ``load_name`` is what the card tells users to pass to ``zoo.load`` (default: ``hf-hub:REPO`` when a repo is
    given, else the registry name of a shipped ``models/NAME`` folder, else ``hf-hub:ORG/NAME`` for the reader to
    fill in): never a local path, so every route to the same folder writes the same card.
    """
    folder = Path(folder)
    config = _read_json(folder / CONFIG_FILE)
    meta = _read_json(folder / METADATA_FILE) if (folder / METADATA_FILE).is_file() else {}
    training = (
        meta.get("config") or meta.get("training_config") or meta.get("train_config") or _run_config(folder)
    )
    # Cards are published: local paths in the config (its ``out``) and in commands are rewritten (zoo.local_paths).
    training = scrub_local_paths(training) if isinstance(training, dict) else None
    pcfg = config.get("pretrained_cfg") or {}
    run_name = folder.parent.name if folder.name == "encoder" else folder.name
    name = name or (repo_id.split("/")[-1] if repo_id else None) or str(meta.get("name") or run_name)
    dataset = meta.get("dataset") or (training or {}).get("dataset")
    provenance = {
        "dataset": dataset,
        "seed": meta.get("seed", (training or {}).get("seed")),
        "code commit": meta.get("commit"),
        "command": scrub_local_paths(meta.get("command")),
        "machine": meta.get("machine"),
        "trained": meta.get("created") or meta.get("date"),
        "weights source": meta.get("source"),
    }
    return CardSpec(
        name=name,
        method=meta.get("method") or (training or {}).get("method"),
        architecture=config.get("architecture"),
        dim=config.get("num_features"),
        repo_id=repo_id,
        license=meta.get("licence") or meta.get("license") or pcfg.get("license") or "apache-2.0",
        preprocessing={
            k: pcfg.get(k) for k in ("input_size", "crop_pct", "crop_mode", "interpolation", "mean", "std")
        },
        model_args=dict(config.get("model_args") or {}),
        training=training,
        train_dataset=str(dataset) if dataset else None,
        provenance=provenance,
        paper=meta.get("paper") or None,
        source=meta.get("source") or None,
        limitations=training_caveats(training),
        load_name=load_name or (f"hf-hub:{repo_id}" if repo_id else _shipped_name(folder)),
        figures=[p.name for p in _figures(folder)],
    )


def training_caveats(training: dict[str, Any] | None) -> list[str]:
    """What a training config says that its run did not do: lines for the card's limitations.

    Before split-BN, MoCo's ``shuffle_bn: true`` (a boolean) acted only across DDP processes: a one-process run,
    as every mini-zoo one, had no shuffle-BN and no substitute, so its keys' BatchNorm statistics were shared with
    the queries' (MoCo §3.3). Runs since record the mode they used (``split-bn`` in one process).
    """
    method = (training or {}).get("method") or {}
    shared = (training or {}).get("train") or {}
    if (
        isinstance(method, dict)
        and method.get("shuffle_bn") is True
        and shared.get("method", "moco") == "moco"
    ):
        return [
            "`shuffle_bn: true` in the training config had no effect: this encoder was trained in one process, "
            "before sslzoo had a one-process substitute (split-BN), so MoCo's keys shared BatchNorm statistics "
            "with the queries (MoCo §3.3). Encoders trained since use split-BN in one process."
        ]
    return []


def _shipped_name(folder: Path) -> str | None:
    """The registry name whose weights are ``folder`` (a ``folder:`` entry such as ``models/NAME``), else None."""
    from zoo.registry import MODELS

    here = folder.resolve()
    for name in MODELS:
        root = shipped_folder(name)
        if root is not None and here in (root.resolve(), (root / "encoder").resolve()):
            return name
    return None


def shipped_folder(name: str) -> Path | None:
    """The folder of a registry name whose weights ship with the repository (``models/NAME``), else None."""
    from zoo.registry import MODELS

    entry = MODELS.get(name)
    if entry is None or not entry.source.startswith("folder:"):
        return None
    from zoo.registry import entry_folder

    return entry_folder(entry)


# The evaluations a shipped folder's card shows, pinned in its sslzoo.json when it ships: the model's records and
# the baselines' records beside them ({"model": [record, ...], "baselines": {name: [record, ...]}}).
SHIPPED_RESULTS = "shipped_results"
# What of a record is pinned: enough to show, trace (id, commit, date) and compare it; not the machine or versions.
PINNED_KEYS = (
    "id",
    "schema",
    "model",
    "dataset",
    "protocol",
    "params",
    "metrics",
    "model_identity",
    "splits",
    "commit",
    "created",
)


def pinned_results(folder: str | Path) -> dict[str, Any] | None:
    """The records a shipped folder's card was made from (see :data:`SHIPPED_RESULTS`), or None."""
    path = Path(folder) / METADATA_FILE
    pinned = _read_json(path).get(SHIPPED_RESULTS) if path.is_file() else None
    return pinned if isinstance(pinned, dict) else None


def pin_results(
    folder: str | Path, model: Sequence[dict[str, Any]], baselines: dict[str, Sequence[dict[str, Any]]]
) -> None:
    """Store the records a shipped folder's card shows in its ``sslzoo.json`` (see :data:`SHIPPED_RESULTS`)."""
    from zoo.export import write_json_atomic

    def compact(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: r[k] for k in PINNED_KEYS if k in r} for r in records]

    path = Path(folder) / METADATA_FILE
    meta = _read_json(path) if path.is_file() else {}
    meta[SHIPPED_RESULTS] = {
        "model": compact(model),
        "baselines": {name: compact(rows) for name, rows in baselines.items() if rows},
    }
    write_json_atomic(path, meta)


# ---------------------------------------------------------------------------------------------- registry entries

_PUBLISHED_KEYS = {  # ModelEntry.published keys → (protocol, metric, dataset, split)
    "imagenet_knn": ("knn", "top1", "imagenet-1k", "validation"),
    "imagenet_linear": ("linear", "top1", "imagenet-1k", "validation"),
}


def published_results(entry: Any) -> list[Result]:
    """The paper's numbers of a registry entry (:class:`zoo.registry.ModelEntry`) as card results with sources."""
    out = []
    repo = re.search(r"github\.com/([^/#]+/[^/#]+)", entry.published_source or "")
    source_name = f"{repo.group(1)} (official repository)" if repo else "published"
    for key, value in entry.published.items():
        protocol, metric, dataset, split = _PUBLISHED_KEYS.get(
            key, (key, "top1", "imagenet-1k", "validation")
        )
        out.append(
            Result(
                protocol,
                metric,
                float(value),
                dataset,
                split,
                source_name=source_name,
                source_url=entry.published_source or None,
            )
        )
    return out


def entry_card_spec(entry: Any, *, repo_id: str | None = None) -> CardSpec:
    """A :class:`~zoo.cards.CardSpec` for a registry entry (official weights we did not train)."""
    pre = entry.preprocessing.as_pretrained_cfg() if entry.preprocessing is not None else {}
    url = re.search(r"arXiv:(\d{4}\.\d{4,5})", entry.paper or "")
    paper = f"[{entry.paper}](https://arxiv.org/abs/{url.group(1)})" if url else (entry.paper or None)
    return CardSpec(
        name=entry.name,
        method=entry.method,
        architecture=entry.arch,
        dim=entry.dim,
        repo_id=repo_id,
        license=entry.licence,
        preprocessing=pre,
        model_args=dict(entry.model_args),
        train_dataset=None,
        provenance={
            "weights": entry.source,
            "key mapping": entry.key_mapping.describe() if hasattr(entry.key_mapping, "describe") else None,
            "embedding": entry.embedding,
            "published numbers": entry.published_source,
        },
        paper=paper,
        source=(
            f"the authors' weights as timm publishes them, `{entry.source}`"
            if entry.source.startswith("hf-hub:")
            else f"the authors' release, `{entry.source}`, mapped to timm's layout"
        ),
        timm_name=entry.source if entry.source.startswith("hf-hub:") and not entry.model_args else None,
        load_name=f"hf-hub:{repo_id}" if repo_id else entry.name,
        extra_tags=("imagenet-1k",) if entry.method != "dinov2" else ("lvd-142m",),
        limitations=tuple(
            f"Licence of the weights: {entry.licence} (non-commercial); check it before any commercial use."
            for _ in range(1)
            if "-nc" in entry.licence.lower()
        ),
    )


# ---------------------------------------------------------------------------------------------- exporting


def export_folder(
    source: str | Path,
    out: str | Path,
    *,
    repo_id: str | None = None,
    name: str | None = None,
    results: Sequence[Result] = (),
    baselines: dict[str, Sequence[Result]] | None = None,
) -> Path:
    """Write a Hub-ready folder for a training run, an exported encoder folder, or any ``zoo.load``-able model.

    Args:
        source: A run folder (``RUN/encoder/`` is used), a :func:`zoo.save_encoder` folder, a registry name or
            ``hf-hub:ORG/NAME``.
        out: Destination folder: new, empty or an earlier export, replaced atomically; anything else (a
            folder of yours, the source itself) is refused in one line, and nothing is written.
        repo_id: The Hub repo it is meant for (``ORG/NAME``); names the card and its loading snippet.
        name: Model name in the card (default: the repo's name, else the run's).
        results: Recorded evaluations for the card's model-index.
        baselines: Baseline name → its recorded evaluations, shown beside ``results`` in the card.

    Returns:
        ``out``.
    """
    local = Path(str(source)).expanduser()
    if str(source).startswith("hf-hub:"):  # a Hub repo in our layout: its cached snapshot is the folder
        local = _hub_snapshot(str(source))
    elif not local.exists() and shipped_folder(str(source)) is not None:  # a mini-zoo name: its own folder
        local = shipped_folder(str(source))
    folder = encoder_folder(local) if local.exists() else None
    out = check_destination(out, source=local if folder is not None else None)
    if folder is not None:
        check_destination(out, source=folder)  # a run's encoder/ is the source too
        from safetensors.torch import load_file

        check_finite(load_file(folder / WEIGHTS_FILE), f"{folder / WEIGHTS_FILE}")
    with atomic_folder(out) as tmp:
        published: list[Result] = []
        if folder is not None:
            for path in folder.iterdir():
                if path.is_file() and (path.name in (CONFIG_FILE, WEIGHTS_FILE) or _is_extra(path.name)):
                    shutil.copy2(path, tmp / path.name)
            if folder.name == "encoder":  # a run: its plots (training curves) travel with the encoder
                for png in _figures(folder.parent):
                    shutil.copy2(png, tmp / png.name)
            spec = card_spec(folder, name=name, repo_id=repo_id)
            spec = replace(spec, figures=[p.name for p in _figures(tmp)])
            _write_metadata(tmp, spec)
        else:
            spec, published = _export_zoo_model(str(source), tmp, repo_id=repo_id, name=name)
        card = render_card(spec, results, published=published, baselines=baselines)
        card.save(tmp / CARD_FILE)
    return out


def _hub_snapshot(source: str) -> Path:
    """Fetch (or find in the HF cache) a Hub repo's config, weights and metadata; returns the snapshot folder."""
    from zoo import _hub

    repo_id, revision = _hub.parse_hub_id(source)
    config = _hub.hub_file(repo_id, CONFIG_FILE, revision)
    _hub.hub_file(repo_id, WEIGHTS_FILE, revision)
    with contextlib.suppress(SslzooError):  # a plain timm repo has no sslzoo.json; the card then says less
        _hub.hub_file(repo_id, METADATA_FILE, revision)
    return config.parent


def _is_extra(filename: str) -> bool:
    from fnmatch import fnmatch

    # Hidden names are a writer's temporaries (zoo.atomic), never part of an export.
    return not is_temporary(filename) and any(fnmatch(filename, pattern) for pattern in EXTRA_PATTERNS)


def _figures(folder: Path) -> list[Path]:
    """The PNG plots in ``folder``, sorted, without a killed writer's temporaries."""
    return sorted(p for p in folder.glob("*.png") if not is_temporary(p))


def _write_metadata(folder: Path, spec: CardSpec) -> None:
    """Keep the encoder's sslzoo.json, filling in the training config when only the run folder had it."""
    from zoo.export import write_json_atomic

    path = folder / METADATA_FILE
    meta = _read_json(path) if path.is_file() else {}
    meta.setdefault("name", spec.name)
    if spec.method:
        meta.setdefault("method", spec.method)
    if spec.training and not any(k in meta for k in ("config", "training_config", "train_config")):
        meta["config"] = dict(spec.training)
    write_json_atomic(path, scrub_local_paths(meta))  # published: no local paths or user names


def _export_zoo_model(
    source: str, folder: Path, *, repo_id: str | None, name: str | None
) -> tuple[CardSpec, list[Result]]:
    """Load a registry entry or Hub model with ``zoo.load`` and save it in timm's layout."""
    from zoo._loader import load
    from zoo.export import save_encoder

    encoder = load(source, device="cpu")
    entry = encoder.entry
    pcfg = entry.preprocessing.as_pretrained_cfg() if entry.preprocessing is not None else None
    # timm's save_for_hf reads the architecture from pretrained_cfg; the tag is that of timm's default weights for
    # the architecture (e.g. "augreg_in21k_ft_in1k"), which these are not.
    cfg = {
        k: v for k, v in encoder.model.pretrained_cfg.items() if k not in ("tag", "hf_hub_id", "url", "file")
    }
    encoder.model.pretrained_cfg = {**cfg, "architecture": entry.arch}
    meta = {
        "name": name or entry.name,
        "method": entry.method,
        "licence": entry.licence,
        "paper": entry.paper,
        "source": entry.source,
        "published": dict(entry.published),
        "published_source": entry.published_source,
        "embedding": entry.embedding,
    }
    save_encoder(
        encoder.model, folder / "_enc", model_args=dict(entry.model_args), pretrained_cfg=pcfg, metadata=meta
    )
    for path in (folder / "_enc").iterdir():
        os.replace(path, folder / path.name)
    (folder / "_enc").rmdir()
    spec = entry_card_spec(entry, repo_id=repo_id)
    if name:
        spec = replace(spec, name=name)
    return spec, published_results(entry)


# ---------------------------------------------------------------------------------------------- validating


@dataclass
class Validation:
    """What :func:`validate_folder` checked.

    Attributes:
        files: The files that would be uploaded, relative names, sorted.
        bytes: Their total size.
        results: Rows in the card's model-index.
        max_abs_diff: Largest embedding difference between the two loaders (and the reference, if any).
        checks: One line per check passed.
    """

    files: list[str]
    bytes: int
    results: int
    max_abs_diff: float
    checks: list[str] = field(default_factory=list)


def upload_files(folder: str | Path) -> list[str]:
    """The files of a Hub-ready folder that are uploaded (the required ones and the extras), sorted."""
    folder = Path(folder)
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and (p.name in REQUIRED_FILES or _is_extra(p.name))
    )


def probe_batch(config: dict[str, Any]) -> torch.Tensor:
    """A fixed random ``(4, C, H, W)`` batch at the folder's input size (seeded, so every loader sees the same)."""
    import torch

    size = (config.get("pretrained_cfg") or {}).get("input_size") or [3, 224, 224]
    generator = torch.Generator().manual_seed(PROBE_SEED)
    return torch.randn(PROBE_BATCH, *[int(s) for s in size], generator=generator)


def _timm_embed(folder: Path, x: torch.Tensor) -> torch.Tensor:
    """Embed ``x`` exactly as a Hub user would get the model: timm reads config.json and the safetensors.

    ``local-dir:`` runs the same config parsing and weight loading as ``hf-hub:`` without the download.
    """
    import timm
    import torch

    import zoo.architectures  # noqa: F401  (registers the sslzoo_* architectures)

    try:
        model = timm.create_model(f"local-dir:{folder}", pretrained=True, num_classes=0).eval()
    except (RuntimeError, KeyError, ValueError, TypeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SslzooError(f"timm cannot load {folder} the way the Hub will serve it: {first[:300]}") from None
    with torch.inference_mode():
        return model(x).float()


def validate_folder(
    folder: str | Path,
    *,
    reference: str | Path | None = None,
    expected: Sequence[Result] = (),
) -> Validation:
    """Check a Hub-ready folder before it is uploaded; raise :class:`SslzooError` on the first problem.

    Checks: the required files exist; the card parses with huggingface_hub and its model-index holds ``expected``;
    the weights load strictly through timm's Hub path (``local-dir:``, the same parsing as ``hf-hub:``) and through
    ``zoo.load``; both give identical embeddings of a fixed probe batch, and so does ``reference`` (the encoder the
    folder was exported from) when given.
    """
    import torch

    from zoo._loader import load

    folder = Path(folder)
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        raise SslzooError(
            f"{folder} is not Hub-ready: {', '.join(missing)} missing; write it with `sslzoo export` first."
        )
    checks = []
    card = parse_card((folder / CARD_FILE).read_text(), expected=expected)
    n_results = len(card.data.eval_results or [])
    checks.append(f"model card parses (huggingface_hub), model-index with {n_results} results")

    config = _read_json(folder / CONFIG_FILE)
    x = probe_batch(config)
    via_timm = _timm_embed(folder, x)
    encoder = load(folder, device="cpu")
    with torch.inference_mode():
        via_zoo = encoder(x.to(encoder.dtype)).float()
    diffs = {"zoo.load": _max_diff(via_timm, via_zoo, "zoo.load", folder)}
    checks.append(
        f"weights load strictly in timm (hf-hub layout) and zoo.load: {tuple(via_timm.shape)} embeddings"
    )
    if reference is not None:
        ref = load(encoder_folder(reference), device="cpu")
        with torch.inference_mode():
            via_ref = ref(x.to(ref.dtype)).float()
        diffs["reference"] = _max_diff(via_timm, via_ref, f"the original encoder ({reference})", folder)
    worst = max(diffs.values())
    checks.append(
        "embeddings identical: " + ", ".join(f"timm vs {k} max |Δ| = {v:.1e}" for k, v in diffs.items())
    )
    files = upload_files(folder)
    size = sum((folder / f).stat().st_size for f in files)
    return Validation(files=files, bytes=size, results=n_results, max_abs_diff=worst, checks=checks)


def _max_diff(a: torch.Tensor, b: torch.Tensor, what: str, folder: Path) -> float:
    if a.shape != b.shape:
        raise SslzooError(
            f"{folder}: timm gives {tuple(a.shape)} embeddings but {what} gives {tuple(b.shape)}."
        )
    diff = float((a - b).abs().max())
    # Same weights, same ops, same CPU: anything beyond float32 rounding means a different network was loaded.
    if not diff <= 1e-5 * max(1.0, float(a.abs().max())):
        raise SslzooError(
            f"{folder}: embeddings through timm and {what} differ (max |Δ| = {diff:.3g}); the weights or config "
            "do not round-trip, so it is not safe to upload. Export it again."
        )
    return diff


# ---------------------------------------------------------------------------------------------- pushing


@dataclass
class PushResult:
    """What :func:`push` did (or, with ``dry_run``, would do)."""

    repo_id: str
    url: str
    files: list[str]
    bytes: int
    private: bool
    dry_run: bool
    validation: Validation
    commit_url: str | None = None


def check_repo_id(repo_id: str) -> str:
    """``ORG/NAME`` as the Hub spells repo ids; raise a one-line error otherwise."""
    if not REPO_ID.match(repo_id or "") or ".." in repo_id or len(repo_id) > 96:
        raise SslzooError(
            f"{repo_id!r} is not a Hub repo id; write it as ORG/NAME, e.g. --repo my-org/simclr-fmnist."
        )
    return repo_id


def hub_endpoint() -> str:
    """The Hub endpoint huggingface_hub will talk to (``HF_ENDPOINT``, else https://huggingface.co)."""
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def push(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    reference: str | Path | None = None,
    expected: Sequence[Result] = (),
    commit_message: str | None = None,
) -> PushResult:
    """Validate a Hub-ready folder, then upload it with ``HfApi.upload_folder`` (unless ``dry_run``).

    The token is whatever huggingface_hub finds (``HF_TOKEN``, or the login saved by ``hf auth login``); it is
    never passed around, printed or written here.

    Raises:
        SslzooError: invalid folder or repo id, offline (``HF_HUB_OFFLINE=1``), not logged in, or the Hub refused.
    """
    from zoo._hub import offline

    check_repo_id(repo_id)
    validation = validate_folder(folder, reference=reference, expected=expected)
    endpoint = hub_endpoint().rstrip("/")
    result = PushResult(
        repo_id=repo_id,
        url=f"{endpoint}/{repo_id}",
        files=validation.files,
        bytes=validation.bytes,
        private=private,
        dry_run=dry_run,
        validation=validation,
    )
    if dry_run:
        return result
    if offline():
        raise SslzooError(
            f"HF_HUB_OFFLINE=1 is set, so nothing can be uploaded to {endpoint}; unset it to push {repo_id}, "
            "or add --dry-run to see what would be sent."
        )
    from huggingface_hub import HfApi, get_token

    if not get_token():
        raise SslzooError(
            f"not logged in to {endpoint}: run `hf auth login` or set HF_TOKEN to a token with write access, "
            "then push again."
        )
    api = HfApi(endpoint=endpoint)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            allow_patterns=validation.files,
            commit_message=commit_message or f"Upload {repo_id} with sslzoo",
        )
    except Exception as exc:  # network, HTTP and Hub errors all end as one line
        raise SslzooError(
            f"upload of {repo_id} to {endpoint} failed: {_scrub(_first_line(exc))}; check the network, HF_ENDPOINT "
            "and that your token may write to that repo."
        ) from None
    result.commit_url = getattr(info, "commit_url", None) or str(info)
    return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:300]}"


def _scrub(text: str) -> str:
    """Remove any token from a message: the one huggingface_hub would use, and anything shaped like one."""
    from huggingface_hub import get_token

    token = get_token()
    if token:
        text = text.replace(token, "***")
    return re.sub(r"hf_[A-Za-z0-9]{6,}", "hf_***", text)
