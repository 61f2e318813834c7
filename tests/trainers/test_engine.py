"""The engine's promises: resume after a crash equals an uninterrupted run, NaN stops cleanly, the CLI works."""

from __future__ import annotations

import pytest
import torch
from _tiny_runs import TINY, final_state, metrics

from app.cli import main as sslzoo
from trainers import train
from trainers.methods.moco import MoCo
from trainers.methods.simclr import SimCLR
from zoo.errors import SslzooError

# 2 epochs of 5 steps: the crash at step 7 falls in the middle of the second epoch.
RESUME = {**TINY, "batch_size": 256, "epochs": 2, "queue_size": 512, "checkpoint_every": 3}


def test_resume_after_a_crash_mid_epoch_reaches_the_same_weights(tmp_path, monkeypatch):
    reference = train("moco", out=str(tmp_path / "reference"), **RESUME)

    original = MoCo.on_after_step

    def crash_after_step_7(self, step):
        original(self, step)
        if (
            step.global_step == 6
        ):  # the 7th optimiser step has been applied; the last checkpoint is from step 6
            raise RuntimeError("killed")

    monkeypatch.setattr(MoCo, "on_after_step", crash_after_step_7)
    with pytest.raises(RuntimeError, match="killed"):
        train("moco", out=str(tmp_path / "crashed"), **RESUME)
    ckpt = torch.load(tmp_path / "crashed/checkpoints/last.pt", weights_only=True)
    assert (ckpt["global_step"], ckpt["epoch"], ckpt["step_in_epoch"]) == (6, 1, 1)

    monkeypatch.setattr(MoCo, "on_after_step", original)
    resumed = train("moco", out=str(tmp_path / "crashed"), **{**RESUME, "resume": True})

    want, got = final_state(reference), final_state(resumed)
    assert want.keys() == got.keys()
    for key in want:  # same seed on the CPU: bit-for-bit the same weights, queue and BN statistics
        assert torch.equal(want[key], got[key]), key
    steps = [r["step"] for r in metrics(resumed) if "loss" in r]
    assert steps == list(range(1, 11))  # the killed run's rows after step 6 were replaced, not duplicated


def test_resume_refuses_changed_options_and_fresh_runs_refuse_existing_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = {**TINY, "batch_size": 256, "epochs": 1}
    run = train("simclr", **options)  # no --out: runs/METHOD-DATASET
    assert run.resolve() == (tmp_path / "runs" / "simclr-digits").resolve()
    with pytest.raises(SslzooError, match="--resume"):
        train("simclr", **options)
    with pytest.raises(SslzooError, match="temperature"):
        train("simclr", resume=True, **{**options, "temperature": 0.5})
    # Resuming a finished run with the same options trains nothing more and keeps the export.
    assert train("simclr", resume=True, **options) == run
    assert (run / "encoder" / "model.safetensors").is_file()


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    original = SimCLR.training_step

    def nan_at_step_3(self, batch, step):
        loss = original(self, batch, step)
        return loss * float("nan") if step.global_step == 3 else loss

    monkeypatch.setattr(SimCLR, "training_step", nan_at_step_3)
    run = tmp_path / "nan"
    with pytest.raises(SslzooError, match=r"loss became nan at step 3 .* last good checkpoint"):
        train("simclr", out=str(run), **{**TINY, "epochs": 1, "checkpoint_every": 2})
    ckpt = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert ckpt["global_step"] == 2
    assert torch.isfinite(ckpt["method"]["backbone.features.0.weight"]).all()
    assert (run / "encoder" / "model.safetensors").is_file()


def test_cli_trains_and_rejects_options_of_another_method(tmp_path, capsys):
    out = tmp_path / "cli"
    common = ["--dataset", "digits", "--epochs", "1", "--batch-size", "256", "--image-size", "16"]
    common += ["--arch-args", "widths=(8,16,16,32)", "--no-progress", "--knn-every", "1", "--out", str(out)]
    assert sslzoo(["train", "--method", "byol", "--optimizer", "lars", "--lr", "0.2", *common]) == 0
    assert "encoder saved" in capsys.readouterr().out
    assert any("knn_acc" in r for r in metrics(out))
    assert (
        sslzoo(["train", "--method", "byol", "--temperature", "0.1", *common[:-1], str(tmp_path / "x")]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("sslzoo: error: unknown option(s) for method 'byol': --temperature")


def test_train_help_gives_each_method_its_own_default_of_a_shared_option(capsys):
    with pytest.raises(SystemExit):
        sslzoo(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    from trainers.methods.byol import BYOLConfig
    from trainers.methods.dino import DINOConfig

    # --momentum is listed under MoCo (first to define it); BYOL's and DINO's groups name their own default.
    for name, cfg in (("byol", BYOLConfig), ("dino", DINOConfig)):
        group = text.split(f"{name} options: (--method {name};")[1].split(")")[0]
        assert f"--momentum {cfg.momentum}" in group


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"arch": "no_such_net"}, "unknown architecture 'no_such_net'"),
        ({"arch_args": ("depth=3",)}, "--arch-args do not fit 'sslzoo_cnn4'"),
        ({"arch_args": ("widths",)}, "KEY=VALUE"),
        ({"batch_size": 5000}, "larger than the 1437 training images"),
        ({"dataset": "no-such-data"}, "unknown dataset"),
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"epochs": 0}, "--epochs must be at least 1"),
        pytest.param(
            {"amp": "fp16"},
            "--amp fp16 is for CUDA",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here"),
        ),
        pytest.param(
            {"device": "cuda"},
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here"),
        ),
    ],
)
def test_bad_options_fail_with_one_clear_line(options, message, tmp_path):
    with pytest.raises(SslzooError, match=message):
        train("simclr", out=str(tmp_path / "bad"), **{**TINY, "epochs": 1, **options})
    assert not (tmp_path / "bad" / "checkpoints").exists()


def test_cpu_bf16_autocast_and_channels_last_train_float32_weights_that_export(tmp_path):
    options = {**TINY, "batch_size": 256, "epochs": 1, "device": "cpu"}
    plain = final_state(train("simclr", out=str(tmp_path / "fp32"), **options))
    bf16_run = train("simclr", out=str(tmp_path / "bf16"), amp="bf16", **options)
    bf16 = final_state(bf16_run)
    fast_run = train("simclr", out=str(tmp_path / "fast"), amp="bf16", channels_last=True, **options)
    fast = final_state(fast_run)
    assert all(bf16[k].dtype == plain[k].dtype for k in plain)  # autocast: the weights stay float32
    conv = "backbone.features.4.weight"
    # Same seed and data: the bf16 products moved the weights a little, not far.
    assert not torch.equal(bf16[conv], plain[conv])
    assert (bf16[conv] - plain[conv]).norm() < 0.1 * plain[conv].norm()
    losses = {
        name: [r["loss"] for r in metrics(run) if "loss" in r]
        for name, run in [("a", bf16_run), ("b", fast_run)]
    }
    assert all(abs(a - b) < 0.05 for a, b in zip(losses["a"], losses["b"]))
    assert (fast[conv] - bf16[conv]).norm() < 0.1 * bf16[conv].norm()  # the layout changes no arithmetic much
    import zoo

    enc = zoo.load(str(fast_run))  # channels-last weights are exported as ordinary safetensors
    assert enc.embed(torch.rand(3, 1, 8, 8)).shape == (3, 32)
