"""``--resume --epochs N`` continues a run's schedule (trainers/extensions.py): re-planned, and recorded."""

from __future__ import annotations

import json

import pytest
import torch
from _tiny_runs import TINY, metrics, tiny_train_argv

from app.cli import main
from trainers import train
from trainers.schedules import cosine_schedule
from zoo.errors import SslzooError

STEPS = 1437 // TINY["batch_size"]  # digits' train split at batch 64: 22 steps an epoch
WARMUP = round(TINY["warmup_epochs"] * STEPS)
LR = {"lr": 0.01, "min_lr": 0.001}


def _config(run) -> dict:
    return json.loads((run / "train_config.json").read_text())


def test_a_finished_run_extended_follows_the_longer_plan_and_records_it(tmp_path, capsys):
    out = str(tmp_path / "run")
    run = train("simclr", out=out, epochs=1, **LR, **TINY)
    assert _config(run)["extensions"] == []
    # The 1-epoch plan ended at min_lr.
    assert metrics(run)[-1]["lr"] == pytest.approx(cosine_schedule(STEPS - 1, STEPS, 0.01, 0.001, WARMUP))

    capsys.readouterr()
    train("simclr", out=out, resume=True, epochs=2, **LR, **TINY)
    said = capsys.readouterr().err
    assert "from 1 to 2 epochs at step 22" in said and "re-planned" in said

    rows = [r for r in metrics(run) if "lr" in r]
    assert [r["step"] for r in rows] == list(range(1, 2 * STEPS + 1))  # every step once, none repeated
    ckpt = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2 * STEPS
    # Re-planned: from the resumed step on, the lr is the 2-epoch cosine's (the lr logged with step s drove s - 1);
    # continuing the 1-epoch plan would have stayed at min_lr.
    for r in rows[STEPS:]:
        assert r["lr"] == pytest.approx(cosine_schedule(r["step"] - 1, 2 * STEPS, 0.01, 0.001, WARMUP))
    assert rows[STEPS]["lr"] > 0.006  # step 22 of 44 (18 of 40 after warm-up): mid-cosine, not 0.001

    (extension,) = _config(run)["extensions"]
    assert {k: extension[k] for k in ("from_epochs", "to_epochs", "at_step", "at_epoch", "total_steps")} == {
        "from_epochs": 1,
        "to_epochs": 2,
        "at_step": STEPS,
        "at_epoch": 1.0,
        "total_steps": 2 * STEPS,
    }
    assert extension["schedule"].startswith("re-planned") and extension["time"].endswith("Z")

    # Resuming the finished 2-epoch run again changes nothing and keeps the record.
    train("simclr", out=out, resume=True, epochs=2, **LR, **TINY)
    assert len(_config(run)["extensions"]) == 1 and len(metrics(run)) == len(rows)


def test_fewer_epochs_than_done_is_one_line(tmp_path, capsys):
    out = str(tmp_path / "run")
    train("simclr", out=out, epochs=2, **TINY)
    with pytest.raises(SslzooError) as info:  # Python speaks Python
        train("simclr", out=out, resume=True, epochs=1, **TINY)
    assert "epochs=1 is fewer than the 2 epochs" in str(info.value) and "epochs=2 or more" in str(info.value)

    capsys.readouterr()
    assert main([*tiny_train_argv(out, 1), "--resume"]) == 2  # the command line speaks flags
    err = capsys.readouterr().err.strip()
    assert err.startswith("sslzoo: error: --epochs 1 is fewer than the 2 epochs") and "\n" not in err
    assert "--epochs 2 or more" in err and "--out" in err
