"""Two gloo processes under torchrun train exactly what one process trains with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from _tiny_runs import final_state, metrics

from trainers import train

# A ViT without batch norm: per-rank BN statistics are the one thing that may differ between 1 and 2 processes
# (PyTorch's SyncBatchNorm has no CPU kernel). Negatives (SimCLR) and the centre (DINO) must match exactly.
VIT = {
    "dataset": "digits",
    "arch": "sslzoo_vit_tiny_patch4",
    "arch_args": ("embed_dim=32", "depth=1", "num_heads=2"),
    "image_size": 16,
    "batch_size": 384,  # 3 steps: float noise (1e-8 after one step) roughly doubles with each further step
    "epochs": 1,
    "warmup_epochs": 0.5,
    # SGD, not AdamW: Adam divides by √v and turns float noise in near-zero gradients (the attention key bias
    # has an exactly zero one) into full-size updates, which hides real differences behind a loose tolerance.
    "optimizer": "sgd",
    "lr": 0.05,
    "knn_every": 0,
    "log_every": 1,
    "progress": False,
}
METHODS = {
    # No BatchNorm anywhere (a ViT; SimCLR's head without its BN): BN normalises per rank unless --sync-bn (CUDA).
    "simclr": {"proj_bn": False},
    "dino": {"out_dim": 64, "n_local_crops": 2, "freeze_last_layer_epochs": 0, "momentum": 0.99},
    "moco": {"queue_size": 256},
}


def _cli_args(options: dict) -> list[str]:
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, tuple):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return args


@pytest.mark.parametrize("method", ["simclr", "dino", pytest.param("moco", marks=pytest.mark.slow)])
def test_two_gloo_processes_match_one_process(method, tmp_path):
    options = {**VIT, **METHODS[method]}
    single = train(method, out=str(tmp_path / "one"), **options)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "app.cli", "train", "--method", method, "--out", str(tmp_path / "two"), "--device", "cpu"]
    done = subprocess.run(cmd + _cli_args(options), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    losses_one = [r["loss"] for r in metrics(single) if "loss" in r]
    losses_two = [r["loss"] for r in metrics(tmp_path / "two") if "loss" in r]
    assert len(losses_one) == 3
    assert losses_two == pytest.approx(losses_one, rel=1e-5)
    one, two = final_state(single), final_state(tmp_path / "two")
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)


# --amp auto on GPUs, with torch.cuda mocked (no GPU here): bf16 only where it is native (sm_80+), else fp16.
def _gpu(monkeypatch, native_bf16: bool) -> torch.device:
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation or native_bf16
    )
    return torch.device("cuda", 0)


@pytest.mark.parametrize(("native_bf16", "want"), [(False, torch.float16), (True, torch.bfloat16)])
def test_amp_auto_takes_bf16_only_where_the_gpu_has_it_natively(monkeypatch, native_bf16, want):
    from trainers.distributed import amp_dtype

    device = _gpu(monkeypatch, native_bf16)  # False: a V100 or T4, where bf16 is emulated
    assert amp_dtype("auto", device) == want
    assert amp_dtype("bf16", device) == torch.bfloat16 and amp_dtype("fp16", device) == torch.float16


@pytest.mark.parametrize(("capability", "want"), [((7, 0), torch.float16), ((8, 0), torch.bfloat16)])
def test_amp_auto_reads_the_compute_capability_where_torch_cannot_leave_out_emulation(
    monkeypatch, capability, want
):
    from trainers.distributed import amp_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)  # an older torch: emulation counts
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert amp_dtype("auto", torch.device("cuda", 0)) == want


@pytest.mark.parametrize(
    ("checkpoint", "want"),
    [
        ({"amp_dtype": "bfloat16", "scaler": {}}, torch.bfloat16),  # started on an A100, resumed on a V100
        ({"amp_dtype": "float16", "scaler": {"scale": 65536.0}}, torch.float16),
        ({"amp_dtype": None, "scaler": {}}, None),
        ({"scaler": {}}, torch.bfloat16),  # written before the dtype was recorded: no scale, so not fp16
        ({"scaler": {"scale": 1024.0, "_growth_tracker": 3}}, torch.float16),
    ],
)
def test_a_resumed_run_keeps_the_autocast_dtype_it_started_with(monkeypatch, checkpoint, want):
    from trainers.distributed import amp_dtype, resumed_amp_dtype

    device = _gpu(monkeypatch, native_bf16=False)
    here = amp_dtype("auto", device)
    assert here == torch.float16
    kept = resumed_amp_dtype(here, checkpoint, device)
    assert kept == want
    # The engine's GradScaler is enabled for fp16 only: it must find a state to load exactly then (an enabled
    # scaler given a bf16 run's empty state raised in load_state_dict).
    assert (kept == torch.float16) == bool(checkpoint["scaler"])


def test_an_fp16_run_is_not_resumed_on_a_cpu():
    from trainers.distributed import resumed_amp_dtype
    from zoo.errors import SslzooError

    with pytest.raises(SslzooError, match=r"fp16 .* resume it on a GPU"):
        resumed_amp_dtype(None, {"amp_dtype": "float16", "scaler": {"scale": 2.0}}, torch.device("cpu"))


@pytest.mark.timeout(120)
def test_the_resolved_autocast_dtype_is_recorded_in_the_checkpoint_and_the_run_config(tmp_path):
    import json

    from _tiny_runs import TINY

    run = train(
        "simclr", out=str(tmp_path / "run"), **{**TINY, "batch_size": 256, "amp": "auto", "epochs": 1}
    )
    ckpt = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert "amp_dtype" in ckpt and ckpt["amp_dtype"] is None  # auto on a CPU: no autocast
    assert json.loads((run / "train_config.json").read_text())["resolved"]["amp_dtype"] is None
    assert json.loads((run / "train_config.json").read_text())["train"]["dist_timeout"] == 1800.0
