"""Generated files are up to date: each matches what its inputs give now, or this test names it and the command
that regenerates it."""

from __future__ import annotations

import json

from evaluators.generated import regenerate, stale_files
from evaluators.records import REPO_ROOT, Record, write_records

REPO_LEADERBOARD = REPO_ROOT / "leaderboard"


def test_committed_leaderboard_files_and_readme_table_match_the_records():
    assert stale_files(REPO_LEADERBOARD) == [], (
        "run `sslzoo leaderboard --leaderboard leaderboard` to regenerate"
    )


def test_committed_cards_of_shipped_models_match_their_pinned_records():
    from app.publish_cli import _records, entry_cards
    from zoo.publish import shipped_folder
    from zoo.registry import list_models

    records = _records(REPO_LEADERBOARD)
    shipped = [e for e in list_models() if shipped_folder(e.name) is not None]
    assert shipped, "the mini-zoo is missing"
    stale = []
    for entry in shipped:
        cards, _ = entry_cards(entry, records)
        stale += [str(path) for path, card in cards.items() if path.read_text() != str(card)]
    assert stale == [], "run `sslzoo card NAME` for each"


def _record(model: str, top1: float) -> Record:
    return Record(
        model=model,
        dataset="digits",
        protocol="knn",
        params={"k": 20},
        metrics={"top1": top1},
        splits={"train": 1437, "test": 360},
        num_classes=10,
    )


def test_a_new_record_makes_the_files_stale_until_regenerated(tmp_path):
    board = tmp_path / "board"
    write_records([_record("raw-pixels", 97.5)], board)
    assert len(stale_files(board)) == 2  # markdown and chart: never written
    regenerate(board)
    assert stale_files(board) == []
    write_records([_record("raw-pixels", 96.0)], board)  # same row, another number
    assert [s.split(":")[0] for s in stale_files(board)] == [
        str(board / "README.md"),
        str(board / "leaderboard.png"),
    ]
    regenerate(board)
    assert stale_files(board) == [] and "96.00" in (board / "README.md").read_text()


def test_sslzoo_eval_regenerates_what_its_record_changes(tmp_path, capsys):
    from app.cli import main

    board = tmp_path / "board"
    assert main(["eval", "raw-pixels", "digits", "--protocols", "knn", "--leaderboard", str(board)]) == 0
    assert stale_files(board) == []
    out = capsys.readouterr().out.replace("\n", "")  # rich wraps long paths
    assert "README.md" in out and "leaderboard.png" in out  # says what it wrote
    # The same row again, same number: the records' file is rewritten, the generated files are not, and it says so.
    assert main(["eval", "raw-pixels", "digits", "--protocols", "knn", "--leaderboard", str(board)]) == 0
    out = capsys.readouterr().out.replace("\n", "")
    assert "digits.jsonl" in out and "README.md" not in out and "leaderboard.png" not in out
    assert main(["leaderboard", "--leaderboard", str(board)]) == 0
    assert "generated files up to date" in capsys.readouterr().out.replace("\n", "")


def test_a_users_eval_leaves_the_repository_untouched_and_records_in_the_user_leaderboard(tmp_path):
    """The whole CLI in a fresh process, as a user runs it: HOME is a temporary folder, no leaderboard option."""
    import hashlib
    import os
    import subprocess
    import sys

    def tracked() -> dict[str, str]:
        out = subprocess.run(
            [
                "git",
                "-C",
                str(REPO_ROOT),
                "ls-files",
                "-z",
                "leaderboard",
                "README.md",
                "model_cards",
                "models",
            ],
            capture_output=True,
            check=True,
        ).stdout
        names = [n for n in out.decode().split("\0") if n]
        return {n: hashlib.sha256((REPO_ROOT / n).read_bytes()).hexdigest() for n in names}

    env = {k: v for k, v in os.environ.items() if k not in ("SSLZOO_LEADERBOARD", "SSLZOO_CACHE")}
    env["HOME"] = str(tmp_path)
    before = tracked()
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "eval", "random-sslzoo_cnn4", "digits"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert tracked() == before
    user = tmp_path / ".cache" / "sslzoo" / "leaderboard"
    rows = (user / "digits.jsonl").read_text().splitlines()
    assert [json.loads(r)["protocol"] for r in rows] == ["knn", "linear", "clustering"]
    said = run.stdout.replace("\n", "")
    assert str(user / "digits.jsonl") in said and str(REPO_LEADERBOARD) not in said
    assert "README.md" in said and str(REPO_ROOT / "README.md") not in said  # the user board's own README
