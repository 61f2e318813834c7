"""Run the evaluation protocols on one model and one dataset and turn the results into :class:`Record` s.

``EvalConfig`` is the one source of truth for the options of ``sslzoo eval``; :func:`protocol_params` turns it into
the per-protocol parameters stored in each record, and :func:`run_protocols` takes those parameters back, which is
how ``sslzoo leaderboard --reproduce`` re-runs a row exactly as it was run.

>>> records = evaluate("raw-pixels", "digits", EvalConfig(protocols="knn"), progress=False)
>>> records[0].protocol, records[0].metrics["top1"] > 90
('knn', True)
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from evaluators.clustering import KMEANS_IMPLEMENTATION, cluster_metrics
from evaluators.config import (  # noqa: F401  (EvalConfig and the protocols' names live there: no torch)
    FEATURE_PROTOCOLS,
    IMAGE_PROTOCOLS,
    PROTOCOL_DESCRIPTIONS,
    PROTOCOLS,
    EvalConfig,
)
from evaluators.features import Features, extract_features, preprocessing_description
from evaluators.knn import knn_classify
from evaluators.linear import linear_probe
from evaluators.records import Record, code_commit, library_versions, machine_info, now_utc
from zoo.datasets import unreadable_files
from zoo.encoder import AMP_DTYPES
from zoo.errors import SslzooError
from zoo.export import check_finite
from zoo.image_errors import naming_unreadable_images
from zoo.scores import STORED_DECIMALS


def paper_linear_params(config: EvalConfig, model: str) -> dict[str, Any]:
    """``linear-paper``'s parameters: the recipe and features named in ``config`` or the registry entry's."""
    from zoo.registry import LINEAR_RECIPES, MODELS

    entry = MODELS.get(model)
    recipe = config.linear_recipe or (entry.linear_recipe if entry else None)
    if recipe is None:
        raise SslzooError(
            f"{model} has no paper linear recipe in the registry; pass --linear-recipe "
            f"({', '.join(LINEAR_RECIPES)})."
        )
    if recipe not in LINEAR_RECIPES:
        raise SslzooError(f"unknown linear recipe {recipe!r}; choose from {', '.join(LINEAR_RECIPES)}.")
    return {
        "recipe": recipe,
        "features": config.probe_features or (entry.linear_features if entry else "default"),
        "epochs": config.paper_epochs,
        "batch_size": config.paper_batch_size,
        "steps_per_epoch": config.paper_steps_per_epoch,
        "seed": config.seed,
    }


def protocol_params(config: EvalConfig, model: str = "") -> dict[str, dict[str, Any]]:
    """The parameters of each requested protocol, as stored in its record."""
    names = config.protocol_names()
    every: dict[str, Any] = {
        "knn": {"k": config.k, "temperature": config.temperature},
        "linear": {
            "weight_decays": list(config.weight_decays),
            "extend_grid": config.extend_grid,
            "val_fraction": config.val_fraction,
            "max_iter": config.max_iter,
            "seed": config.seed,
        },
        "clustering": {
            "split": "test",
            "n_clusters": config.n_clusters,
            "seeds": config.cluster_seeds,
            "niter": config.cluster_niter,
        },
    }
    if "linear-paper" in names:
        every["linear-paper"] = paper_linear_params(config, model)
    return {name: every[name] for name in names}


def knn_outcome(
    train: Features, test: Features, p: dict[str, Any], device: str | None = None
) -> dict[str, Any]:
    """The k-NN protocol's full result on extracted features with the ``knn`` parameters of
    :func:`protocol_params`: ``top1``, ``top5`` and each test image's ``predictions`` (not for a bank streamed
    from disk in chunks: ``chunked`` says which)."""
    chunked = isinstance(train.feats, np.memmap)  # larger than RAM should hold: stream the bank in chunks
    if chunked:
        from evaluators.knn_chunked import knn_classify_chunked as classify
    else:
        classify = knn_classify
    out = classify(
        train.feats,
        train.labels,
        test.feats,
        test.labels,
        k=p["k"],
        temperature=p["temperature"],
        device=device,
    )
    return {**out, "chunked": chunked}


def linear_outcome(
    train: Features, test: Features, p: dict[str, Any], device: str | None = None
) -> dict[str, Any]:
    """The linear probe's full result (``top1``, ``top5``, ``predictions``, the chosen ``weight_decay``) with the
    ``linear`` parameters of :func:`protocol_params`."""
    return linear_probe(
        train.feats,
        train.labels,
        test.feats,
        test.labels,
        weight_decays=p["weight_decays"],
        val_fraction=p["val_fraction"],
        max_iter=p["max_iter"],
        seed=p["seed"],
        device=device,
        extend_grid=p.get("extend_grid", False),  # records from before the option: the grid as it was
    )


def _knn(train: Features, test: Features, p: dict[str, Any], device: str | None):
    out = knn_outcome(train, test, p, device)
    return {"top1": out["top1"], "top5": out["top5"]}, ({"search": "chunked"} if out["chunked"] else {})


def _linear(train: Features, test: Features, p: dict[str, Any], device: str | None):
    out = linear_outcome(train, test, p, device)
    return {"top1": out["top1"], "top5": out["top5"]}, {
        "weight_decay": out["weight_decay"],
        "val_top1": out["val_top1"],
        "path": [[wd, round(val, 4)] for wd, val in out["path"]],  # λ and validation top-1 of each fit
    }


def _clustering(train: Features, test: Features, p: dict[str, Any], device: str | None):
    feats = test if p.get("split", "test") == "test" else train
    out = cluster_metrics(feats.feats, feats.labels, p["n_clusters"], seeds=p["seeds"], niter=p["niter"])
    details = {"n_clusters": out["n_clusters"], "kmeans": KMEANS_IMPLEMENTATION}
    return {k: v for k, v in out.items() if k != "n_clusters"}, details


def _paper_linear(encoder: Any, dataset: str, p: dict[str, Any], num_workers: int, progress: bool):
    from evaluators.paper_linear import run_paper_linear
    from evaluators.sources import open_split

    out = run_paper_linear(
        encoder,
        open_split(dataset, "train"),
        open_split(dataset, "test"),
        p["recipe"],
        features=p["features"],
        epochs=p.get("epochs"),
        batch_size=p.get("batch_size"),
        steps_per_epoch=p.get("steps_per_epoch"),
        num_workers=num_workers,
        seed=p.get("seed", 0),
        progress=progress,
    )
    details = {"epoch": out["epoch"], "lr": out["lr"], "history": out["history"], "run": out["params"]}
    return {"top1": out["top1"], "top5": out["top5"]}, details


RUNNERS: dict[str, Callable[..., tuple[dict[str, float], dict[str, Any]]]] = {
    "knn": _knn,
    "linear": _linear,
    "clustering": _clustering,
}
# Protocols that read images themselves: (encoder, dataset, params, num_workers, progress) → (metrics, details).
IMAGE_RUNNERS: dict[str, Callable[..., tuple[dict[str, float], dict[str, Any]]]] = {
    "linear-paper": _paper_linear
}


class _AutocastEncoder:
    """An encoder whose ``embed`` runs under autocast, with its own feature-cache identity (its features differ)."""

    AMP_SAMPLE = 64  # test images on which the error to full precision is measured

    def __init__(self, encoder: Any, amp: str, model: str) -> None:
        if "amp" not in inspect.signature(encoder.embed).parameters:
            raise SslzooError(f"--amp needs a neural encoder; {model} has no forward to run in {amp}.")
        self.encoder, self.amp = encoder, amp
        self.identity = f"{encoder.identity}+amp-{amp}"

    def __getattr__(self, name: str) -> Any:  # preprocessing, transform, cacheable… as the wrapped encoder's
        return getattr(self.encoder, name)

    def embed(self, images: Any, **kwargs: Any) -> Any:  # batch_size, progress, num_workers, kind, out…
        return self.encoder.embed(images, amp=self.amp, **kwargs)

    def measure_error(self, dataset: str) -> float:
        """Mean cosine distance between full-precision and autocast embeddings of the first test images."""
        import torch.nn.functional as F

        import zoo

        ds = zoo.load_dataset(dataset, split="test")
        sample = ds.select(range(min(self.AMP_SAMPLE, len(ds))))
        full = self.encoder.embed(sample, batch_size=self.AMP_SAMPLE)
        low = self.embed(sample, batch_size=self.AMP_SAMPLE)
        return float((1.0 - F.cosine_similarity(full, low, dim=1)).mean())


def run_protocols(
    model: str,
    dataset: str,
    params: dict[str, dict[str, Any]],
    *,
    batch_size: int = 256,
    device: str | None = "auto",
    use_cache: bool = True,
    progress: bool = True,
    encoder: Any = None,
    command: str = "",
    num_workers: int = 0,
    amp: str | None = None,
    strict_images: bool = False,
) -> list[Record]:
    """Embed ``dataset`` with ``model`` (train and test, cached) and run each protocol with its parameters.

    Args:
        model: Model string (see :func:`evaluators.baselines.resolve_encoder`).
        dataset: Dataset name.
        params: ``{protocol: parameters}`` as :func:`protocol_params` makes them.
        batch_size: Images per forward pass.
        device: Device for the encoder and the protocols.
        use_cache: Use the feature cache.
        progress: Show progress bars.
        encoder: An already loaded encoder for ``model`` (skips loading).
        command: The command line, stored in the records.
        num_workers: DataLoader workers decoding images.
        amp: Embed under autocast in this precision (see ``zoo.Encoder.embed``); each record's details then hold
            ``amp`` and ``amp_cosine_distance``, the mean cosine distance to full precision on a test sample.
        strict_images: Refuse a ``folder:`` dataset with unreadable files; otherwise they are left out (one line
            on stderr) and each record's ``excluded_files`` says how many.

    Returns:
        One :class:`Record` per protocol, in the order of ``params``.
    """
    from evaluators._dist import join_torchrun
    from evaluators.baselines import resolve_encoder

    device = None if device == "auto" else device  # None: each step picks CUDA when present
    unknown = [p for p in params if p not in PROTOCOLS]
    if unknown:
        raise SslzooError(f"unknown protocol {', '.join(unknown)}; choose from {', '.join(PROTOCOLS)}.")
    device = join_torchrun() or device  # under torchrun: this rank's own GPU (or the CPU with gloo)
    if amp is not None and amp not in AMP_DTYPES:
        raise SslzooError(f"unknown --amp {amp!r}; choose from {', '.join(AMP_DTYPES)} (or none).")
    # Baselines read the dataset too (channels, pixels): a bad image of a folder: dataset is one line anywhere.
    with naming_unreadable_images(dataset):
        excluded = unreadable_files(dataset, strict=strict_images)
        if len(excluded):
            print(excluded.note(), file=sys.stderr)
        encoder = encoder if encoder is not None else resolve_encoder(model, dataset, device=device)
        if isinstance(getattr(encoder, "model", None), torch.nn.Module):
            check_finite(encoder.model, model)  # NaN/inf weights score at chance: no record of them
        amp_details: dict[str, Any] = {}
        if amp is not None:
            encoder = _AutocastEncoder(encoder, amp, model)
            amp_details = {"amp": amp, "amp_cosine_distance": encoder.measure_error(dataset)}
        if any(name in IMAGE_RUNNERS for name in params):
            from evaluators.paper_linear import require_features

            require_features(encoder)
        extract = {
            "batch_size": batch_size,
            "use_cache": use_cache,
            "progress": progress,
            "num_workers": num_workers,
        }
        if any(name in RUNNERS for name in params):
            train = extract_features(encoder, dataset, "train", **extract)
            test = extract_features(encoder, dataset, "test", **extract)
            labels = (train.labels, test.labels)
            feature_dim, features_time = int(train.feats.shape[1]), train.seconds + test.seconds
        else:  # image protocols only: nothing to embed up front
            from evaluators.sources import open_split, split_labels

            labels = tuple(split_labels(open_split(dataset, split)) for split in ("train", "test"))
            kind = params.get("linear-paper", {}).get("features", "default")
            feature_dim, features_time = int(encoder.feature_dim(kind)), 0.0
    commit, dirty = code_commit()
    shared = {
        "model_identity": encoder.identity,
        "preprocessing": preprocessing_description(encoder),
        "splits": {"train": len(labels[0]), "test": len(labels[1])},
        "excluded_files": len(excluded),
        "num_classes": int(max(labels[0].max(), labels[1].max())) + 1,
        "feature_dim": feature_dim,
        "versions": library_versions(),
        "commit": commit,
        "code_dirty": dirty,
        "features_time_s": round(features_time, 3),
        "machine": machine_info(),
        "command": command,
    }
    records = []
    for name, p in params.items():
        start = time.perf_counter()
        if name in IMAGE_RUNNERS:
            metrics, details = IMAGE_RUNNERS[name](encoder, dataset, p, num_workers, progress)
        else:
            metrics, details = RUNNERS[name](train, test, p, device)
        records.append(
            Record(
                model=model,
                dataset=dataset,
                protocol=name,
                params=p,
                # Every metric in percent, to 0.0001 points, without float32 noise (87.849998 → 87.85).
                metrics={k: round(float(v), STORED_DECIMALS) for k, v in metrics.items()},
                details={**details, **amp_details},
                wall_time_s=round(time.perf_counter() - start, 3),
                created=now_utc(),
                **shared,
            )
        )
    return records


def evaluate(
    model: str, dataset: str, config: EvalConfig | None = None, *, progress: bool = True, command: str = ""
):
    """Evaluate ``model`` on ``dataset`` with the protocols and parameters of ``config``; one record per protocol."""
    config = config or EvalConfig()
    config.validate()
    return run_protocols(
        model,
        dataset,
        protocol_params(config, model),
        batch_size=config.batch_size,
        device=config.device,
        use_cache=config.cache,
        progress=progress,
        command=command,
        num_workers=config.num_workers,
        amp=config.amp,
        strict_images=config.strict_images,
    )
