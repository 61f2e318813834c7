"""``--logger tensorboard``: the rows written to metrics.jsonl arrive in TensorBoard's event files, read back by
TensorBoard's own reader."""

from __future__ import annotations

import pytest

from trainers.loggers import make_logger
from zoo.errors import SslzooError

pytest.importorskip("tensorboard", reason="pip install -e .[dev] installs it")


def test_tensorboard_logger_writes_every_numeric_key_at_its_step(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = [
        {"step": 10, "epoch": 0.5, "loss": 4.25, "lr": 1e-3},
        {"step": 20, "epoch": 1.0, "loss": 3.5, "lr": 5e-4, "knn_acc": 0.8213},
    ]
    logger = make_logger("tensorboard", tmp_path)
    for row in rows:
        logger.log(row)
    logger.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert scalars["train/loss"] == [(10, 4.25), (20, 3.5)]
    assert scalars["train/epoch"] == [(10, 0.5), (20, 1.0)]
    assert [s for s, _ in scalars["train/lr"]] == [10, 20]
    ((step, knn),) = scalars["monitor/knn_top1_subset_pct"]
    assert step == 20 and knn == pytest.approx(82.13, abs=1e-4)  # percent, as the curves show it
    assert "train/step" not in scalars


def test_no_logger_and_an_unknown_one(tmp_path):
    assert make_logger("none", tmp_path) is None
    with pytest.raises(SslzooError, match="unknown --logger 'wandb'"):
        make_logger("wandb", tmp_path)


def test_a_run_with_logger_tensorboard_sends_every_metrics_row(tmp_path):
    from _tiny_runs import TINY, metrics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from trainers import train

    run = train(method="simclr", epochs=1, out=str(tmp_path / "run"), logger="tensorboard", **TINY)
    rows = [r for r in metrics(run) if "loss" in r]
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert len(rows) >= 3
    assert [s for s, _ in logged] == [r["step"] for r in rows]
    assert [v for _, v in logged] == pytest.approx([r["loss"] for r in rows], rel=1e-6)


TRACKIO_RUN = """
import json, sys
from _tiny_runs import TINY
from trainers import train

run = train(method="simclr", epochs=1, out=sys.argv[1], logger="trackio", **TINY)
from trackio.sqlite_storage import SQLiteStorage

print(json.dumps(SQLiteStorage.get_logs("sslzoo", run.name)))
"""


def test_a_run_with_logger_trackio_sends_every_metrics_row(tmp_path):
    """In a child process: trackio reads its store folder ($TRACKIO_DIR) once, at import."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from _tiny_runs import metrics

    pytest.importorskip("trackio", reason="pip install -e .[dev] installs it")
    here = Path(__file__).parent
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "PYTHONPATH": f"{here}:{os.getcwd()}"}
    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-c", TRACKIO_RUN, str(run)], env=env, capture_output=True, text=True, check=True
    ).stdout
    logged = json.loads(out.strip().splitlines()[-1])
    rows = [r for r in metrics(run) if "loss" in r]
    assert len(rows) >= 3
    assert [r["step"] for r in logged if "train/loss" in r] == [r["step"] for r in rows]
    assert [r["train/loss"] for r in logged if "train/loss" in r] == pytest.approx([r["loss"] for r in rows])
    assert (tmp_path / "trackio" / "sslzoo.db").is_file()
