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
    "simclr": {},
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
