"""Atomic writes: a failure midway leaves the old content whole and no temporary files behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zoo.atomic import (
    atomic_file,
    atomic_folder,
    save_figure_atomic,
    save_npy_atomic,
    write_json_atomic,
    write_lines_atomic,
)


def test_atomic_folder_replaces_the_old_folder_whole(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_folder(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").exists()  # readers see the old folder until the end
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failure_inside_keeps_the_old_folder_and_cleans_up(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_keep_an_existing_folder_when_asked(tmp_path):
    target = tmp_path / "cache"
    with atomic_folder(target, replace_existing=False) as tmp:
        target.mkdir()  # another process finished first
        (target / "theirs.txt").write_text("theirs")
        (tmp / "ours.txt").write_text("ours")
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_json_and_npy_round_trip_without_leftovers(tmp_path):
    write_json_atomic(tmp_path / "a" / "r.json", {"x": 1, "p": tmp_path})
    assert json.loads((tmp_path / "a" / "r.json").read_text()) == {"x": 1, "p": str(tmp_path)}
    save_npy_atomic(tmp_path / "f.npy", np.arange(5))
    assert np.array_equal(np.load(tmp_path / "f.npy"), np.arange(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "f.npy"]


def test_save_figure_writes_a_png_closes_the_figure_and_leaves_nothing_else(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure_atomic(fig, tmp_path / "plots" / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["curve.png"]


def test_a_failed_file_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_lines_atomic(path, ["a\n", "b\n"])
    with pytest.raises(RuntimeError, match="killed"), atomic_file(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "a\nb\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


def _dead_pid() -> int:
    """The id of a process that has exited (a killed writer)."""
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_killed_writers_temporaries_are_removed_by_the_next_writer_and_live_ones_kept(tmp_path):
    import os

    dead, live = _dead_pid(), os.getppid()
    stale = tmp_path / f".digits-{dead}-abcd1234.jsonl"
    running = tmp_path / f".digits-{live}-abcd1234.jsonl"
    stale_dir = tmp_path / f".encoder-{dead}-x1y2z3w4"
    other = tmp_path / ".digits-notes.jsonl"  # not a name we make
    for path in (stale, running, other):
        path.write_text("half")
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_bytes(b"half")
    write_lines_atomic(tmp_path / "digits.jsonl", ["a\n"])
    with atomic_folder(tmp_path / "encoder") as tmp:
        (tmp / "config.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["digits.jsonl", "encoder", running.name, other.name]
    )


def test_a_kill_between_the_two_renames_gives_the_old_folder_back(tmp_path):
    from zoo.atomic import clean_stale

    aside = tmp_path / f".out-{_dead_pid()}-old"  # the old folder, moved aside; the new one never arrived
    aside.mkdir()
    (aside / "old.txt").write_text("old")
    assert clean_stale(tmp_path / "out") == [aside]
    assert (tmp_path / "out" / "old.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_and_folders_get_the_modes_the_umask_gives(tmp_path, umask):
    import os
    import stat

    import torch
    from safetensors.torch import save_file

    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "r.json", {"x": 1})
        with atomic_folder(tmp_path / "hub") as tmp:
            save_file({"w": torch.zeros(2)}, tmp / "model.safetensors")  # safetensors itself writes 0600
            (tmp / "sub").mkdir()
    finally:
        os.umask(old)

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(tmp_path / "r.json") == 0o666 & ~umask
    assert mode(tmp_path / "hub") == mode(tmp_path / "hub" / "sub") == 0o777 & ~umask
    assert mode(tmp_path / "hub" / "model.safetensors") == 0o666 & ~umask


def test_a_replaced_file_keeps_its_mode(tmp_path):
    import os
    import stat

    path = tmp_path / "leaderboard.jsonl"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    write_lines_atomic(path, ["new\n"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_text() == "new\n"
