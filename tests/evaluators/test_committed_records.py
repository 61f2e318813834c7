"""Every committed leaderboard record reproduces: re-run with the parameters it stores, as
`sslzoo leaderboard --reproduce` does, each metric lands within the tolerance of what it records.

The digits rows (each model's three protocols in a few seconds) run always; the Fashion-MNIST rows (60,000 training
images embedded again) are slow tests and need the Debian package ``dataset-fashion-mnist``.
"""

from __future__ import annotations

import inspect

import pytest

from evaluators.leaderboard import reproduce
from evaluators.records import REPO_ROOT, read_records

COMMITTED = read_records(REPO_ROOT / "leaderboard")
TOLERANCE = inspect.signature(reproduce).parameters["tolerance"].default  # the CLI's default too (test below)


def _groups(dataset: str) -> list[str]:
    """The committed models of ``dataset``, in the leaderboard's order."""
    return list(dict.fromkeys(r.model for r in COMMITTED if r.dataset == dataset))


def _fashion_mnist_installed() -> bool:
    from zoo import datasets

    return datasets.FASHION_MNIST_DIR.is_dir()


def _assert_reproduces(model: str, dataset: str) -> None:
    records = [r for r in COMMITTED if (r.model, r.dataset) == (model, dataset)]
    assert records, f"no committed record of {model} on {dataset}"
    results = reproduce(records, progress=False)
    failed = [f"{r.record.id} {r.record.protocol}: {'; '.join(r.problems)}" for r in results if not r.ok]
    assert not failed, (
        f"committed rows of {model}@{dataset} no longer reproduce within {TOLERANCE} points: {failed}; if the code "
        f"changed the numbers on purpose, re-measure them: `sslzoo eval {model} {dataset} --leaderboard leaderboard`"
    )


def test_the_cli_checks_with_the_same_tolerance():
    from app.cli import build_parser

    args = build_parser("leaderboard").parse_args(["leaderboard", "--reproduce"])
    assert args.tolerance == TOLERANCE == 0.5


def test_committed_clustering_rows_name_the_kmeans_that_ran_where_they_record_it():
    from evaluators.clustering import KMEANS_IMPLEMENTATION

    digits = [r for r in COMMITTED if r.dataset == "digits" and r.protocol == "clustering"]
    assert digits and {r.details.get("kmeans") for r in digits} == {KMEANS_IMPLEMENTATION}
    text = (REPO_ROOT / "leaderboard" / "README.md").read_text()
    assert "faiss k-means" not in text and f"{KMEANS_IMPLEMENTATION} on the test split" in text


@pytest.mark.parametrize("model", _groups("digits"))
def test_committed_digits_rows_reproduce(model, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path / "cache"))  # re-embed: no feature cache of another run
    _assert_reproduces(model, "digits")


@pytest.mark.slow
@pytest.mark.skipif(not _fashion_mnist_installed(), reason="Debian package dataset-fashion-mnist missing")
@pytest.mark.parametrize("model", _groups("fashion-mnist"))
def test_committed_fashion_mnist_rows_reproduce(model, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path / "cache"))
    _assert_reproduces(model, "fashion-mnist")
