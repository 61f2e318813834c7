"""The ``sslzoo`` command line: version, dataset listing, and one-line errors with a non-zero exit."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

from app.cli import main
from zoo import __version__


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"sslzoo {__version__}"


def test_datasets_list_shows_digits_with_sizes(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "1437" in out and "360" in out and "folder:PATH" in out


def test_datasets_show_counts_and_writes_a_grid(tmp_path, capsys):
    out_png = tmp_path / "grid.png"
    assert main(["datasets", "show", "digits", "--out", str(out_png), "--json", "--per-class", "3"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["splits"]["train"]["size"] == 1437 and info["splits"]["test"]["size"] == 360
    assert sum(info["splits"]["test"]["per_class"].values()) == 360
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "datasets", "show", f"folder:{tmp_path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sslzoo: error:") and "holds no images" in lines[0]
    assert "Traceback" not in result.stderr


def _run(*code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "\n".join(code)], capture_output=True, text=True, check=False
    )


def test_top_level_help_and_version_import_neither_torch_nor_timm():
    done = _run(
        "import sys",
        "from app.cli import main",
        "for argv in (['--help'], ['--version']):",
        "    try:",
        "        main(argv)",
        "    except SystemExit as exc:",
        "        assert exc.code == 0, exc.code",
        "heavy = sorted(m for m in ('torch', 'timm', 'numpy', 'gradio', 'faiss') if m in sys.modules)",
        "print('HEAVY', heavy)",
    )
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
    assert "train" in done.stdout and "leaderboard" in done.stdout  # the commands are listed


def test_each_command_listed_by_help_is_the_one_its_module_registers():
    from app.cli import COMMANDS, build_parser

    full = build_parser("all")
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    registered = {action.dest: action.help for action in sub._choices_actions}
    assert registered == {name: help_text for name, (_, help_text) in COMMANDS.items()}


def _option_help(parser: argparse.ArgumentParser, command: str, flag: str) -> str:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in sub.choices[command]._actions:
        if flag in action.option_strings:
            return action.help
    raise AssertionError(f"{command} has no {flag}")


def test_help_prints_each_default_once_as_typed_and_shared_options_one_way():
    from app.cli import COMMANDS, build_parser

    parser = build_parser("all")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in COMMANDS:
        text = " ".join(sub.choices[name].format_help().split())  # argparse wraps lines
        for line in re.findall(r"--[a-z-]+ .*?(?= --[a-z]|$)", text):
            assert line.count("(default:") <= 1, (name, line)
        assert "(default: (" not in text and "(default: None)" not in text and "(default: [" not in text, name
    devices = {_option_help(parser, c, "--device") for c in ("train", "eval", "embed")}
    assert len(devices) == 1 and "auto" in devices.pop()
    boards = {_option_help(parser, c, "--leaderboard") for c in ("eval", "export", "push", "card")}
    assert len(boards) == 1
    # `leaderboard` reads the repository's records and yours unless one folder is named: its own text, the same
    # default for yours.
    shown = _option_help(parser, "leaderboard", "--leaderboard")
    assert "the repository's leaderboard/ and yours" in shown
    assert (
        "$SSLZOO_LEADERBOARD, else ~/.cache/sslzoo/leaderboard" in shown
        and "$SSLZOO_LEADERBOARD, else" in boards.pop()
    )


def test_an_unknown_model_filter_is_one_line_and_exit_2(capsys):
    assert main(["models", "mocov9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no model matches 'mocov9'" in err and "mocov3" in err


def test_models_shows_the_mini_zoos_numbers_as_shipped(capsys):
    from zoo.publish import pinned_results, shipped_folder

    assert main(["models", "simclr-fmnist", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    pinned = {r["protocol"]: r["metrics"] for r in pinned_results(shipped_folder("simclr-fmnist"))["model"]}
    assert row["knn_top1"] == round(pinned["knn"]["top1"], 2) and row["measured_on"].startswith(
        "fashion-mnist"
    )
    assert main(["models", "simclr-fmnist"]) == 0
    assert f"{row['linear_top1']:.2f}" in capsys.readouterr().out


def test_datasets_list_as_json(capsys):
    assert main(["datasets", "--json"]) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)["datasets"]}
    assert listed["digits"]["sizes"] == {"train": 1437, "test": 360}
    assert main(["datasets", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["datasets"][0]["name"] == "digits"
