"""Result records: one JSON line per (model, dataset, protocol), with everything needed to trust and re-run it.

Records live in a leaderboard folder, one ``DATASET.jsonl`` per dataset. Commands write the user's
(:func:`default_leaderboard_dir`: ``$SSLZOO_LEADERBOARD``, else ``$SSLZOO_CACHE/leaderboard``, by default
``~/.cache/sslzoo/leaderboard``) unless given ``--leaderboard DIR``; the repository's ``leaderboard/`` (committed, what
the mini-zoo's cards show) is written only when named, or by the mini-zoo's ship path
(:func:`repository_leaderboard_dir`). Commands that read show both, each record labelled with where it comes from
(:func:`read_sourced_records`: ``"repository"`` / ``"yours"``), unless ``--leaderboard DIR`` names one folder. Writing a record replaces the earlier one with the same
(model, dataset, protocol); files are rewritten atomically under a lock, so concurrent evaluations never leave a
half-written line.

>>> r = Record(model="raw-pixels", dataset="digits", protocol="knn", params={"k": 20}, metrics={"top1": 97.5})
>>> r.id == Record(model="raw-pixels", dataset="digits", protocol="knn").id
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from zoo.atomic import is_temporary, write_lines_atomic
from zoo.errors import SslzooError
from zoo.scores import RECORD_SCHEMA, metrics_in_percent, record_schema

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "sslzoo",
    "torch",
    "torchvision",
    "timm",
    "faiss-cpu",
    "numpy",
    "scikit-learn",
    "scipy",
    "datasets",
    "huggingface-hub",
)


@dataclass
class Record:
    """One evaluation result and its provenance.

    Attributes:
        model: The model string as given (re-loadable: zoo name, ``hf-hub:ORG/NAME@REV``, folder, baseline name).
        dataset: Dataset name for ``zoo.load_dataset``.
        protocol: ``knn``, ``linear`` or ``clustering``.
        params: The protocol's parameters (enough to re-run it).
        metrics: Scores, all in percent (accuracies and the clustering scores alike; see :mod:`zoo.scores`).
        details: Results that are not scores (the linear probe's chosen weight decay, …).
        model_identity: Name + revision, or weights sha256 (the feature-cache key).
        preprocessing: How images became inputs.
        splits: Images per split used, e.g. ``{"train": 60000, "test": 10000}``.
        excluded_files: Image files of a ``folder:`` dataset left out as unreadable (not in ``splits``).
        num_classes: Classes in the labels.
        feature_dim: D.
        versions: Library versions.
        commit: Code commit (``git rev-parse HEAD``) or ``"unknown"``; ``code_dirty`` when uncommitted changes.
        wall_time_s: The protocol's wall time (features excluded); ``features_time_s`` the embedding time.
        machine: Platform, CPU count, threads, GPU.
        created: UTC time.
        command: The command line that produced it, when run from the CLI.
        schema: The record format (:data:`zoo.scores.RECORD_SCHEMA`); older records are converted when read
            (:meth:`from_dict`: schema 1 stored the clustering scores as fractions).
    """

    model: str
    dataset: str
    protocol: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    model_identity: str = ""
    preprocessing: str = ""
    splits: dict[str, int] = field(default_factory=dict)
    excluded_files: int = 0
    num_classes: int = 0
    feature_dim: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    commit: str = "unknown"
    code_dirty: bool = False
    wall_time_s: float = 0.0
    features_time_s: float = 0.0
    machine: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    command: str = ""
    schema: int = RECORD_SCHEMA

    @property
    def id(self) -> str:
        """A short stable id of (model, dataset, protocol): the row to name in ``--reproduce``."""
        return hashlib.sha1(f"{self.model}\n{self.dataset}\n{self.protocol}".encode()).hexdigest()[:8]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"id": self.id, "schema": data.pop("schema"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """A record from its JSON form, on today's scale whatever schema it was written with."""
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in names}
        schema = record_schema(data)
        if isinstance(fields.get("metrics"), dict):
            fields["metrics"] = metrics_in_percent(fields["metrics"], schema)
        return cls(**{**fields, "schema": max(schema, RECORD_SCHEMA)})


