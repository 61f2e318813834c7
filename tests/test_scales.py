"""One number, one scale: what a command prints and what it records are the same percentages."""

from __future__ import annotations

import json
import re

from app.cli import main
from evaluators import read_records
from zoo.scores import format_points


def test_eval_prints_each_score_as_its_record_stores_it_in_percent(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path / "cache"))
    board = tmp_path / "board"
    args = ["eval", "raw-pixels", "digits", "--protocols", "knn,clustering", "--leaderboard", str(board)]
    assert main(args) == 0
    out = capsys.readouterr().out
    shown = dict(re.findall(r"│\s*(top1|top5|nmi|ami|ari|acc)\s*│\s*([0-9.]+)\s*│", out))
    records = {r.protocol: r for r in read_records(board)}
    stored = {**records["knn"].metrics, **records["clustering"].metrics}
    assert set(shown) == {"top1", "top5", "nmi", "ami", "ari", "acc"}
    assert shown == {name: format_points(stored[name]) for name in shown}
    assert 1 < stored["nmi"] <= 100 and 1 < stored["acc"] <= 100  # percent, like top1
    # --json prints the records themselves: the same numbers.
    assert main([*args, "--json", "--no-record"]) == 0
    printed = {r["protocol"]: r["metrics"] for r in json.loads(capsys.readouterr().out)}
    assert printed["clustering"]["nmi"] == stored["nmi"] and printed["knn"]["top1"] == stored["top1"]


def test_train_prints_the_knn_monitor_in_percent_as_the_curves_show_it(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--method", "simclr", "--dataset", "digits", "--epochs", "1", "--batch-size", "256"]
    args += ["--image-size", "16", "--arch-args", "widths=(8,8,8,8)", "--knn-every", "1", "--out", str(out)]
    assert main([*args, "--progress"]) == 0
    printed = re.search(r"epoch 1/1: loss [0-9.]+, k-NN ([0-9.]+)%", capsys.readouterr().out)
    assert printed is not None
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    knn = [r["knn_acc"] for r in rows if "knn_acc" in r][-1]  # metrics.jsonl keeps the monitor's fraction
    assert printed.group(1) == f"{100 * knn:.2f}"
