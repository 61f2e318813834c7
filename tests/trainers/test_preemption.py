"""SIGTERM is a preemption: the run writes the checkpoint of the next step boundary, exits with status 143, and
``--resume`` reaches the same weights as a run that was never stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from _tiny_runs import TINY, final_state, tiny_train_argv

from trainers import train
from trainers.engine import PREEMPTED_EXIT

REPO = Path(__file__).resolve().parents[2]
OPTIONS = {**TINY, "epochs": 2}

# The real `sslzoo train`, with each step after the third slowed down and announced, so the signal lands mid-epoch.
CHILD = """
import sys, time
import trainers.engine as engine

real_step, marker = engine.Trainer._step, sys.argv[1]

def step(self, views, info, epoch):
    out = real_step(self, views, info, epoch)
    if info.global_step >= 3:
        open(marker, "w").close()
        time.sleep(0.2)
    return out

engine.Trainer._step = step
from app.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _argv(out: Path) -> list[str]:
    return tiny_train_argv(str(out), 2)


def test_sigterm_checkpoints_at_the_next_step_and_resume_matches_an_uninterrupted_run(tmp_path):
    run, marker = tmp_path / "run", tmp_path / "stepped"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(marker), *_argv(run)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the child never reached step 3"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == PREEMPTED_EXIT == 143, err
    lines = [line for line in err.splitlines() if line.startswith("sslzoo:")]
    assert len(lines) == 1 and "stopped by SIGTERM" in lines[0] and "--resume" in lines[0], err
    ckpt = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert (
        ckpt["epoch"] == 0 and 3 <= ckpt["step_in_epoch"] < 22
    )  # mid-epoch: a step boundary, not an epoch's
    assert not (run / ".lock").exists()

    train("simclr", out=str(run), resume=True, **OPTIONS)
    reference = train("simclr", out=str(tmp_path / "reference"), **OPTIONS)
    want, got = final_state(reference), final_state(run)
    for key in want:
        assert torch.equal(want[key], got[key]), key
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 45))  # every step once: nothing lost, nothing twice
