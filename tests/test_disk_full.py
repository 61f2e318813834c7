"""A full disk while writing a checkpoint, an export, a feature cache, a leaderboard record or an app tile: the
previous file stays byte for byte, no temporary is left, and the error is one line naming the path and the space.

The disk fills by a patched writer: every file opened for writing whose path contains a chosen part raises
``OSError(ENOSPC)`` at its n-th ``write`` (safetensors writes from Rust, so its ``save_file`` is patched to write
half a file and raise what it raises on a full disk). One test fills a real small file system (tmpfs, mounted with
``size=``) where the test runs as root and may mount one.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "trainers"))

from _tiny_runs import TINY, final_state, metrics, tiny_train_argv  # noqa: E402

from zoo.disk_full import DiskFullError  # noqa: E402


class _FillingFile:
    """A file opened for writing whose ``write`` number ``at`` (counted over all such files) finds the disk full."""

    def __init__(self, f, counter: list[int], at: int) -> None:
        self._f, self._counter, self._at = f, counter, at

    def write(self, data):
        self._counter[0] += 1
        if self._counter[0] >= self._at:
            # Like a real full disk: part of the data reached the file before the error.
            self._f.write(data[: len(data) // 2])
            self._f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self._f.name))
        return self._f.write(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def fill_disk(monkeypatch, part: str, at: int = 1) -> list[int]:
    """From now on, files opened for writing with ``part`` in their path fail at write number ``at``."""
    real_open, counter = io.open, [0]

    def opener(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        name = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else str(file)  # os.fdopen
        if any(c in mode for c in "wax+") and part in name:
            return _FillingFile(f, counter, at)
        return f

    monkeypatch.setattr(io, "open", opener)
    monkeypatch.setattr(builtins, "open", opener)
    return counter


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (or the file itself) with its bytes, and the names in its parent folder."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    state = {str(p.relative_to(path.parent)): p.read_bytes() for p in files}
    state["<folder>"] = "\n".join(sorted(p.name for p in path.parent.iterdir())).encode()
    return state


def assert_one_line_naming(exc: BaseException, path: Path) -> None:
    text = str(exc)
    assert "\n" not in text and f"writing {path}:" in text, text
    assert "free" in text and "unchanged" in text, text


# ------------------------------------------------------------------------------------------------ leaderboard
@pytest.mark.parametrize("at", [1, 2])
def test_a_leaderboard_record_that_does_not_fit_leaves_the_records_as_they_were(tmp_path, monkeypatch, at):
    from evaluators.records import Record, read_records, write_records

    def record(model):
        return Record(model=model, dataset="digits", protocol="knn", metrics={"top1": 90.0}, details={})

    files = write_records([record(f"m{i}") for i in range(3)], tmp_path)
    before = snapshot(files[0])
    fill_disk(monkeypatch, "/.digits-", at=at)
    with pytest.raises(DiskFullError) as caught:
        write_records([record("new")], tmp_path)
    assert_one_line_naming(caught.value, files[0])
    assert snapshot(files[0]) == before
    monkeypatch.undo()
    assert [r.model for r in read_records(tmp_path)] == ["m0", "m1", "m2"]


# ------------------------------------------------------------------------------------------------ export
def _export(folder: Path, seed: int) -> Path:
    import timm

    import zoo
    import zoo.architectures  # registers sslzoo_cnn4 with timm

    torch.manual_seed(seed)
    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0, widths=(8, 8, 8, 8))
    return zoo.save_encoder(
        net, folder, model_args={"in_chans": 1, "widths": [8, 8, 8, 8]}, metadata={"seed": seed}
    )


def test_an_export_whose_weights_do_not_fit_leaves_the_previous_export(tmp_path, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    folder = _export(tmp_path / "encoder", seed=0)
    before = snapshot(folder)

    def save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 4096)  # what reached the disk before it filled
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    with pytest.raises(DiskFullError) as caught:
        _export(folder, seed=1)
    assert_one_line_naming(caught.value, folder)
    assert "about" in str(caught.value)  # sized by the previous export
    assert snapshot(folder) == before


def test_an_export_whose_sslzoo_json_does_not_fit_leaves_the_previous_export(tmp_path, monkeypatch):
    folder = _export(tmp_path / "encoder", seed=0)
    before = snapshot(folder)
    fill_disk(monkeypatch, ".sslzoo-", at=1)
    with pytest.raises(DiskFullError) as caught:
        _export(folder, seed=1)
    assert_one_line_naming(caught.value, folder)
    assert snapshot(folder) == before


# ------------------------------------------------------------------------------------------------ feature cache
class StandIn:
    """An encoder with what the memory-mapped path needs: ``feature_dim`` and ``embed(..., out=)``."""

    identity = "stand-in@sha256:0"
    transform = "ToTensor()"

    def feature_dim(self, kind="default"):
        return 2

    def embed(self, images, batch_size=256, progress=False, out=None):
        import zoo

        arrays, _ = zoo.to_arrays(images)
        flat = torch.from_numpy(np.asarray(arrays, dtype=np.float32).reshape(len(arrays), -1))
        feats = torch.stack([flat.mean(1), flat.amax(1)], dim=1)
        if out is None:
            return feats
        out[:] = feats.numpy()
        return out


@pytest.mark.parametrize("large", [False, True], ids=["in-memory", "memory-mapped"])
def test_a_feature_cache_entry_that_does_not_fit_leaves_the_previous_entry(tmp_path, monkeypatch, large):
    import evaluators.features as features

    if large:
        monkeypatch.setattr(features, "MMAP_OVER_MB", 0.0)  # every split is written through a memory map
    kwargs = {"progress": False, "cache_dir": tmp_path / "cache"}
    first = features.extract_features(StandIn(), "digits", "test", **kwargs)
    (entry,) = (tmp_path / "cache").iterdir()
    before = snapshot(entry)
    del first  # the mapping of the old entry is closed

    if large:

        def fallocate(fd, offset, length):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "posix_fallocate", fallocate)  # a memory map never writes past it (no SIGBUS)
    else:
        fill_disk(monkeypatch, f"{tmp_path}/cache/.", at=2)
    with pytest.raises(DiskFullError) as caught:
        features.extract_features(StandIn(), "digits", "test", refresh=True, **kwargs)
    assert_one_line_naming(caught.value, entry)
    assert snapshot(entry) == before
    if large:  # the size of the entry is known before it is written: 360 × 2 float32 and 360 labels
        assert "about 5.6 kB" in str(caught.value), caught.value


# ------------------------------------------------------------------------------------------------ app tile
def test_a_tile_that_does_not_fit_is_one_line_for_the_page_and_no_file(tmp_path, monkeypatch):
    from PIL import Image

    from app.handlers import friendly
    from app.tiles import TileStore

    store = TileStore(tmp_path / "tiles")
    kept = store.image(Image.new("RGB", (8, 8), (255, 0, 0)))
    fill_disk(monkeypatch, f"{tmp_path}/tiles/.", at=1)
    with pytest.raises(DiskFullError) as caught:
        store.image(Image.new("RGB", (8, 8), (0, 255, 0)))
    assert "\n" not in str(caught.value) and "tiles/img-" in str(caught.value)
    assert [p.name for p in (tmp_path / "tiles").iterdir()] == [Path(kept).name]  # no half tile, no temporary

    page = friendly(2)(lambda: (store.image(Image.new("RGB", (8, 8), (0, 0, 255))), None))()
    assert "no space left on device" in str(page[0]) and "unexpected error" not in str(page[0])


# ------------------------------------------------------------------------------------------------ checkpoint
OPTIONS = {**TINY, "epochs": 2, "checkpoint_every": 10}


def _checkpoint_fails_at(monkeypatch, nth_checkpoint: int) -> dict[str, bytes]:
    """Let ``nth_checkpoint - 1`` checkpoints be written, then fill the disk during the next; returns what
    ``last.pt`` held when that write began."""
    from zoo import atomic

    real, seen, held = atomic.atomic_file, [0], {}

    def atomic_file(path):
        path = Path(path)
        if path.name == "last.pt":
            seen[0] += 1
            if seen[0] == nth_checkpoint:
                held.update(snapshot(path))
                fill_disk(monkeypatch, "/.last-", at=3)
        return real(path)

    monkeypatch.setattr("trainers.run_files.atomic_file", atomic_file)
    return held


def test_a_checkpoint_that_does_not_fit_keeps_the_last_good_one_and_resume_matches(
    tmp_path, monkeypatch, capsys
):
    from app.cli import main
    from trainers import train

    run = tmp_path / "run"
    held = _checkpoint_fails_at(monkeypatch, nth_checkpoint=2)  # step 10 is written, step 20 does not fit
    status = main([*tiny_train_argv(str(run), 2), "--checkpoint-every", "10"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sslzoo:")]
    assert status == 2 and len(lines) == 1, err
    assert f"writing {run / 'checkpoints' / 'last.pt'}:" in lines[0]
    assert "checkpoint (step 10)" in lines[0] and "--resume" in lines[0], lines[0]
    assert "Traceback" not in err
    assert snapshot(run / "checkpoints" / "last.pt") == held  # byte for byte the step-10 checkpoint
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["global_step"] == 10
    assert not (run / ".lock").exists()
    monkeypatch.undo()

    train("simclr", out=str(run), resume=True, **OPTIONS)
    reference = train("simclr", out=str(tmp_path / "reference"), **OPTIONS)
    want, got = final_state(reference), final_state(run)
    for key in want:
        assert torch.equal(want[key], got[key]), key
    assert [row["step"] for row in metrics(run)] == list(range(1, 45))  # every step once


# ------------------------------------------------------------------------------------------------ a real disk
def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture
def tiny_disk(tmp_path):
    """An 8 MiB tmpfs at ``tmp_path/disk`` (root only; skipped where mounting is not allowed)."""
    if not _can_mount():
        pytest.skip("mounting a small file system needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes free on ``disk``."""
    st = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def test_a_real_full_disk_keeps_the_last_checkpoint_and_resume_continues(
    tiny_disk, tmp_path, monkeypatch, capsys
):
    from app.cli import main
    from trainers import train
    from trainers.run_files import RunFiles

    run, held = tiny_disk / "run", {}
    last = run / "checkpoints" / "last.pt"
    real_export = RunFiles._export

    def export_then_fill(self, epoch, pos):  # after the step-10 checkpoint, the disk is nearly full
        out = real_export(self, epoch, pos)
        if not held:
            held.update(snapshot(last))
            _fill(tiny_disk, leave=last.stat().st_size // 2)
        return out

    monkeypatch.setattr(RunFiles, "_export", export_then_fill)
    status = main([*tiny_train_argv(str(run), 2), "--checkpoint-every", "10"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sslzoo:")]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert f"no space left on device writing {last}:" in lines[0], lines[0]
    assert "checkpoint (step 10)" in lines[0] and "--resume" in lines[0], lines[0]
    assert snapshot(last) == held  # the step-10 checkpoint, byte for byte, and no temporary beside it
    monkeypatch.undo()

    (tiny_disk / "filler").unlink()
    train("simclr", out=str(run), resume=True, **OPTIONS)
    reference = train("simclr", out=str(tmp_path / "reference"), **OPTIONS)
    want, got = final_state(reference), final_state(run)
    for key in want:
        assert torch.equal(want[key], got[key]), key