# ------------------------------------------------------------------------------------------------ provenance
def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that affect the numbers."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def code_commit(root: Path = REPO_ROOT) -> tuple[str, bool]:
    """``(commit, dirty)`` of the source tree, or ``("unknown", False)`` outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "zoo",
                "evaluators",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit or "unknown", bool(status.strip())


def machine_info() -> dict[str, Any]:
    """What ran it: OS, CPU, core and thread counts, GPU."""
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------ storage
def default_leaderboard_dir() -> Path:
    """The user's leaderboard, where commands read and write records unless told otherwise.

    ``$SSLZOO_LEADERBOARD``, else ``$SSLZOO_CACHE/leaderboard`` (default ``~/.cache/sslzoo/leaderboard``): never
    the repository's tracked files, which change only when asked (:func:`repository_leaderboard_dir`).
    """
    env = os.environ.get("SSLZOO_LEADERBOARD")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("SSLZOO_CACHE")
    return (Path(cache).expanduser() if cache else Path.home() / ".cache" / "sslzoo") / "leaderboard"


def repository_leaderboard_dir() -> Path:
    """The repository's committed ``leaderboard/`` (``./leaderboard`` outside a checkout), which the mini-zoo's ship
    path writes; ``$SSLZOO_LEADERBOARD`` replaces it too (tests, a fork's own board)."""
    env = os.environ.get("SSLZOO_LEADERBOARD")
    if env:
        return Path(env).expanduser()
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / "leaderboard"
    return Path.cwd() / "leaderboard"


def dataset_file(folder: Path, dataset: str) -> Path:
    """``folder/DATASET.jsonl`` with the name made file-safe (``hf:org/name`` → ``hf_org_name``)."""
    return Path(folder) / (re.sub(r"[^A-Za-z0-9._-]+", "_", dataset) + ".jsonl")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SslzooError(
            f"cannot write records to {folder} ({exc.strerror or type(exc).__name__}); give a writable folder."
        ) from None
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_file(path: Path) -> list[Record]:
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(Record.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise SslzooError(f"{path}:{n} is not a valid record ({exc}); fix or delete that line.") from None
    return records


def _remove_unnamed_temporaries(path: Path) -> None:
    """Remove temporaries of ``path`` from before they carried a process id (``.DATASET-XXXXXXXX.jsonl``).

    Every writer of a dataset file holds the folder's lock, so under it any such file is a killed writer's.
    """
    legacy = re.compile(rf"^\.{re.escape(path.stem)}-[a-z0-9_]{{8}}\.jsonl$")
    for tmp in path.parent.glob(f".{path.stem}-*.jsonl"):
        if legacy.match(tmp.name):
            tmp.unlink(missing_ok=True)


def read_records(folder: str | Path | None = None, dataset: str | None = None) -> list[Record]:
    """All records in ``folder`` (default :func:`default_leaderboard_dir`), optionally one dataset's."""
    folder = Path(folder) if folder else default_leaderboard_dir()
    if dataset is not None:
        path = dataset_file(folder, dataset)
        return _read_file(path) if path.is_file() else []
    # Hidden files are the temporaries of a write (zoo.atomic), whole or half: never records.
    return [r for path in sorted(folder.glob("*.jsonl")) if not is_temporary(path) for r in _read_file(path)]


def write_records(records: Iterable[Record], folder: str | Path | None = None) -> list[Path]:
    """Add records, replacing earlier ones with the same id; returns the files written."""
    from zoo.local_paths import scrub_local_paths

    folder = Path(folder) if folder else default_leaderboard_dir()
    by_dataset: dict[str, list[Record]] = {}
    for record in records:
        # The command line is provenance, and leaderboards are committed and shared: no local paths or user names.
        # (``model`` and ``dataset`` stay as given: they are what ``--reproduce`` runs again.)
        record = dataclasses.replace(record, command=scrub_local_paths(record.command))
        by_dataset.setdefault(record.dataset, []).append(record)
    written = []
    with _locked(folder):
        for dataset, new in by_dataset.items():
            path = dataset_file(folder, dataset)
            _remove_unnamed_temporaries(path)
            rows = {r.id: r for r in (_read_file(path) if path.is_file() else [])}
            rows.update(
                {r.id: r for r in new}
            )  # a dict keeps first-insertion order: rows stay where they were
            write_lines_atomic(path, (json.dumps(r.to_dict(), default=str) + "\n" for r in rows.values()))
            written.append(path)
    return written


# ------------------------------------------------------------------------------------------------ reading
REPOSITORY = "repository"
YOURS = "yours"


def source_label(folder: str | Path) -> str:
    """Where a leaderboard folder's records come from: ``"repository"`` (the committed ``leaderboard/``),
    ``"yours"`` (:func:`default_leaderboard_dir`), else the folder as given."""
    folder = Path(folder).expanduser()
    resolved = folder.resolve()
    if resolved == (REPO_ROOT / "leaderboard").resolve():
        return REPOSITORY
    if resolved == default_leaderboard_dir().resolve():
        return YOURS
    return str(folder)


def reading_sources(folder: str | Path | None = None) -> dict[str, Path]:
    """``{source: folder}`` the reading commands show: ``folder`` alone when given, else the repository's committed
    records (:func:`repository_leaderboard_dir`) and the user's own (:func:`default_leaderboard_dir`), once when
    they are the same folder (``$SSLZOO_LEADERBOARD`` names both)."""
    if folder is not None:
        return {source_label(folder): Path(folder).expanduser()}
    repository, yours = repository_leaderboard_dir(), default_leaderboard_dir()
    if repository.resolve() == yours.resolve():
        return {YOURS: yours}
    return {REPOSITORY: repository, YOURS: yours}


def read_sourced_records(
    folder: str | Path | None = None, dataset: str | None = None
) -> list[tuple[str, Record]]:
    """``(source, record)`` for every record the reading commands show (see :func:`reading_sources`), the
    repository's first; a folder that does not exist has none.

    >>> read_sourced_records("/nonexistent")
    []
    """
    return [
        (source, record)
        for source, path in reading_sources(folder).items()
        if path.is_dir()
        for record in read_records(path, dataset)
    ]
