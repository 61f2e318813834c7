"""Model cards from plain data: huggingface_hub's ``ModelCard`` with a ``model-index`` of every evaluation.

A card is rendered from a :class:`CardSpec` (what the encoder is: method, architecture, preprocessing, training
config, provenance) and a list of :class:`Result` rows (each a metric of one protocol on one dataset split). Results
come either from evaluation records (plain dicts, as the evaluators write them to ``leaderboard/``; see
:func:`results_from_records`) or from a registry entry's published numbers. This module reads no files of other
packages and imports nothing from them; the CLI glue hands it the dicts.

The body comes from the Jinja template ``model_cards/template.md``; the YAML header is ``ModelCardData`` with
``EvalResult`` rows, so the Hub renders the results and ``ModelCard.load`` reads them back.

>>> spec = CardSpec(name="simclr-digits", method="simclr", architecture="sslzoo_cnn4", dim=256)
>>> rows = [Result("knn", "top1", 91.4, "digits", params={"k": 20, "temperature": 0.07})]
>>> card = render_card(spec, rows)
>>> card.data.eval_results[0].metric_type, card.data.eval_results[0].metric_value
('knn_top1', 91.4)

Every score is in percent and shown with two decimals (:mod:`zoo.scores`); a record of an older schema, which kept
the clustering scores as fractions, is converted when it becomes :class:`Result` s.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo._methods import METHOD_ALIASES, METHODS, Method, method_info  # noqa: F401  (part of this API)
from zoo.errors import SslzooError
from zoo.scores import DECIMALS, format_points, metrics_in_percent, record_schema

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "model_cards" / "template.md"

# Protocols as they appear in the model-index. Task types are the Hub's task ids (its pipeline tags): k-NN and
# the linear probe classify images, k-means groups image features. huggingface_hub groups results by
# (task type, dataset, split) and keeps one task name per group, so k-NN and linear share theirs; the metric types
# and names below keep them apart. ``label`` is the protocol in the body's tables.
PROTOCOLS: dict[str, dict[str, str]] = {
    "knn": {
        "task_type": "image-classification",
        "task_name": "Image classification with frozen features (k-NN, linear probe)",
        "label": "k-NN",
    },
    "linear": {
        "task_type": "image-classification",
        "task_name": "Image classification with frozen features (k-NN, linear probe)",
        "label": "linear probe",
    },
    "linear-paper": {
        "task_type": "image-classification",
        "task_name": "Image classification with frozen features (k-NN, linear probe)",
        "label": "linear evaluation (the paper's recipe)",
    },
    "clustering": {
        "task_type": "image-feature-extraction",
        "task_name": "k-means clustering of frozen features",
        "label": "k-means",
    },
}

# (protocol, metric) → (model-index metric type, readable name). The types are distinct across protocols, so
# k-NN top-1, linear top-1 and clustering accuracy never collapse into one "accuracy" column on the Hub.
METRICS: dict[tuple[str, str], tuple[str, str]] = {
    ("knn", "top1"): ("knn_top1", "k-NN top-1 accuracy (%)"),
    ("knn", "top5"): ("knn_top5", "k-NN top-5 accuracy (%)"),
    ("linear", "top1"): ("linear_top1", "Linear probe top-1 accuracy (%)"),
    ("linear", "top5"): ("linear_top5", "Linear probe top-5 accuracy (%)"),
    ("linear-paper", "top1"): (
        "linear_paper_top1",
        "Linear evaluation top-1 accuracy, the paper's recipe (%)",
    ),
    ("linear-paper", "top5"): (
        "linear_paper_top5",
        "Linear evaluation top-5 accuracy, the paper's recipe (%)",
    ),
    ("clustering", "nmi"): ("clustering_nmi", "k-means NMI (%)"),
    ("clustering", "ami"): ("clustering_ami", "k-means AMI (%)"),
    ("clustering", "ari"): ("clustering_ari", "k-means ARI (%)"),
    ("clustering", "acc"): ("clustering_acc", "k-means accuracy, Hungarian matching (%)"),
}
# The metric as a row of the body's tables (the protocol is its own column).
METRIC_LABELS = {
    "top1": "top-1",
    "top5": "top-5",
    "nmi": "NMI",
    "ami": "AMI",
    "ari": "ARI",
    "acc": "accuracy",
}

# Our dataset names → (Hub dataset id for the card's ``datasets`` and model-index, readable name).
DATASETS: dict[str, tuple[str, str]] = {
    "fashion-mnist": ("zalando-datasets/fashion_mnist", "Fashion-MNIST"),
    "digits": ("sklearn-digits", "scikit-learn digits (8×8)"),
    "imagenet-1k": ("ILSVRC/imagenet-1k", "ImageNet-1k"),
    "imagenet": ("ILSVRC/imagenet-1k", "ImageNet-1k"),
    "lvd-142m": ("lvd-142m", "LVD-142M"),
}

# Licence spellings in registry entries and metadata → Hub licence ids.
LICENSES: dict[str, str] = {
    "apache-2.0": "apache-2.0",
    "apache 2.0": "apache-2.0",
    "mit": "mit",
    "cc-by-nc": "cc-by-nc-4.0",
    "cc-by-nc-4.0": "cc-by-nc-4.0",
    "cc by-nc 4.0": "cc-by-nc-4.0",
    "cc-by-4.0": "cc-by-4.0",
    "bsd-3-clause": "bsd-3-clause",
}


@dataclass(frozen=True)
class Result:
    """One number of one evaluation: ``metric`` of ``protocol`` on ``dataset``/``split``, ``value`` in percent.

    ``params`` are the protocol's parameters (``k``, ``temperature``, …); ``source_name``/``source_url`` say where
    a published number comes from (None for our own records).
    """

    protocol: str
    metric: str
    value: float
    dataset: str
    split: str = "test"
    params: Mapping[str, Any] = field(default_factory=dict)
    source_name: str | None = None
    source_url: str | None = None
    model_revision: str | None = None
    commit: str | None = None
    date: str | None = None

    @property
    def metric_type(self) -> str:
        known = METRICS.get((self.protocol, self.metric))
        return known[0] if known else f"{self.protocol}_{self.metric}"

    @property
    def metric_name(self) -> str:
        known = METRICS.get((self.protocol, self.metric))
        name = known[1] if known else f"{self.protocol} {self.metric}"
        scalars = {k: v for k, v in self.params.items() if isinstance(v, str | int | float)}
        return f"{name} ({format_params(scalars)})" if scalars else name


@dataclass(frozen=True)
class CardSpec:
    """What a card describes, as plain data.

    Attributes:
        name: Model name (registry name or repo name); the model-index's ``name``.
        method: Training method (``simclr``, ``dino``, …; see :data:`METHODS`).
        architecture: timm architecture name.
        dim: Embedding dimension D of ``embed`` → (N, D).
        repo_id: Hub repo (``ORG/NAME``) the card will live in, if known; used in the loading snippet.
        license: Licence (any common spelling; mapped to a Hub id).
        preprocessing: Evaluation preprocessing (``input_size``, ``mean``, ``std``, ``crop_pct``,
            ``interpolation``).
        model_args: Keyword arguments the architecture is created with (``in_chans``, ``img_size``).
        training: The full training config, or None for weights we did not train.
        train_dataset: Dataset the encoder was trained on.
        provenance: Seed, commit, command, machine, date, weights source … shown as a table.
        paper: Paper of the weights (for official entries); defaults to the method's.
        source: Where the weights come from (Hub id, URL, local run), in words.
        load_name: What to pass to ``zoo.load`` (a registry name or ``hf-hub:ORG/NAME``).
        timm_name: What to pass to ``timm.create_model`` (default: ``hf-hub:REPO_ID`` when a repo is given).
        limitations: Extra lines for the card's limitations section.
        extra_tags: Tags beyond self-supervised / method / dataset.
        figures: PNG files beside the card (training curves …), shown in its training section.
    """

    name: str
    method: str | None = None
    architecture: str | None = None
    dim: int | None = None
    repo_id: str | None = None
    license: str | None = None
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    model_args: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] | None = None
    train_dataset: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    paper: str | None = None
    source: str | None = None
    load_name: str | None = None
    timm_name: str | None = None
    limitations: Sequence[str] = ()
    extra_tags: Sequence[str] = ()
    figures: Sequence[str] = ()


def format_params(params: Mapping[str, Any]) -> str:
    """``{"k": 20, "temperature": 0.07}`` → ``"k=20, temperature=0.07"`` (in the given order)."""
    return ", ".join(f"{k}={v}" for k, v in params.items())


def hub_license(license: str | None) -> str | None:
    """The Hub licence id for a licence spelled any common way (``"CC-BY-NC"`` → ``"cc-by-nc-4.0"``)."""
    if not license:
        return None
    return LICENSES.get(license.strip().lower(), "other")


def dataset_ids(name: str) -> tuple[str, str]:
    """(Hub dataset id, readable name) of one of our dataset names (``hf:ORG/NAME`` → ``ORG/NAME``)."""
    if name in DATASETS:
        return DATASETS[name]
    if name.startswith("hf:"):
        repo = name[3:].split("?")[0]
        return repo, repo
    return name, name


# --- evaluation records → results ------------------------------------------------------------------------------

_RECORD_SKIP_METRICS = {"predictions", "per_class", "confusion", "wall_time", "wall_s", "seconds"}


def results_from_records(records: Iterable[Mapping[str, Any]]) -> list[Result]:
    """Turn evaluation records (plain dicts from ``leaderboard/*.jsonl``) into card results.

    A record names a ``dataset`` and either one ``protocol`` with its ``params`` and ``metrics``, or several under
    ``protocols`` (``{"knn": {"params": ..., "metrics": ...}, ...}``). Metrics that are lists or per-k tables
    (``{"k=20": {"top1": ...}}``) are flattened with the ``k`` moved into the params. When the same evaluation
    (protocol, metric, dataset, split, params) was recorded more than once, the latest record wins.

    Returns:
        The results, in the order the evaluations were first recorded.
    """
    latest: dict[tuple, Result] = {}
    for record in records:
        for result in _record_results(record):
            key = (
                result.protocol,
                result.metric,
                result.dataset,
                result.split,
                json.dumps(dict(result.params), sort_keys=True, default=str),
            )
            latest[key] = result  # dicts keep first-insertion order; a later record replaces the value only
    return list(latest.values())


def _record_results(record: Mapping[str, Any]) -> Iterable[Result]:
    dataset = _first(record, "dataset", "dataset_name") or "unknown"
    if isinstance(dataset, Mapping):
        dataset = dataset.get("name", "unknown")
    split = _first(record, "split", "eval_split") or "test"
    common = {
        "dataset": str(dataset),
        "split": str(split),
        "model_revision": _first(record, "model_identity", "revision", "model_revision", "sha"),
        "commit": _first(record, "commit", "code_commit"),
        "date": _first(record, "created", "date", "timestamp", "time"),
    }
    if isinstance(record.get("protocols"), Mapping):
        blocks = [(name, block) for name, block in record["protocols"].items() if isinstance(block, Mapping)]
    else:
        blocks = [(record.get("protocol", "unknown"), record)]
    for protocol, block in blocks:
        params = dict(block.get("params") or block.get("protocol_params") or block.get("parameters") or {})
        # The split is where the result was measured, not a knob; unset (None) parameters say nothing.
        split_here = params.pop("split", None)
        params = {k: v for k, v in params.items() if v is not None}
        here = {**common, "split": str(split_here)} if split_here else common
        # One scale: a record of an older schema (clustering fractions) is read in percent.
        metrics = metrics_in_percent(block.get("metrics") or {}, record_schema(record))
        yield from _flatten_metrics(str(protocol), metrics, params, here)


def _flatten_metrics(
    protocol: str, metrics: Mapping[str, Any], params: dict[str, Any], common: dict[str, Any]
) -> Iterable[Result]:
    for metric, value in metrics.items():
        if metric in _RECORD_SKIP_METRICS or str(metric).endswith("_std"):  # spreads, not scores
            continue
        if isinstance(value, Mapping):  # per-k (or per-setting) table: {"k=20": {"top1": 91.2}, ...}
            sub = dict(params)
            key, _, setting = str(metric).partition("=")
            if setting:
                sub[key] = _number(setting)
            else:
                sub["setting"] = metric
            yield from _flatten_metrics(protocol, value, sub, common)
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        else:
            yield Result(protocol, str(metric), float(value), params=params, **common)


def _first(record: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if record.get(key) is not None:
            return record[key]
    return None


def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


# --- rendering --------------------------------------------------------------------------------------------------


def eval_results(name: str, results: Sequence[Result]) -> list:
    """``EvalResult`` rows for the model-index, one per result (the Hub groups them by task and dataset)."""
    from huggingface_hub import EvalResult

    rows = []
    for r in results:
        protocol = PROTOCOLS.get(r.protocol, {"task_type": r.protocol, "task_name": r.protocol})
        dataset_type, dataset_name = dataset_ids(r.dataset)
        rows.append(
            EvalResult(
                task_type=protocol["task_type"],
                task_name=protocol["task_name"],
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_split=r.split,
                metric_type=r.metric_type,
                metric_name=r.metric_name,
                metric_value=round(r.value, DECIMALS),
                metric_args=dict(r.params) or None,
                source_name=r.source_name,
                source_url=r.source_url,
            )
        )
    return rows


def render_card(
    spec: CardSpec,
    results: Sequence[Result] = (),
    *,
    published: Sequence[Result] = (),
    baselines: Mapping[str, Sequence[Result]] | None = None,
    template_path: str | Path | None = None,
):
    """Render the model card of ``spec`` with our ``results``, the paper's ``published`` numbers and ``baselines``.

    Our results and the published ones go into the ``model-index`` (published ones carry their
    ``source_name``/``source_url``); the body shows our results in one table, each baseline's result of the same
    evaluation (same protocol, parameters, dataset and split) in a column beside them.

    Args:
        spec: What the encoder is.
        results: Its recorded evaluations.
        published: The paper's numbers (official weights).
        baselines: Baseline name (``raw-pixels``, ``random-sslzoo_cnn4``, …) → its recorded evaluations.
        template_path: Jinja template (default: ``model_cards/template.md``).

    Returns:
        A ``huggingface_hub.ModelCard``; ``card.save(folder / "README.md")`` writes it.
    """
    from huggingface_hub import ModelCard, ModelCardData

    template = Path(template_path) if template_path else TEMPLATE_PATH
    if not template.is_file():
        raise SslzooError(
            f"model card template {template} is missing; run from a checkout of sslzoo or pass template_path."
        )
    method = method_info(spec.method)
    all_results = [*results, *published]
    datasets = []
    for name in [spec.train_dataset, *(r.dataset for r in all_results)]:
        hub_id = dataset_ids(name)[0] if name else None
        if hub_id and "/" in hub_id and hub_id not in datasets:
            datasets.append(hub_id)
    tags = ["self-supervised", "image-feature-extraction", "sslzoo", "timm"]
    for tag in (spec.method, spec.train_dataset, *spec.extra_tags):
        if tag and tag.lower() not in tags:
            tags.append(tag.lower())
    license = hub_license(spec.license)
    card_data = ModelCardData(
        model_name=spec.name,
        license=license,
        license_name=spec.license.lower().replace(" ", "-") if license == "other" and spec.license else None,
        library_name="timm",
        pipeline_tag="image-feature-extraction",
        tags=tags,
        datasets=datasets or None,
        metrics=sorted({r.metric_type for r in all_results}) or None,
        eval_results=eval_results(spec.name, all_results) or None,
    )
    hub_name = f"hf-hub:{spec.repo_id}" if spec.repo_id else f"hf-hub:ORG/{spec.name}"
    training = (
        json.dumps(dict(spec.training), indent=2, default=str, ensure_ascii=False) if spec.training else None
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template),
        spec=spec,
        method=method,
        paper=spec.paper or (f"[{method.paper}]({method.url})" if method else None),
        load_name=spec.load_name or hub_name,
        hub_name=hub_name,
        # timm's own Hub copy of official weights when there is one; else the repo this card is for.
        timm_name=spec.timm_name or hub_name,
        sslzoo_arch=bool(spec.architecture and spec.architecture.startswith("sslzoo_")),
        results_table=results_table(results, baselines or {}, model=spec.name),
        settings_rows=settings_rows(results),
        published_rows=[_published_row(r) for r in published],
        training_json=public_text(training) if training else None,
        provenance_rows=[
            (k, public_text(_cell(v))) for k, v in spec.provenance.items() if v not in (None, "")
        ],
        preprocessing_rows=[(k, _cell(v)) for k, v in spec.preprocessing.items() if v not in (None, "")],
    )


def _setting(r: Result) -> tuple:
    """What makes two results comparable: the same metric of the same evaluation."""
    return (r.dataset, r.split, r.protocol, json.dumps(dict(r.params), sort_keys=True, default=str))


def _protocol_label(r: Result, settings_of_protocol: int) -> str:
    label = PROTOCOLS.get(r.protocol, {}).get("label", r.protocol)
    if r.protocol == "knn" and {"k", "temperature"} <= set(r.params):
        return f"{label}, k={r.params['k']}, T={r.params['temperature']}"
    if settings_of_protocol > 1:  # the same protocol run several ways: say which row is which
        scalars = {k: v for k, v in r.params.items() if isinstance(v, str | int | float)}
        return f"{label} ({format_params(scalars)})"
    return label


def results_table(
    results: Sequence[Result], baselines: Mapping[str, Sequence[Result]], *, model: str = "this model"
) -> str:
    """Markdown: one row per result (in percent), then one column per baseline with its result of the same
    evaluation (``–`` when that baseline was not evaluated that way); empty when there are no results."""
    if not results:
        return ""
    by_baseline = {
        name: {(*_setting(r), r.metric): r.value for r in rows} for name, rows in baselines.items() if rows
    }
    columns = [
        name
        for name, values in by_baseline.items()
        if any((*_setting(r), r.metric) in values for r in results)
    ]
    settings: dict[tuple[str, str], set] = {}
    for r in results:
        settings.setdefault((r.dataset, r.protocol), set()).add(_setting(r))
    header = ["dataset", "protocol", "metric", f"**{model}**", *(f"`{c}`" for c in columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * (1 + len(columns))) + "|",
    ]
    for r in results:
        dataset = dataset_ids(r.dataset)[1] + (f" ({r.split})" if r.split != "test" else "")
        cells = [
            dataset,
            _protocol_label(r, len(settings[(r.dataset, r.protocol)])),
            METRIC_LABELS.get(r.metric, r.metric),
            f"**{format_points(r.value)}**",
            *(format_points(by_baseline[c].get((*_setting(r), r.metric))) for c in columns),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def settings_rows(results: Sequence[Result]) -> list[dict[str, str]]:
    """One row per evaluation setting of ``results``: dataset, protocol, all its parameters, when and with what."""
    rows: dict[tuple, dict[str, str]] = {}
    for r in results:
        rows.setdefault(
            _setting(r),
            {
                "dataset": f"{dataset_ids(r.dataset)[1]} ({r.split})",
                "protocol": PROTOCOLS.get(r.protocol, {}).get("label", r.protocol),
                "params": format_params(r.params),
                "source": _recorded_with(r),
            },
        )
    return list(rows.values())


def _published_row(r: Result) -> dict[str, str]:
    _, dataset_name = dataset_ids(r.dataset)
    source = f"[{r.source_name}]({r.source_url})" if r.source_name and r.source_url else (r.source_name or "")
    return {
        "dataset": dataset_name,
        "split": r.split,
        "protocol": PROTOCOLS.get(r.protocol, {}).get("label", r.protocol),
        "metric": METRIC_LABELS.get(r.metric, r.metric),
        "value": format_points(r.value),
        "source": source,
    }


def _recorded_with(r: Result) -> str:
    parts = []
    if r.commit and r.commit != "unknown":
        parts.append(f"commit {r.commit[:10]}")
    if r.date:
        parts.append(str(r.date)[:10])
    return ", ".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(dict(value), default=str)
    return str(value).replace("|", "\\|").replace("\n", " ")


_HOME = re.compile(r"(?<![\w.~])(?:/root|/home/[^/\s\"']+|/Users/[^/\s\"']+)(?=[/\s\"']|$)")


def public_text(text: str) -> str:
    """``text`` with home folders written ``~`` (``/home/ann/runs`` → ``~/runs``): a card names no local user."""
    return _HOME.sub("~", text)


def parse_card(text: str, *, expected: Sequence[Result] = ()) -> Any:
    """Parse a card with huggingface_hub and check its model-index holds ``expected``; raise if not.

    Returns:
        The parsed ``ModelCard``.
    """
    from huggingface_hub import ModelCard

    try:
        card = ModelCard(text, ignore_metadata_errors=False)
    except Exception as exc:  # huggingface_hub raises ValueError / yaml errors for malformed headers
        raise SslzooError(f"the model card does not parse: {exc}") from exc
    found = {
        _index_key(r.task_type, r.metric_type, r.dataset_type, r.dataset_split, r.metric_args): r.metric_value
        for r in card.data.eval_results or []
    }
    for r in expected:
        task_type = PROTOCOLS.get(r.protocol, {"task_type": r.protocol})["task_type"]
        key = _index_key(task_type, r.metric_type, dataset_ids(r.dataset)[0], r.split, dict(r.params) or None)
        if key not in found or not math.isclose(float(found[key]), round(r.value, DECIMALS), abs_tol=1e-9):
            raise SslzooError(
                f"the model card's model-index lacks {r.metric_name} on {r.dataset}/{r.split} = {r.value}; "
                "regenerate it with `sslzoo card`."
            )
    return card


def _index_key(task_type, metric_type, dataset_type, split, args) -> tuple:
    return (task_type, metric_type, dataset_type, split, json.dumps(args or {}, sort_keys=True, default=str))
