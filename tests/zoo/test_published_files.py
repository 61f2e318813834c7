"""Published files (the shipped models/*, model_cards/*.md, the committed leaderboard, exports) hold no absolute
local paths or user names."""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path

import pytest

import zoo.architectures  # noqa: F401  (registers the sslzoo_* architectures the exports below build)
from zoo.local_paths import public_path, scrub_local_paths

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = sorted(
    [p for p in (REPO / "models").rglob("*") if p.suffix in (".json", ".md")]
    + list((REPO / "model_cards").glob("*.md"))
    + list((REPO / "leaderboard").glob("*.jsonl"))
    + list((REPO / "leaderboard").glob("*.md"))
)
# Where local paths live on the machines that write these files, spelled the way a path shows them.
LOCAL = re.compile(
    r"(?<![\w.~:/-])/(?:root|home|Users|tmp|work|mnt|data|var|srv|scratch)(?:/|\b)|[A-Za-z]:\\\\"
)


def _leaks(text: str) -> list[str]:
    found = [m.group(0) for m in LOCAL.finditer(text)]
    for needle in {str(Path.home()), str(REPO)} - {"/"}:
        if needle in text:
            found.append(needle)
    user = getpass.getuser()
    found += re.findall(rf"[/\\]{re.escape(user)}[/\\]", text) if user != "root" else []
    return found


def test_the_published_files_are_there_to_scan():
    assert len([p for p in PUBLISHED if p.name == "sslzoo.json"]) >= 7
    assert len([p for p in PUBLISHED if p.parent.name == "model_cards"]) >= 7


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: str(p.relative_to(REPO)))
def test_a_published_file_holds_no_local_path_or_user_name(path):
    leaks = _leaks(path.read_text())
    assert not leaks, f"{path.relative_to(REPO)} shows local paths: {leaks[:3]}"


def test_the_scan_would_catch_what_the_shipped_files_held():
    shipped_before = '"out": "/root/.cache/sslzoo/full-runs/runs/simclr-full", "command": "--out /home/ann/r"'
    assert {"/root/", "/home/"} <= set(_leaks(shipped_before))
    assert _leaks(json.dumps(scrub_local_paths(json.loads("{" + shipped_before + "}")))) == []


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/root/.cache/sslzoo/full-runs", "~/.cache/sslzoo/full-runs"),
        ("/home/alice/runs/simclr", "~/runs/simclr"),
        ("/Users/bob", "~"),
        (str(REPO / "models" / "simclr-fmnist"), "models/simclr-fmnist"),
        (str(Path.home() / "x"), "~/x"),
        ("/data/alice/imgs", ".../imgs"),
    ],
)
def test_public_path(path, shown):
    assert public_path(path) == shown


def test_only_absolute_paths_are_rewritten():
    kept = ["https://arxiv.org/abs/2002.05709", "hf-hub:org/name@v1", "runs/simclr", "a / b", "1/2"]
    assert scrub_local_paths(kept) == kept
    assert scrub_local_paths({"cmd": "eval folder:/data/x/imgs --out=/srv/y/z.npy"}) == {
        "cmd": "eval folder:.../imgs --out=.../z.npy"
    }


def test_an_export_of_a_run_with_local_paths_publishes_none(tmp_path):
    import timm

    import zoo
    from zoo import publish

    net = timm.create_model("sslzoo_cnn4", in_chans=1, num_classes=0, widths=(8, 8, 8, 8))
    run = tmp_path / "run"
    config = {"train": {"method": "simclr", "out": str(run), "dataset": f"folder:{tmp_path}/imgs"}}
    zoo.save_encoder(
        net,
        run / "encoder",
        model_args={"in_chans": 1, "widths": (8, 8, 8, 8)},
        metadata={"method": "simclr", "config": config, "command": f"sslzoo train --out {run}"},
    )
    folder = publish.export_folder(run, tmp_path / "hub", repo_id="me/run")
    for name in ("sslzoo.json", "README.md"):
        text = (folder / name).read_text()
        assert str(tmp_path) not in text and ".../run" in text, name


def test_a_records_command_is_written_without_local_paths(tmp_path):
    from evaluators.records import Record, read_records, write_records

    record = Record(
        model="raw-pixels",
        dataset="digits",
        protocol="knn",
        command="sslzoo benchmark --out /root/.cache/sslzoo/full-runs --ship",
    )
    write_records([record], tmp_path)
    (kept,) = read_records(tmp_path)
    assert kept.command == "sslzoo benchmark --out ~/.cache/sslzoo/full-runs --ship"
    assert (kept.model, kept.dataset) == ("raw-pixels", "digits")
