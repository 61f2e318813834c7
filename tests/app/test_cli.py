"""The ``sslzoo`` command line: version, dataset listing, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
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
