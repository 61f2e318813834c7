"""SIGKILL in the middle of an export and of a leaderboard write: nothing finished is lost, nothing half-written is
read, and the next writer cleans up what the killed one left.

The child process runs the real command; a wrapper around ``zoo.atomic._publish`` (the one rename that makes a
write visible) announces the moment and waits to be killed, so the kill lands at a point we control: every file
of the new version written, none of it in place yet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import os, sys, time
import zoo.atomic as atomic

real_publish, marker = atomic._publish, sys.argv[1]

def publish(src, dst, exchange=False):  # the rename that makes a write visible: stop at the chosen one
    if os.path.basename(str(dst)) == sys.argv[2]:
        open(marker, "w").close()
        time.sleep(600)  # killed here
    return real_publish(src, dst, exchange)

atomic._publish = publish
from app.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _run_until_killed(tmp_path, target_name: str, argv: list[str]) -> None:
    marker = tmp_path / "at-the-rename"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(marker), target_name, *argv],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"the child ended before the rename: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the child never reached the rename")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def run(tmp_path):
    from _runs import save_tiny_run

    return save_tiny_run(tmp_path / "run")


def test_a_kill_during_an_export_keeps_the_earlier_export_and_the_next_export_cleans_up(tmp_path, run):
    from zoo import publish

    board = tmp_path / "board"
    earlier = publish.export_folder(run, tmp_path / "hub", repo_id="me/first")
    before = _tree(earlier)
    argv = ["export", str(run), "--out", "hub", "--repo", "me/second", "--leaderboard", str(board)]
    _run_until_killed(tmp_path, "hub", argv)

    assert _tree(tmp_path / "hub") == before  # readers still see the whole earlier export
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".hub-"))
    assert left, "the kill should have left the new export's temporary folder"
    again = publish.export_folder(run, tmp_path / "hub", repo_id="me/second")
    assert "me/second" in (again / "README.md").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hub-")]  # the killed writer's is gone


def test_a_kill_during_a_leaderboard_write_loses_no_record_and_leaves_none_twice(tmp_path, monkeypatch):
    from evaluators import Record, read_records, write_records

    board = tmp_path / "board"
    monkeypatch.setenv("SSLZOO_CACHE", str(tmp_path / "cache"))
    write_records([Record(model="kept", dataset="digits", protocol="knn", metrics={"top1": 90.0})], board)
    before = (board / "digits.jsonl").read_bytes()
    argv = ["eval", "raw-pixels", "digits", "--protocols", "knn", "--leaderboard", str(board)]
    _run_until_killed(tmp_path, "digits.jsonl", argv)

    assert (board / "digits.jsonl").read_bytes() == before
    assert [p.name for p in board.glob(".digits-*.jsonl")], "the kill should have left a temporary file"
    records = read_records(board)
    assert [r.model for r in records] == ["kept"]  # the temporary is not read as records (no duplicates)
    write_records([Record(model="next", dataset="digits", protocol="knn", metrics={"top1": 91.0})], board)
    assert not list(board.glob(".digits-*"))
    assert [json.loads(line)["model"] for line in (board / "digits.jsonl").read_text().splitlines()] == [
        "kept",
        "next",
    ]
