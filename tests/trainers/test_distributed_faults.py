"""Two ranks that do not share a file system, and ranks that fail: what a GPU cluster does on the first try.

Each rank is a real ``sslzoo train`` process joined over gloo on 127.0.0.1, launched the way ``torchrun`` launches
its workers (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``PORT`` in the environment) from its own working folder with
the same relative ``--out run``: two nodes, each with its own disk. A small driver the test writes stops, poisons or
slows a chosen rank at a chosen step; the library has no test hooks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _tiny_runs import final_state, tiny_train_argv

from trainers.safety import check_finite, load_checkpoint

REPO = Path(__file__).resolve().parents[2]
WORLD = 2

# The real CLI, with what the test asks of it through SSLZOO_TEST_* variables (read only by this driver).
DRIVER = """
import os, sys, time
import torch
import trainers.engine as engine

rank, env = int(os.environ["RANK"]), os.environ.get
real_save, real_step = engine.Trainer._save_checkpoint, engine.Trainer._step

def save(self, epoch, pos, order):
    if env("SSLZOO_TEST_INF_AT") == str(self.global_step) and rank == 0:
        bn = next(m for m in self.method.modules() if isinstance(m, torch.nn.BatchNorm2d))
        bn.running_var[0] = float("inf")  # one rank's batch statistics overflowed
    real_save(self, epoch, pos, order)
    if env("SSLZOO_TEST_STOP_AT") == str(self.global_step):
        raise SystemExit(3)  # every rank stops here, after this checkpoint
    if env("SSLZOO_TEST_DIE_AT") == str(self.global_step) and rank == 1 and env("TORCHELASTIC_RESTART_COUNT", "0") == "0":
        os._exit(1)  # this worker crashes (the first time only)

def step(self, views, info, epoch):
    out = real_step(self, views, info, epoch)
    mark = env("SSLZOO_TEST_MARK_AFTER")
    if mark and info.global_step >= int(mark):
        open(env("SSLZOO_TEST_MARKER"), "w").close()
        time.sleep(0.2)  # slow enough for the test to act mid-run
    return out

engine.Trainer._save_checkpoint, engine.Trainer._step = save, step
from app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _argv(*extra: str) -> list[str]:
    argv = [*tiny_train_argv("run", 1), "--checkpoint-every", "4"]
    return [*argv, "--device", "cpu", "--dist-timeout", "20", *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**test_vars: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSLZOO_TEST_", "TORCHELASTIC_"))}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", **test_vars)
    return env


