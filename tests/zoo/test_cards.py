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
        ("image-classification", "knn_top1", "sklearn-digits", "test"): 91.25,
        ("image-classification", "knn_top5", "sklearn-digits", "test"): 99.5,
        ("image-classification", "linear_top1", "sklearn-digits", "test"): 93.0,
        ("image-feature-extraction", "clustering_nmi", "sklearn-digits", "test"): 71.0,
        ("image-feature-extraction", "clustering_ami", "sklearn-digits", "test"): 70.0,
        ("image-feature-extraction", "clustering_ari", "sklearn-digits", "test"): 55.0,
        ("image-feature-extraction", "clustering_acc", "sklearn-digits", "test"): 66.0,
    }  # clustering fractions in percent like the accuracies; the spread nmi_std is not a score and stays out
    groups = card.data.to_dict()["model-index"][0]["results"]
    # Task types are Hub task ids; k-NN and linear share one group, kept apart by metric type and name.
    assert [g["task"]["type"] for g in groups] == ["image-classification", "image-feature-extraction"]
    names = {m["type"]: m["name"] for g in groups for m in g["metrics"]}
    assert names["knn_top1"].startswith("k-NN top-1 accuracy (%)")
    assert names["linear_top1"].startswith("Linear probe top-1 accuracy (%)")
    assert names["clustering_nmi"].startswith("k-means NMI (%)")
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
        "| **91.25** |",
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


def test_every_score_reads_the_same_in_body_and_model_index_percent_two_decimals():
    records = [
        _record(
            "linear", {"top1": 87.849998}
        ),  # float32 noise, as records written before it was rounded away
        _record("clustering", {"nmi": 0.709099, "acc": 0.5}),
    ]
    results = results_from_records(records)
    card = render_card(CardSpec(name="m", method="simclr"), results)
    text = str(card)
    index = {r.metric_type: r.metric_value for r in ModelCard(text).data.eval_results}
    assert index == {"linear_top1": 87.85, "clustering_nmi": 70.91, "clustering_acc": 50.0}
    body = text.split("## Results")[1]
    assert "| **87.85** |" in body and "| **70.91** |" in body and "| **50.00** |" in body
    assert "0.7091" not in body and "87.849998" not in text


def test_a_schema_2_record_is_read_in_percent_and_an_older_one_converted():
    old = _record("clustering", {"nmi": 0.709099})  # no "schema": clustering scores were fractions
    new = {**_record("clustering", {"nmi": 70.9099}, created="2026-12-04"), "schema": 2}
    assert [r.value for r in results_from_records([old])] == [pytest.approx(70.9099)]
    assert [r.value for r in results_from_records([new])] == [pytest.approx(70.9099)]


def test_baselines_sit_beside_the_models_numbers_for_the_same_evaluation_only():
    knn = {"k": 20, "temperature": 0.07}
    mine = results_from_records([_record("knn", {"top1": 91.25}, knn), _record("clustering", {"nmi": 0.5})])
    baselines = {
        "raw-pixels": results_from_records(
            [_record("knn", {"top1": 88.5}, knn), _record("clustering", {"nmi": 0.25})]
        ),
        # evaluated another way only (k=10): not comparable, so no column
        "random-sslzoo_cnn4": results_from_records(
            [_record("knn", {"top1": 70.0}, {"k": 10, "temperature": 0.07})]
        ),
        # on another dataset only
        "raw-pixels-centred": results_from_records(
            [_record("knn", {"top1": 60.0}, knn, dataset="fashion-mnist")]
        ),
    }
    text = str(render_card(CardSpec(name="mine", method="simclr"), mine, baselines=baselines))
    table = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    assert table[0] == "| dataset | protocol | metric | **mine** | `raw-pixels` |"
    assert table[1] == "| scikit-learn digits (8×8) | k-NN, k=20, T=0.07 | top-1 | **91.25** | 88.50 |"
    assert table[2] == "| scikit-learn digits (8×8) | k-means | NMI | **50.00** | 25.00 |"
    index = ModelCard(text).data.eval_results
    assert {r.metric_value for r in index} == {91.25, 50.0}  # baselines stay out of the model-index


def test_a_moco_card_says_when_shuffle_bn_had_no_effect():
    from zoo.publish import card_spec, training_caveats

    old = {"train": {"method": "moco"}, "method": {"shuffle_bn": True}}
    assert "had no effect" in training_caveats(old)[0]
    # Since split-BN the run records the mode it used: nothing to correct.
    assert training_caveats({"train": {"method": "moco"}, "method": {"shuffle_bn": "split-bn"}}) == []
    assert training_caveats({"train": {"method": "simclr"}, "method": {}}) == []
    assert training_caveats(None) == []
    # The shipped MoCo encoder's card says it exactly when its config has the old boolean.
    import json

    from zoo.registry import SHIPPED_DIR

    spec = card_spec(SHIPPED_DIR / "moco-fmnist")
    config = json.loads((SHIPPED_DIR / "moco-fmnist" / "sslzoo.json").read_text())["config"]
    old_boolean = config["method"].get("shuffle_bn") is True
    assert any("had no effect" in line for line in spec.limitations) == old_boolean
