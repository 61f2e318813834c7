"""No host sync in the hot loop except at logging steps (issue 25): on a GPU, every ``float(loss)``,
``.item()``, ``bool(mask.any())`` or ``.cpu()`` waits for all queued kernels, so the loop reads the device only
where it writes a ``metrics.jsonl`` row (and at checkpoints).

The count is taken on the CPU, where reads are free but still visible: the ways a tensor reaches the host are
patched on ``torch.Tensor`` and every call made from the ``trainers`` package is counted against the step it
happens in. Not counted: calls inside PyTorch (Adam's step counter lives on the CPU anyway) and the input
pipeline (``sources``, ``views``, ``loader``: it cuts crops from host images, in DataLoader workers on a GPU).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from _tiny_runs import SMALL, TINY, metrics

from trainers import engine, train
from trainers.methods.simclr import SimCLR
from zoo.errors import SslzooError

TRAINERS = str(Path(engine.__file__).resolve().parent)
HOST_PIPELINE = tuple(f"{TRAINERS}/{name}.py" for name in ("sources", "views", "loader"))
READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__", "__format__")
LOG_EVERY = 5
OPTIONS = {**TINY, "epochs": 1, "batch_size": 128, "log_every": LOG_EVERY, "checkpoint_every": 0}


def count_reads(monkeypatch) -> Counter:
    """Patch the tensor → host reads; return a Counter of our reads by step (the step a read belongs to is
    ``global_step`` after it: its own logging row is written under that number)."""
    reads: Counter = Counter()
    current = {"step": 0}
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(TRAINERS) and not caller.startswith(HOST_PIPELINE):
                reads[current["step"]] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    real_step = engine.Trainer._step

    def step(self, views, info, epoch):
        current["step"] = info.global_step + 1
        return real_step(self, views, info, epoch)

    monkeypatch.setattr(engine.Trainer, "_step", step)
    return reads


def logging_steps(rows: list[dict]) -> set[int]:
    return {row["step"] for row in rows}


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "samples_per_s"} for row in rows]


@pytest.mark.parametrize("method", ["simclr", "moco", "byol", "dino"])
def test_a_gpu_run_reads_the_device_only_at_logging_steps(method, tmp_path, monkeypatch):
    # The GPU's loop (host_reads_deferred), run on the CPU so its reads can be counted.
    monkeypatch.setattr(engine, "host_reads_deferred", lambda device: True)
    reads = count_reads(monkeypatch)
    run = train(method, out=str(tmp_path / method), **OPTIONS, **SMALL[method])
    rows = metrics(run)
    steps = max(r["step"] for r in rows)
    quiet = [s for s in range(1, steps + 1) if s not in logging_steps(rows)]
    assert len(quiet) >= steps // 2  # most steps do not log
    assert {s: reads[s] for s in quiet} == dict.fromkeys(quiet, 0)
    assert all(reads[s] > 0 for s in logging_steps(rows))  # where a row is written, the values are read


def test_logging_steps_write_the_same_rows_whether_reads_are_deferred_or_not(tmp_path, monkeypatch):
    method = "dino"  # its logs are device tensors (teacher_entropy, kl)
    now = comparable(metrics(train(method, out=str(tmp_path / "cpu"), **OPTIONS, **SMALL[method])))
    monkeypatch.setattr(engine, "host_reads_deferred", lambda device: True)
    deferred = comparable(metrics(train(method, out=str(tmp_path / "gpu"), **OPTIONS, **SMALL[method])))
    assert deferred == now
    assert {"teacher_entropy", "kl", "loss"} <= set(now[0])
    assert all(isinstance(v, float | int) for row in now for v in row.values())


def test_a_cpu_run_reads_one_value_per_step_the_loss_check_before_the_weights_change(tmp_path, monkeypatch):
    reads = count_reads(monkeypatch)
    rows = metrics(train("simclr", out=str(tmp_path / "run"), **OPTIONS))
    quiet = [s for s in range(1, rows[-1]["step"] + 1) if s not in logging_steps(rows)]
    assert quiet and {s: reads[s] for s in quiet} == dict.fromkeys(quiet, 1)


def test_a_deferred_non_finite_loss_stops_before_the_next_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "host_reads_deferred", lambda device: True)
    original = SimCLR.training_step

    def nan_at_step_3(self, batch, step):
        loss = original(self, batch, step)
        return loss * float("nan") if step.global_step == 3 else loss

    monkeypatch.setattr(SimCLR, "training_step", nan_at_step_3)
    run = tmp_path / "nan"
    options = {**OPTIONS, "batch_size": 64, "checkpoint_every": 2, "log_every": 100}
    with pytest.raises(
        SslzooError, match=r"loss became nan at step 3 .* stopped at step 4, .* last good checkpoint"
    ):
        train("simclr", out=str(run), **options)
    ckpt = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert ckpt["global_step"] == 2
    assert torch.isfinite(ckpt["method"]["backbone.features.0.weight"]).all()
    assert all(row["step"] < 4 for row in metrics(run)) if (run / "metrics.jsonl").exists() else True