def _nodes(root: Path, argv: list[str], **test_vars: str) -> list[subprocess.Popen]:
    """Start rank r in ``root/node{r}`` (its own disk), as torchrun would start it."""
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    port, procs = _free_port(), []
    for r in range(WORLD):
        (root / f"node{r}").mkdir(parents=True, exist_ok=True)
        env = _env(**test_vars)
        env.update(RANK=str(r), LOCAL_RANK="0", WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1")
        env.update(MASTER_PORT=str(port), LOCAL_WORLD_SIZE="1", GROUP_RANK=str(r))
        procs.append(
            subprocess.Popen(
                [sys.executable, str(driver), *argv],
                cwd=root / f"node{r}",
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def _finish(procs: list[subprocess.Popen], timeout: float = 150) -> list[tuple[int, str]]:
    out = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=timeout)
            out.append((p.returncode, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return out


def _sslzoo_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("sslzoo:")]


def _same_weights(want: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> None:
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The final weights of the two-rank run that nothing stops."""
    root = tmp_path_factory.mktemp("uninterrupted")
    results = _finish(_nodes(root, _argv()))
    assert [rc for rc, _ in results] == [0, 0], results[0][1][-3000:] + results[1][1][-3000:]
    return final_state(root / "node0" / "run")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_resume_on_node_local_disks_reaches_the_weights_of_an_uninterrupted_run(tmp_path, uninterrupted):
    stopped = _finish(_nodes(tmp_path, _argv(), SSLZOO_TEST_STOP_AT="8"))
    assert [rc for rc, _ in stopped] == [3, 3], stopped[0][1][-3000:]
    assert (tmp_path / "node0" / "run" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "node1" / "run").exists()  # rank 1's disk holds nothing: only rank 0 writes

    resumed = _finish(_nodes(tmp_path, _argv("--resume")))
    assert [rc for rc, _ in resumed] == [0, 0], resumed[0][1][-3000:] + resumed[1][1][-3000:]
    _same_weights(uninterrupted, final_state(tmp_path / "node0" / "run"))


@pytest.mark.timeout(120)
def test_resume_with_no_checkpoint_anywhere_is_one_line(tmp_path, capsys):
    from app.cli import main

    assert main(_argv("--resume", "--out", str(tmp_path / "nothing-here"))) == 2
    lines = _sslzoo_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "holds no checkpoint" in lines[0], lines
    assert not (tmp_path / "nothing-here").exists()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_infinite_buffer_on_one_rank_stops_every_rank_with_the_same_line(tmp_path):
    results = _finish(_nodes(tmp_path, _argv(), SSLZOO_TEST_INF_AT="8"))
    lines = [_sslzoo_lines(err) for _, err in results]
    assert [rc for rc, _ in results] == [2, 2], results[0][1][-3000:] + results[1][1][-3000:]
    assert all(len(found) == 1 for found in lines), lines
    assert lines[0] == lines[1]
    assert "NaN or infinite by step 8 on rank 0" in lines[0][0] and "running_var" in lines[0][0]
    assert "(step 4)" in lines[0][0]  # the checkpoint kept
    kept = load_checkpoint(tmp_path / "node0" / "run" / "checkpoints" / "last.pt")
    assert kept["global_step"] == 4 and not check_finite(kept["method"])


def _start_and_wait_mid_run(tmp_path: Path, *extra: str) -> list[subprocess.Popen]:
    marker = tmp_path / "past-step-5"
    procs = _nodes(tmp_path, _argv(*extra), SSLZOO_TEST_MARK_AFTER="5", SSLZOO_TEST_MARKER=str(marker))
    deadline = time.monotonic() + 120
    while not marker.exists():
        for p in procs:
            if p.poll() is not None:
                err = p.stderr.read()
                _finish(procs, timeout=30)
                pytest.fail(f"a rank ended before step 5: {err[-3000:]}")
        if time.monotonic() > deadline:
            _finish(procs, timeout=1)
            pytest.fail("the ranks never reached step 5")
        time.sleep(0.05)
    return procs


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_rank_stops_the_other_in_one_line_and_resume_reaches_the_uninterrupted_weights(
    tmp_path, uninterrupted
):
    procs = _start_and_wait_mid_run(tmp_path)
    procs[1].send_signal(signal.SIGKILL)
    start = time.monotonic()
    (rc, err), _ = _finish(procs, timeout=60)
    assert time.monotonic() - start < 20  # --dist-timeout 20 bounds it; gloo sees the closed socket at once
    lines = _sslzoo_lines(err)
    assert rc == 2 and len(lines) == 1 and "lost the other ranks" in lines[0] and "--resume" in lines[0], err
    kept = load_checkpoint(tmp_path / "node0" / "run" / "checkpoints" / "last.pt")
    assert kept["global_step"] >= 4 and not check_finite(kept["method"])
    assert not (tmp_path / "node0" / "run" / ".lock").exists()

    resumed = _finish(_nodes(tmp_path, _argv("--resume")))
    assert [rc for rc, _ in resumed] == [0, 0], resumed[0][1][-3000:] + resumed[1][1][-3000:]
    _same_weights(uninterrupted, final_state(tmp_path / "node0" / "run"))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_hung_rank_stops_the_other_after_dist_timeout(tmp_path):
    procs = _start_and_wait_mid_run(tmp_path, "--dist-timeout", "10")
    procs[1].send_signal(signal.SIGSTOP)  # alive but silent: only the timeout can tell
    start = time.monotonic()
    try:
        _, err = procs[0].communicate(timeout=60)
    finally:
        procs[1].kill()
        _finish(procs, timeout=10)
    assert time.monotonic() - start < 30
    lines = _sslzoo_lines(err)
    assert procs[0].returncode == 2 and len(lines) == 1, err
    assert "did not answer within --dist-timeout 10 s" in lines[0] and "Timed out" in lines[0], lines


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_elastic_restart_resumes_from_the_checkpoint(tmp_path, uninterrupted):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD)]
    cmd += ["--max-restarts", "1", "--monitor-interval", "0.5", str(driver), *_argv()]
    done = subprocess.run(
        cmd, cwd=tmp_path, env=_env(SSLZOO_TEST_DIE_AT="8"), capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # Restarted without --resume, it continued from step 8's checkpoint rather than refusing or starting over.
    _same_weights(uninterrupted, final_state(tmp_path / "run"))
    steps = [
        int(line.split('"step": ')[1].split(",")[0]) for line in (tmp_path / "run" / "metrics.jsonl").open()
    ]
    assert steps == list(range(1, 23))
