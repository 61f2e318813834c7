"""Generated files are up to date: each matches what its inputs give now, or this test names it and the command
that regenerates it."""

from __future__ import annotations

from evaluators.generated import regenerate, stale_files
from evaluators.records import Record, write_records


def test_committed_leaderboard_files_and_readme_table_match_the_records():
    assert stale_files() == [], "run `sslzoo leaderboard` to regenerate them"


def test_committed_cards_of_shipped_models_match_their_pinned_records():
    from app.publish_cli import _records, entry_cards
    from zoo.publish import shipped_folder
    from zoo.registry import list_models

    records = _records(None)
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
