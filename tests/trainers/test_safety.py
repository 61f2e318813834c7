"""trainers.safety: finite weights only, one writer per run folder, options checked first, damaged checkpoints named."""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys

import pytest
import torch
from torch import nn

from trainers.config import TrainConfig
from trainers.methods import get_method, method_names
from trainers.metrics import MetricsLog
from trainers.safety import RunLock, check_finite, load_checkpoint, validate_train_options
from zoo.errors import SslzooError


def test_check_finite_sees_buffers_as_well_as_parameters():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    assert check_finite(net) == []
    net[1].running_var[0] = float("inf")  # what --lr 1e9 does while the loss can still look finite
    assert check_finite(net) == ["1.running_var"]
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    assert check_finite(net.state_dict()) == ["0.weight", "1.running_var"]


def test_a_second_writer_of_a_run_folder_is_refused_and_a_killed_holder_frees_it(tmp_path, capsys):
    import os
    import socket

    run = tmp_path / "run"
    with RunLock(run):
        with pytest.raises(SslzooError, match="in use by another training run") as info:
            RunLock(run).__enter__()
        assert "\n" not in str(info.value)
        assert f"(pid {os.getpid()} on {socket.gethostname()})" in str(info.value)
    assert (
        "took over" not in capsys.readouterr().err
    )  # a holder that ended cleanly leaves nothing to take over
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from trainers.safety import RunLock; held = RunLock({str(run)!r}).__enter__(); input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        for _ in range(600):  # until the child holds the lock
            try:
                with RunLock(run):
                    pass
            except SslzooError:
                break
            import time

            time.sleep(0.05)
        else:
            pytest.fail("the child never took the lock")
    finally:
        holder.kill()
        holder.wait()
    capsys.readouterr()
    with RunLock(run):  # the kernel released the dead process's lock: taken over, and said so
        pass
    err = capsys.readouterr().err
    assert f"took over {run / '.lock'}" in err and f"pid {holder.pid} on " in err and err.count("\n") == 1


def test_a_second_sslzoo_train_on_one_out_is_refused_in_one_line(tmp_path, capsys):
    from app.cli import main

    run = tmp_path / "run"
    with RunLock(run):  # what a first ``sslzoo train --out RUN`` holds while it trains
        code = main(
            ["train", "--method", "simclr", "--dataset", "digits", "--epochs", "1", "--out", str(run)]
        )
        assert [p.name for p in run.iterdir()] == [".lock"]  # the second one wrote nothing
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is in use by another training run (pid " in err


def test_a_run_that_stops_before_writing_leaves_no_folder(tmp_path):
    with pytest.raises(RuntimeError), RunLock(tmp_path / "new"):
        raise RuntimeError("bad dataset")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("method", method_names())
def test_every_methods_defaults_are_valid(method):
    validate_train_options(TrainConfig(method=method), get_method(method).Config())


@pytest.mark.parametrize(
    ("method", "change", "message"),
    [
        ("simclr", {"lr": -1.0}, "--lr must be more than 0"),
        ("simclr", {"lr": float("nan")}, "--lr"),
        ("simclr", {"image_size": -3}, "--image-size"),
        ("simclr", {"image_size": 0}, "--image-size"),
        ("simclr", {"log_every": 0}, "--log-every"),
        ("simclr", {"seed": -1}, "--seed"),
        ("simclr", {"warmup_epochs": -1.0}, "--warmup-epochs"),
        ("simclr", {"knn_max_train": 0}, "--knn-max-train"),
        ("simclr", {"arch_args": ("checkpoint_path=/tmp/x.pth",)}, "checkpoint_path"),
        ("simclr", {"temperature": 0.0}, "--temperature must be more than 0"),
        ("dino", {"n_local_crops": -1}, "--n-local-crops"),
        ("dino", {"teacher_temp": 0.0}, "--teacher-temp"),
        ("moco", {"momentum": 1.5}, "--momentum must be between 0 and 1"),
        ("deepcluster", {"k": 0}, "--k must be"),
    ],
)
def test_bad_options_are_one_line_before_training(method, change, message):
    cls = get_method(method).Config
    method_change = {k: v for k, v in change.items() if k in {f.name for f in dataclasses.fields(cls)}}
    cfg = TrainConfig(method=method, **{k: v for k, v in change.items() if k not in method_change})
    with pytest.raises(SslzooError, match=message) as info:
        validate_train_options(cfg, cls(**method_change))
    assert "\n" not in str(info.value)


class _Payload:
    def __reduce__(self):
        return (print, ("payload ran",))


def test_a_damaged_or_foreign_checkpoint_is_named_in_one_line(tmp_path, capsys):
    good = tmp_path / "good.pt"
    torch.save({"method": {"w": torch.ones(3)}, "epoch": 1}, good)
    assert load_checkpoint(good)["epoch"] == 1
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(SslzooError, match=r"cut\.pt is damaged"):
        load_checkpoint(cut)
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"method": _Payload()}))
    with pytest.raises(SslzooError, match="Python objects other than tensors"):
        load_checkpoint(evil)
    assert "payload ran" not in capsys.readouterr().out


def test_resume_tolerates_a_half_written_metrics_line(tmp_path):
    rows = [{"step": 10, "loss": 1.0}, {"step": 20, "loss": 0.9}]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 30, "lo'  # killed mid-append
    (tmp_path / "metrics.jsonl").write_text(text)
    log = MetricsLog(tmp_path, enabled=True)
    log.restore(upto_step=25)
    assert log.rows == rows
    assert (tmp_path / "metrics.jsonl").read_text() == "".join(json.dumps(r) + "\n" for r in rows)


def test_dinos_per_parameter_clip_can_be_switched_off_as_its_help_says():
    from trainers.methods.dino import DINOConfig
    from trainers.safety import validate_train_options

    validate_train_options(TrainConfig(method="dino"), DINOConfig(param_grad_clip=0.0))  # "0: off"
    with pytest.raises(SslzooError, match="--param-grad-clip must be at least 0"):
        validate_train_options(TrainConfig(method="dino"), DINOConfig(param_grad_clip=-1.0))
