"""Model cards: the model-index huggingface_hub reads back holds every recorded evaluation under distinct names."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from zoo.cards import CardSpec, Result, parse_card, render_card, results_from_records
from zoo.errors import SslzooError


def _record(protocol, metrics, params=None, dataset="digits", created="2026-01-01T00:00:00+00:00"):
    """Shaped like the evaluators' ``Record.to_dict()``."""
    return {
        "model": "runs/simclr",
        "dataset": dataset,
        "protocol": protocol,
        "params": params or {},
        "metrics": metrics,
        "model_identity": "sha256:abc",
        "splits": {"train": 1437, "test": 360},
        "commit": "0123456789abcdef",
        "created": created,
    }


RECORDS = [
    _record("knn", {"top1": 91.25, "top5": 99.5}, {"k": 20, "temperature": 0.07}),
    _record("linear", {"top1": 93.0}, {"max_iter": 100}),
    _record(
        "clustering", {"nmi": 0.71, "ami": 0.70, "ari": 0.55, "acc": 0.66, "nmi_std": 0.01}, {"seeds": 3}
    ),
]


def _index(card) -> dict[tuple[str, str, str, str], float]:
    """(task type, metric type, dataset type, split) → value, read back by huggingface_hub."""
    return {
        (r.task_type, r.metric_type, r.dataset_type, r.dataset_split): r.metric_value
        for r in card.data.eval_results
    }


def test_model_index_holds_every_recorded_metric_under_distinct_names():
    results = results_from_records(RECORDS)
    card = render_card(
        CardSpec(name="simclr-digits", method="simclr", architecture="sslzoo_cnn4", dim=256), results
    )
    index = _index(ModelCard(str(card)))  # parse the text, as the Hub will
    assert index == {
        ("knn-image-classification", "knn_top1", "sklearn-digits", "test"): 91.25,
        ("knn-image-classification", "knn_top5", "sklearn-digits", "test"): 99.5,
        ("image-classification", "linear_top1", "sklearn-digits", "test"): 93.0,
        ("image-clustering", "clustering_nmi", "sklearn-digits", "test"): 0.71,
        ("image-clustering", "clustering_ami", "sklearn-digits", "test"): 0.70,
        ("image-clustering", "clustering_ari", "sklearn-digits", "test"): 0.55,
        ("image-clustering", "clustering_acc", "sklearn-digits", "test"): 0.66,
    }  # the spread nmi_std is not a score and stays out
    groups = card.data.to_dict()["model-index"][0]["results"]
    assert [g["task"]["name"] for g in groups] == [
        "k-NN classification of frozen features",
        "Linear probe on frozen features",
        "k-means clustering of frozen features",
    ]  # each protocol is its own group, so the Hub never shows clustering scores under "k-NN"
    knn = next(r for r in card.data.eval_results if r.metric_type == "knn_top1")
    assert knn.metric_args == {"k": 20, "temperature": 0.07}


def test_later_record_of_the_same_evaluation_replaces_the_earlier_and_other_settings_stay():
    old = _record("knn", {"top1": 80.0}, {"k": 20}, created="2026-01-01")
    new = _record("knn", {"top1": 85.0}, {"k": 20}, created="2026-02-01")
    other_k = _record("knn", {"top1": 83.0}, {"k": 10})
    results = results_from_records([old, other_k, new])
    assert [(r.params["k"], r.value) for r in results] == [(20, 85.0), (10, 83.0)]


def test_card_header_carries_licence_tags_library_and_datasets():
    spec = CardSpec(name="m", method="dino", license="CC-BY-NC", train_dataset="fashion-mnist")
    data = render_card(
        spec, results_from_records([_record("knn", {"top1": 88.0}, dataset="fashion-mnist")])
    ).data
    assert data.license == "cc-by-nc-4.0"
    assert data.library_name == "timm"
    assert {"self-supervised", "dino", "fashion-mnist"} <= set(data.tags)
    assert data.datasets == ["zalando-datasets/fashion_mnist"]


def test_body_has_method_loading_training_results_limitations_and_citation():
    spec = CardSpec(
        name="byol-digits",
        method="byol",
        architecture="sslzoo_cnn4",
        dim=256,
        repo_id="me/byol-digits",
        training={"method": "byol", "epochs": 3, "lr": 0.001},
        provenance={"seed": 7, "code commit": "deadbeef"},
    )
    text = str(render_card(spec, results_from_records(RECORDS[:1])))
    for needle in (
        "## Method",
        "target network",  # BYOL's few sentences
        'zoo.load("hf-hub:me/byol-digits")',
        'timm.create_model("hf-hub:me/byol-digits", pretrained=True, num_classes=0)',
        '"epochs": 3',
        "| seed | 7 |",
        "| 91.25 |",
        "## Limitations",
        "@inproceedings{grill2020byol",
    ):
        assert needle in text, needle


def test_parse_card_checks_the_expected_results_and_rejects_broken_yaml():
    results = results_from_records(RECORDS)
    text = str(render_card(CardSpec(name="m", method="simclr"), results))
    assert len(parse_card(text, expected=results).data.eval_results) == 7
    with pytest.raises(SslzooError, match="lacks k-NN top-1"):
        parse_card(
            text, expected=[Result("knn", "top1", 12.0, "digits", params={"k": 20, "temperature": 0.07})]
        )
    with pytest.raises(SslzooError, match="does not parse"):
        parse_card("---\nmodel-index: [unclosed\n---\n# x\n")
