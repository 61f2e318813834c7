"""Cheap commands stay cheap: listing and help load no torch, timm, datasets or gradio (each costs seconds).

Asserted on imports, not on time: each command runs in a fresh interpreter and reports what it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "timm", "datasets", "gradio")
PROBE = """
import json, sys
import app.cli
try:
    code = app.cli.main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "heavy": [m for m in HEAVY_NAMES if m in sys.modules]}), file=sys.stderr)
""".replace("HEAVY_NAMES", repr(HEAVY))


def _run(args: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


CHEAP = [
    ["--help"],
    ["eval", "--help"],
    ["reproduce", "--help"],
    ["leaderboard", "--help"],
    ["embed", "--help"],
    ["export", "--help"],
    ["push", "--help"],
    ["card", "--help"],
    ["app", "--help"],
    ["benchmark", "--help"],
    ["readme-leaderboard", "--help"],
    ["train", "--help"],
    ["recipes", "--help"],
    ["models", "--help"],
    ["datasets", "--help"],
    ["datasets", "show", "--help"],
    ["datasets", "list", "--help"],
    ["leaderboard", "--help"],
]
# Listings read the registry, the recipes and the datasets' table: data.
LISTINGS = [
    ["models"],
    ["models", "dino"],
    ["models", "--json"],
    ["recipes"],
    ["recipes", "dino-vits16"],
    ["datasets"],
    ["datasets", "--json"],
]
# Refusals: one line on stderr and a non-zero exit, before anything heavy loads.
REFUSALS = [
    ["reproduce", "dino-vits16"],  # without ImageNet
    ["reproduce", "dino-vits16", "--dataset", "folder:/nonexistent"],
    ["models", "no-such-model"],
    ["recipes", "no-such-recipe"],
    ["train"],  # neither --method nor --recipe
]


@pytest.mark.parametrize("args", CHEAP, ids=" ".join)
def test_cheap_command_imports_nothing_heavy(args):
    result = _run(args)
    assert result["code"] in (0, None) and result["heavy"] == []


@pytest.mark.parametrize("args", LISTINGS, ids=" ".join)
def test_listings_import_nothing_heavy(args):
    result = _run(args)
    assert result["code"] in (0, None) and result["heavy"] == []


@pytest.mark.parametrize("args", REFUSALS, ids=" ".join)
def test_refusals_import_nothing_heavy(args):
    result = _run(args)
    assert result["code"] not in (0, None) and result["heavy"] == []
