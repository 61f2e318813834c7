"""Every bad input is one line and exit status 2, and nothing is written or deleted (the README's "Errors" rule).

One row per case: the command line (or Python call), and a pattern the one-line message must match (it names the
problem). Each row runs in a working folder holding files of the user's, a leaderboard with a record, a run and
an export; after the row every one of them is byte for byte what it was, and no new file appeared.
Every subcommand of ``sslzoo --help`` and every public evaluator has rows; the last test prints how many.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from app.cli import build_parser, main
from zoo.errors import SslzooError

TRIED: list[str] = []


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A user's working folder, records, a run, an export and image folders with bad files; returns their paths."""
    import timm

    import zoo
    from evaluators import Record, write_records

    rng = np.random.default_rng(0)
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("the user's own file")
    for name in ("trunc", "huge", "zero", "single"):
        for cls in ("a", "b"):
            (work / name / cls).mkdir(parents=True)
            for i in range(6 if not (name == "single" and cls == "b") else 1):
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                    work / name / cls / f"{i}.png"
                )
    jpeg = work / "trunc" / "a" / "t.jpg"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg, quality=90)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])  # header intact, data cut
    # "Huge" against a lowered PIL limit: the same decompression-bomb path as a 20000×20000 PNG, in milliseconds.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64)
    Image.new("L", (200, 200)).save(work / "huge" / "a" / "big.png")
    (work / "zero" / "a" / "empty.png").write_bytes(b"")
    # Each of those holds 1 bad file of 13: left out (listed), refused only under --strict-images. Half bad is
    # refused outright, and so is a folder where nothing is readable.
    for name, good in (("half", 1), ("nothing", 0)):
        (work / name / "a").mkdir(parents=True)
        for i in range(good):
            pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(work / name / "a" / f"{i}.png")
        (work / name / "a" / "page.jpg").write_text("<html><body>Not Found</body></html>")

    board = tmp_path / "leaderboard"
    write_records([Record(model="m", dataset="digits", protocol="knn", metrics={"top1": 90.0})], board)
    monkeypatch.setenv("SSLZOO_LEADERBOARD", str(board))
    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path / "cache"))

    from _runs import save_tiny_run

    run = save_tiny_run(tmp_path / "run")
    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0, widths=(8, 8, 8, 8))
    rejected = tmp_path / "rejected"  # an export whose model_args timm's constructor does not take
    zoo.save_encoder(net, rejected, model_args={"in_chans": 1, "widths": [8, 8, 8, 8]})
    config = json.loads((rejected / "config.json").read_text())
    config["model_args"]["no_such_argument"] = 1
    (rejected / "config.json").write_text(json.dumps(config))
    (tmp_path / "pickled.pth").write_bytes(pickle.dumps({"w": _Payload()}))
    for name, data in (("cut", None), ("evil", pickle.dumps({"method": _Payload()}))):
        ckpt = tmp_path / f"{name}-run" / "checkpoints" / "last.pt"
        ckpt.parent.mkdir(parents=True)
        if data is None:
            torch.save({"method": {"w": torch.ones(64)}}, ckpt)
            data = ckpt.read_bytes()[: ckpt.stat().st_size // 2]  # killed mid-write by an older version
        ckpt.write_bytes(data)
    monkeypatch.chdir(work)
    return {
        "work": work,
        "board": board,
        "run": run,
        "rejected": rejected,
        "tmp": tmp_path,
        "file": work / "notes.txt",
    }


class _Payload:
    """Unpickling this would run code (print); weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("payload ran",))


def _snapshot(root):
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }


def _unchanged(world, before):
    after = _snapshot(world["tmp"])
    after = {k: v for k, v in after.items() if not k.startswith("cache")}
    return after == before


# ------------------------------------------------------------------------------------------------ the CLI
CLI = [
    # datasets
    (
        "datasets show folder:half",
        "1 of its 2 image files are not readable .*page.jpg: a text .*than the 10%",
    ),
    ("datasets show folder:nothing", "none of its 1 image file.* is readable .*page.jpg"),
    ("datasets show folder:nowhere", "no such folder"),
    ("datasets show digits --per-class 0", "--per-class must be at least 1"),
    ("datasets show digits --out {work}", "is a folder"),
    ("datasets show nosuch", "unknown dataset"),
    # models
    ("models --json [", "no model matches '\\['; `sslzoo models` lists them all"),  # a filter, not a regex
    # embed
    ("embed simclr-fmnist digits --batch-size 0", "batch size must be a whole number of at least 1"),
    ("embed simclr-fmnist digits --num-workers -1", "--num-workers must be 0"),
    ("embed simclr-fmnist digits --out {work}", "is a folder"),
    ("embed simclr-fmnist digits --out {file}/x.npy", "is a file, not a folder"),
    ("embed simclr-fmnist digits --device cuda:99", "CUDA"),
    ("embed simclr-fmnist digits --device gpu", "is not a device"),
    ("embed no-such-model digits", "unknown model"),
    # train (options are checked before any data is read)
    ("train --method simclr --lr -1 --out {tmp}/r", "--lr must be more than 0"),
    ("train --method simclr --logger wandb --out {tmp}/r", "unknown --logger 'wandb'; choose from none"),
    ("train --method simclr --image-size -3 --out {tmp}/r", "--image-size"),
    ("train --method simclr --image-size 0 --out {tmp}/r", "--image-size"),
    ("train --method simclr --log-every 0 --out {tmp}/r", "--log-every"),
    ("train --method simclr --seed -1 --out {tmp}/r", "--seed"),
    ("train --method simclr --warmup-epochs -1 --out {tmp}/r", "--warmup-epochs"),
    ("train --method simclr --knn-max-train 0 --out {tmp}/r", "--knn-max-train"),
    ("train --method simclr --temperature 0 --out {tmp}/r", "--temperature"),
    ("train --method dino --n-local-crops -1 --out {tmp}/r", "--n-local-crops"),
    ("train --method simclr --out {file}", "is a file"),
    ("train --method simclr --arch-args checkpoint_path={tmp}/pickled.pth --out {tmp}/r", "checkpoint_path"),
    ("train --method simclr --out {tmp}/cut-run --resume", "last.pt is damaged"),
    ("train --method simclr --out {tmp}/evil-run --resume", "Python objects other than tensors"),
    ("train --method simclr --dataset nosuch --out {tmp}/r", "unknown dataset"),
    ("train --method simclr --dataset folder:zero --strict-images --out {tmp}/r", "a/empty.png: empty file"),
    # recipes
    ("recipes nosuch", "unknown recipe 'nosuch'"),
    # eval
    ("eval raw-pixels digits --device cuda:99", "CUDA"),
    ("eval raw-pixels digits --weight-decays -1", "weight-decays must be a finite number 0 or more"),
    ("eval raw-pixels digits --weight-decays nan", "weight-decays must be a finite number"),
    ("eval raw-pixels digits --temperature 0", "--temperature must be a finite number more than 0"),
    ("eval raw-pixels digits --temperature nan", "--temperature must be a finite number"),
    ("eval raw-pixels digits --k 0", "--k must be a whole number of at least 1"),
    ("eval raw-pixels digits --batch-size 0", "--batch-size must be a whole number"),
    ("eval raw-pixels digits --max-iter 0", "--max-iter must be a whole number"),
    ("eval raw-pixels digits --seed -1", "--seed must be a whole number of at least 0"),
    ("eval raw-pixels digits --val-fraction 1", "--val-fraction must be between 0 and 1"),
    ("eval raw-pixels digits --n-clusters 0", "--n-clusters must be"),
    ("eval raw-pixels digits --cluster-seeds 0", "--cluster-seeds must be"),
    ("eval raw-pixels digits --cluster-niter 0", "--cluster-niter must be"),
    ("eval raw-pixels digits --protocols knn,svm", "unknown protocol svm"),
    ("eval raw-pixels digits --leaderboard {file}/board", "is a file"),
    ("eval raw-pixels folder:trunc --strict-images --no-record", "a/t.jpg: cannot be decoded .*truncated"),
    ("eval random-sslzoo_cnn4 folder:huge --strict-images --no-record", "big.png: has too many pixels"),
    ("eval raw-pixels folder:half --no-record", "1 of its 2 image files are not readable"),
    ("eval {run} nosuch --no-record", "unknown dataset"),
    # reproduce
    ("reproduce dino-vits16 --dataset folder:{tmp}/no-imagenet", "ImageNet|no such folder"),
    # leaderboard
    ("leaderboard --tolerance -1 --reproduce", "--tolerance must be a finite number"),
    ("leaderboard --leaderboard {file}", "is a file"),
    ("leaderboard --reproduce no-such-row", "no-such-row"),
    # export
    ("export {run} --out .", "not empty and not an earlier export"),
    ("export {run} --out {run}", "is the source"),
    ("export {run} --out {run}/encoder", "is the source"),
    ("export {run} --out {file}", "is a file"),
    ("export {run} --out hub --repo not-a-repo", "is not a Hub repo id"),
    ("export {tmp}/nowhere --out hub", "no such folder"),
    # push
    ("push {rejected} --repo me/x --dry-run", "timm cannot load .*no_such_argument"),
    ("push {run} --repo not/a/repo --dry-run", "is not a Hub repo id"),
    # card
    ("card simclr-fmnist --out {work}", "is a folder"),
    ("card", "give one MODEL"),
    ("card {work}", "holds no exported encoder"),
    # app
    ("app --port 0", "--port must be between 1 and 65535"),
    ("app --port 99999", "--port must be between 1 and 65535"),
    # benchmark
    ("benchmark --methods nosuch", "nosuch"),
    # readme-leaderboard
    ("readme-leaderboard --readme {work}/missing.md", "is not a file"),
    ("readme-leaderboard --readme {file}", "has no .* markers"),
]


def test_every_subcommand_has_a_row():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert commands == {row[0].split()[0] for row in CLI}


@pytest.mark.parametrize(("argv", "message"), CLI, ids=[row[0] for row in CLI])
def test_a_bad_command_line_is_one_line_exit_2_and_changes_nothing(world, capsys, argv, message):
    before = {k: v for k, v in _snapshot(world["tmp"]).items() if not k.startswith("cache")}
    args = [a.format(**world) for a in argv.split()]
    status = main(args)
    err = capsys.readouterr().err
    TRIED.append(argv)
    if message is None:
        assert status == 0, err
        return
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("sslzoo: error: "), err
    import re

    assert re.search(message, err), err
    assert "Traceback" not in err and "payload ran" not in capsys.readouterr().out
    assert _unchanged(world, before), "a refused command wrote or deleted something"


# ------------------------------------------------------------------------------------------------ the Python API
def _api_rows():
    from evaluators import (
        EvalConfig,
        cluster_metrics,
        clustering_scores,
        evaluate,
        extract_features,
        hungarian_accuracy,
        knn_classify,
        linear_probe,
        read_records,
        search_neighbors,
        write_records,
    )

    x, y = torch.randn(20, 4), torch.arange(20) % 2
    nan = x.clone()
    nan[3, 1] = math.nan
    words = np.array(["cat", "dog"] * 10)
    return [
        ("knn string labels", lambda: knn_classify(x, words, x, words), "strings"),
        ("knn NaN features", lambda: knn_classify(nan, y, x, y), "NaN"),
        ("knn NaN labels", lambda: knn_classify(x, y.float().masked_fill(y == 1, math.nan), x, y), "NaN"),
        ("knn temperature NaN", lambda: knn_classify(x, y, x, y, temperature=math.nan), "temperature"),
        ("knn temperature 0", lambda: knn_classify(x, y, x, y, temperature=0), "temperature"),
        ("knn k 2.5", lambda: knn_classify(x, y, x, y, k=2.5), "k must be"),
        ("knn ragged labels", lambda: knn_classify(x, [[0], [1, 2]], x, y), "rectangular|labels"),
        ("knn 3-D features", lambda: knn_classify(x[None], y, x, y), "2-D"),
        ("knn memory 0", lambda: knn_classify(x, y, x, y, memory_mb=0), "memory_mb"),
        ("search k 0", lambda: search_neighbors(x, x, k=0), "k=0"),
        ("search string features", lambda: search_neighbors(words[:, None], x, k=1), "numbers"),
        ("linear string labels", lambda: linear_probe(x, words, x, words), "strings"),
        ("linear weight decay -1", lambda: linear_probe(x, y, x, y, weight_decays=[-1.0]), "weight decay"),
        (
            "linear weight decay NaN",
            lambda: linear_probe(x, y, x, y, weight_decays=[math.nan]),
            "weight decay",
        ),
        ("linear max_iter 0", lambda: linear_probe(x, y, x, y, max_iter=0), "max_iter"),
        ("linear seed -1", lambda: linear_probe(x, y, x, y, seed=-1), "seed"),
        ("linear val_fraction NaN", lambda: linear_probe(x, y, x, y, val_fraction=math.nan), "val_fraction"),
        ("linear device cuda:99", lambda: linear_probe(x, y, x, y, device="cuda:99"), "CUDA"),
        ("clustering NaN features", lambda: cluster_metrics(nan, y), "NaN"),
        ("clustering string labels", lambda: cluster_metrics(x, words), "strings"),
        ("clustering niter 0", lambda: cluster_metrics(x, y, niter=0), "niter"),
        ("clustering seeds -1", lambda: cluster_metrics(x, y, seeds=[-1]), "seed"),
        ("clustering 0 clusters", lambda: cluster_metrics(x, y, n_clusters=0), "n_clusters"),
        ("scores NaN assignments", lambda: clustering_scores(np.full(20, np.nan), y), "NaN"),
        ("scores length mismatch", lambda: clustering_scores(y[:5], y), "5 cluster assignments"),
        ("hungarian string labels", lambda: hungarian_accuracy(y, words), "strings"),
        ("extract_features no identity", lambda: extract_features(object(), "digits", "test"), "identity"),
        ("evaluate k 0", lambda: evaluate("raw-pixels", "digits", EvalConfig(k=0)), "--k"),
        ("evaluate device", lambda: evaluate("raw-pixels", "digits", EvalConfig(device="tpu")), "device"),
        ("read_records damaged", lambda: read_records(_damaged_board()), "not a valid record"),
        ("write_records into a file", lambda: write_records([], __file__ + "/x"), "cannot write records"),
    ]


def _damaged_board():
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp())
    (folder / "digits.jsonl").write_text(
        '{"model": "m", "dataset": "digits", "protocol": "knn"}\n{"model": \n'
    )
    return folder


API = _api_rows()


@pytest.mark.parametrize(("call", "message"), [row[1:] for row in API], ids=[row[0] for row in API])
def test_a_bad_python_call_is_one_line(world, call, message):
    TRIED.append(str(call))
    with pytest.raises(SslzooError) as info:
        call()
    assert "\n" not in str(info.value)
    import re

    assert re.search(message, str(info.value)), str(info.value)


@pytest.fixture(scope="module", autouse=True)
def _report_how_many(request):
    yield
    # Printed in the run's summary by tests/conftest.py (output here would be captured).
    request.config.bad_inputs_tried = (len(TRIED), len(CLI), len(API))
