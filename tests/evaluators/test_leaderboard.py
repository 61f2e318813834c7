"""Records, the rendered leaderboard, and `sslzoo leaderboard --reproduce` on untouched and tampered rows."""

from __future__ import annotations

import json
import re

import pytest

from app.cli import main
from evaluators import Record, read_records, write_records
from evaluators.leaderboard import render_markdown, save_chart, select_records
from zoo.errors import SslzooError


@pytest.fixture
def board(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "leaderboard"


def _record(model="m", dataset="digits", protocol="knn", top1=90.0, **kw):
    return Record(model=model, dataset=dataset, protocol=protocol, metrics={"top1": top1, "top5": 99.0}, **kw)


def test_write_replaces_the_same_model_dataset_protocol(board):
    write_records([_record(top1=80.0), _record(protocol="linear"), _record(dataset="fashion-mnist")], board)
    write_records([_record(top1=85.0)], board)
    records = read_records(board)
    assert len(records) == 3
    assert [r.metrics["top1"] for r in read_records(board, "digits") if r.protocol == "knn"] == [85.0]
    assert sorted(p.name for p in board.glob("*.jsonl")) == ["digits.jsonl", "fashion-mnist.jsonl"]


def test_a_killed_writers_temporary_is_no_record_and_the_next_write_removes_it(board):
    write_records([_record(top1=80.0)], board)
    # What a kill during a write leaves: a whole or half copy under a hidden temporary name (old and new style).
    whole = (board / "digits.jsonl").read_text()
    (board / ".digits-k3j9x0ab.jsonl").write_text(whole)
    (board / ".digits-999999999-k3j9x0ab.jsonl").write_text(whole[: len(whole) // 2])
    assert len(read_records(board)) == 1  # no duplicate, no parse error from the half line
    write_records([_record(protocol="linear")], board)
    assert sorted(p.name for p in board.iterdir()) == [".lock", "digits.jsonl"]
    assert len(read_records(board)) == 2


def test_markdown_table_and_chart(board):
    records = [
        _record("raw-pixels", top1=97.5),
        _record("raw-pixels-centred", top1=97.0),
        _record("random-sslzoo_cnn4", top1=93.9),
        _record("mine", top1=98.25),
        Record(model="mine", dataset="digits", protocol="clustering", metrics={"nmi": 50.0, "acc": 62.5}),
    ]
    text = render_markdown(records)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [re.match(r"\| `([^`]+)`", r).group(1) for r in rows] == [
        "mine",
        "raw-pixels",
        "raw-pixels-centred",
        "random-sslzoo_cnn4",
    ]
    assert (
        "| 98.25 | 99.00 | – | 50.00 | – | – | 62.50 |" in rows[0]
    )  # clustering scores shown in %, 2 decimals
    assert "Missing baseline rows" not in text
    assert "Missing baseline rows: raw-pixels" in render_markdown([_record("mine")])
    png = save_chart(records, board / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_record_written_before_the_schema_field_reads_its_clustering_fractions_as_percent(board):
    # Schema 1 (no "schema" key) stored NMI, AMI, ARI and cluster accuracy as fractions, accuracies in percent.
    board.mkdir()
    old = {
        "model": "m",
        "dataset": "digits",
        "protocol": "clustering",
        "metrics": {"nmi": 0.661342, "acc": 0.65},
    }
    knn = {"model": "m", "dataset": "digits", "protocol": "knn", "metrics": {"top1": 97.5}}
    new = {**old, "model": "n", "schema": 2, "metrics": {"nmi": 66.1342, "acc": 65.0}}
    (board / "digits.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (old, knn, new)))
    records = read_records(board)
    assert [r.metrics for r in records] == [{"nmi": 66.1342, "acc": 65.0}, {"top1": 97.5}, new["metrics"]]
    assert {r.schema for r in records} == {2}
    write_records([_record("other")], board)  # rewriting the file migrates every line to today's schema
    lines = [json.loads(line) for line in (board / "digits.jsonl").read_text().splitlines()]
    assert [line["schema"] for line in lines] == [2, 2, 2, 2] and lines[0]["metrics"]["nmi"] == 66.1342


def test_committed_records_are_all_of_the_current_schema():
    from evaluators.records import REPO_ROOT
    from zoo.scores import RECORD_SCHEMA

    for path in (REPO_ROOT / "leaderboard").glob("*.jsonl"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        assert lines and {line.get("schema") for line in lines} == {RECORD_SCHEMA}, path
        clustering = [line["metrics"] for line in lines if line["protocol"] == "clustering"]
        assert all(m["nmi"] > 1 and m["acc"] > 1 for m in clustering), path  # percent, not fractions


def test_select_rows_by_id_model_or_model_at_dataset():
    records = [_record("a"), _record("a", dataset="other"), _record("b")]
    assert select_records(records, [records[2].id]) == [records[2]]
    assert select_records(records, ["a"]) == records[:2]
    assert select_records(records, ["a@other"]) == [records[1]]
    with pytest.raises(SslzooError, match="no leaderboard row matches zzz"):
        select_records(records, ["zzz"])


def test_eval_records_provenance_and_reproduce_passes_then_fails_when_tampered(board, capsys):
    assert (
        main(["eval", "raw-pixels", "digits", "--protocols", "knn,clustering", "--leaderboard", str(board)])
        == 0
    )
    records = read_records(board)
    assert [r.protocol for r in records] == ["knn", "clustering"]
    knn = records[0]
    assert knn.splits == {"train": 1437, "test": 360} and knn.num_classes == 10 and knn.feature_dim == 64
    assert knn.params == {"k": 20, "temperature": 0.07} and knn.metrics["top1"] > 90
    assert knn.versions["torch"] and knn.versions["faiss-cpu"] and knn.machine["cpu_count"]
    assert knn.commit == "unknown" or re.fullmatch(r"[0-9a-f]{40}", knn.commit)
    assert knn.model_identity == "raw-pixels-v1" and "flattened" in knn.preprocessing and knn.created
    capsys.readouterr()

    assert main(["leaderboard", "--leaderboard", str(board), "--reproduce"]) == 0
    assert "2 of 2 rows reproduce" in capsys.readouterr().out

    path = board / "digits.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0]["metrics"]["top1"] += 1.0  # tamper with the k-NN row
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["leaderboard", "--leaderboard", str(board), "--reproduce", knn.id, "--json"]) == 1
    (result,) = json.loads(capsys.readouterr().out)
    assert not result["ok"] and result["differences"]["top1"]["points"] == pytest.approx(-1.0)
    # Within a looser tolerance the same row passes.
    assert (
        main(["leaderboard", "--leaderboard", str(board), "--reproduce", knn.id, "--tolerance", "1.5"]) == 0
    )


def test_reproduce_fails_when_the_weights_changed(board, capsys):
    assert (
        main(["eval", "random-sslzoo_cnn4", "digits", "--protocols", "knn", "--leaderboard", str(board)]) == 0
    )
    assert main(["leaderboard", "--leaderboard", str(board), "--reproduce", "--use-cache"]) == 0
    path = board / "digits.jsonl"
    line = json.loads(path.read_text())
    line["model_identity"] = "random-sslzoo_cnn4@weights-sha256:0000000000000000"
    path.write_text(json.dumps(line) + "\n")
    capsys.readouterr()
    assert main(["leaderboard", "--leaderboard", str(board), "--reproduce", "--use-cache"]) == 1
    assert "weights changed" in capsys.readouterr().out


def test_leaderboard_renders_files_and_bad_input_is_one_line(board, capsys):
    write_records([_record("raw-pixels"), _record("random-sslzoo_cnn4")], board)
    assert main(["leaderboard", "--leaderboard", str(board)]) == 0
    assert (board / "README.md").read_text().startswith("# sslzoo leaderboard")
    assert (board / "leaderboard.png").is_file()
    capsys.readouterr()
    assert main(["eval", "raw-pixels", "digits", "--protocols", "knn,svm", "--no-record"]) == 2
    assert capsys.readouterr().err.strip() == (
        "sslzoo: error: unknown protocol svm; choose from knn, linear, clustering, linear-paper."
    )
    assert main(["leaderboard", "--leaderboard", str(board / "empty"), "--reproduce"]) == 2


def test_eval_an_exported_encoder_folder_then_hit_the_feature_cache(board, tmp_path, capsys):
    import timm
    import torch

    import zoo.architectures  # registers the sslzoo_* architectures with timm

    torch.manual_seed(1)
    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0)
    folder = zoo.save_encoder(net, tmp_path / "enc", model_args={"in_chans": 1})
    args = ["eval", str(folder), "digits", "--protocols", "knn", "--leaderboard", str(board), "--json"]
    assert main(args) == 0
    (first,) = json.loads(capsys.readouterr().out)
    assert first["model"] == str(folder) and first["features_time_s"] > 0
    assert first["model_identity"] == zoo.load(str(folder)).identity
    assert main(args) == 0
    (second,) = json.loads(capsys.readouterr().out)
    assert second["features_time_s"] == 0  # both splits came from the feature cache
    assert second["metrics"] == first["metrics"]


def test_eval_prints_its_results_before_a_failed_leaderboard_write_and_fails_in_one_line(
    board, capsys, monkeypatch
):
    import errno

    import evaluators.records

    def unwritable(records, folder=None):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(evaluators.records, "write_records", unwritable)
    args = ["eval", "raw-pixels", "digits", "--protocols", "knn", "--leaderboard", str(board)]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert "raw-pixels on digits" in out and "top1" in out  # the results are on the screen
    assert err.count("\n") == 1 and "results above were not recorded" in err and str(board) in err


def test_eval_refuses_a_leaderboard_that_is_a_file_before_any_work(board, tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    args = ["eval", "no-such-model", "digits", "--leaderboard", str(tmp_path / "file" / "board")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err
    assert (tmp_path / "file").read_text() == "mine"


def test_readme_outcome_names_who_beats_the_best_baseline():
    from types import SimpleNamespace

    from evaluators.generated import outcome

    def rec(top1):
        return SimpleNamespace(metrics={"top1": top1})

    by_model = {
        "raw-pixels": {"knn": rec(84.59), "linear": rec(84.87)},
        "raw-pixels-centred": {"knn": rec(86.05), "linear": rec(84.44)},
        "a-fmnist": {"knn": rec(86.98), "linear": rec(88.43)},
        "b-fmnist": {"knn": rec(86.05), "linear": rec(84.0)},  # a tie is not a win
        "c-fmnist": {"knn": rec(85.929999)},  # no linear record: counted for k-NN only; float noise rounded
    }

    def kind(model):
        return "baseline" if model.startswith("raw") else "mini-zoo (x, `y`)"

    assert outcome(by_model, kind) == (
        "k-NN: 1 of 3 mini-zoo encoders beat the best baseline (`raw-pixels-centred`, 86.05); not `b-fmnist` "
        "(86.05), `c-fmnist` (85.93). Linear: 1 of 2 mini-zoo encoders beat the best baseline (`raw-pixels`, "
        "84.87); not `b-fmnist` (84.00)."
    )


def test_leaderboard_shows_the_repositorys_records_and_yours_each_labelled(tmp_path, monkeypatch, capsys):
    """A fresh user: an empty leaderboard of their own, the committed rows still shown; after an eval both."""
    from evaluators.records import REPO_ROOT

    monkeypatch.delenv("SSLZOO_LEADERBOARD", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path / "cache"))
    committed = read_records(REPO_ROOT / "leaderboard")
    assert main(["leaderboard", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(r["source"], r["id"]) for r in shown] == [("repository", r.id) for r in committed]
    assert main(["leaderboard", "--dataset", "digits"]) == 0
    assert "| `raw-pixels`† | repository | 97.50 |" in capsys.readouterr().out

    assert main(["eval", "raw-pixels", "digits", "--protocols", "knn"]) == 0
    mine = tmp_path / "cache" / "leaderboard"
    assert [r.model for r in read_records(mine)] == ["raw-pixels"]
    capsys.readouterr()
    assert main(["leaderboard", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in shown] == ["repository"] * len(committed) + ["yours"]
    assert shown[-1]["model"] == "raw-pixels" and shown[-1]["protocol"] == "knn"
    assert main(["leaderboard"]) == 0
    out = capsys.readouterr().out
    assert "| `raw-pixels`† | repository |" in out and "| `raw-pixels`† | yours |" in out
    assert f"{mine}: generated files up to date" in out.replace(
        "\n", ""
    )  # the user's files, not the repository's
    # The same row in both: --reproduce re-runs each, and says whose it is.
    knn = next(r for r in committed if (r.model, r.dataset, r.protocol) == ("raw-pixels", "digits", "knn"))
    assert main(["leaderboard", "--reproduce", knn.id, "--json"]) == 0
    assert [(r["source"], r["ok"]) for r in json.loads(capsys.readouterr().out)] == [
        ("repository", True),
        ("yours", True),
    ]
    # --leaderboard names one folder: that folder alone, as its generated README.md shows it.
    assert main(["leaderboard", "--leaderboard", str(mine), "--json"]) == 0
    assert [(r["source"], r["model"]) for r in json.loads(capsys.readouterr().out)] == [
        ("yours", "raw-pixels")
    ]
    assert main(["leaderboard", "--leaderboard", str(mine)]) == 0
    assert "| source |" not in capsys.readouterr().out


def test_one_model_in_two_sources_is_two_rows_of_the_table_and_the_chart(board):
    records = [_record("raw-pixels", top1=97.5), _record("raw-pixels", top1=96.0), _record("mine", top1=90.0)]
    text = render_markdown(records, ["repository", "yours", "yours"])
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [r.split(" | ")[:3] for r in rows] == [
        ["| `raw-pixels`†", "repository", "97.50"],
        ["| `raw-pixels`†", "yours", "96.00"],
        ["| `mine`", "yours", "90.00"],
    ]
    from evaluators.leaderboard import chart_data

    (block,) = chart_data(records, ["repository", "yours", "yours"])
    assert [(r["model"], r["source"]) for r in block["rows"]] == [
        ("raw-pixels", "repository"),
        ("raw-pixels", "yours"),
        ("mine", "yours"),
    ]
    assert save_chart(records, board / "chart.png", ["repository", "yours", "yours"]).is_file()
