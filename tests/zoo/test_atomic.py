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
