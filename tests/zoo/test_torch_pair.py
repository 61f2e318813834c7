"""torch and torchvision must be built for each other: a mismatch is one line saying what to install, never a
traceback from deep inside ``import timm`` (zoo/_torch_pair.py)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import app.cli
import zoo._torch_pair as torch_pair
from zoo.errors import SslzooError

ROOT = Path(__file__).resolve().parents[2]
NMS_ERROR = "operator torchvision::nms does not exist"


def _installed(monkeypatch, **versions: str | None) -> None:
    """Make the check read these versions (``torch=..., torchvision=...``; None: not installed)."""

    def fake_version(name: str) -> str:
        found = versions.get(name)
        if found is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return found

    monkeypatch.setattr(torch_pair, "version", fake_version)


@pytest.mark.parametrize(
    ("torch", "torchvision"),
    [
        ("2.14.1", "0.29.1"),
        ("2.14.0", "0.29.2"),  # patch releases need not match
        ("2.9.1+cu128", "0.24.1+cu128"),
        ("2.11.0+cu130", "0.26.0"),  # the GPU device's image
        ("2.0.1", "0.15.2"),
        ("3.0.0", "0.45.0"),  # torch 3's numbering is not known: no guess, no error
    ],
)
def test_a_matching_pair_passes(monkeypatch, torch, torchvision):
    _installed(monkeypatch, torch=torch, torchvision=torchvision)
    torch_pair.check_torch_pair()


@pytest.mark.parametrize(
    ("torch", "torchvision", "built_for", "install"),
    [
        ("2.13.0", "0.29.1", "torch 2.14", "torchvision==0.28.*"),
        ("2.14.1+cu128", "0.24.1", "torch 2.9", "torchvision==0.29.*"),
        ("2.9.1", "0.28.0", "torch 2.13", "torchvision==0.24.*"),
    ],
)
def test_a_mismatched_pair_is_one_line_naming_what_to_install(
    monkeypatch, torch, torchvision, built_for, install
):
    _installed(monkeypatch, torch=torch, torchvision=torchvision)
    with pytest.raises(SslzooError) as caught:
        torch_pair.check_torch_pair()
    message = str(caught.value)
    assert "\n" not in message
    assert f"torch {torch} and torchvision {torchvision} are not a pair" in message
    assert built_for in message
    assert install in message


@pytest.mark.parametrize("missing", ["torch", "torchvision"])
def test_a_missing_package_is_left_to_its_own_import_error(monkeypatch, missing):
    versions = {"torch": "2.14.1", "torchvision": "0.29.1", missing: None}
    _installed(monkeypatch, **versions)
    torch_pair.check_torch_pair()


def test_torchvision_for_maps_torch_minors():
    assert torch_pair.torchvision_for("2.14.1") == "0.29"
    assert torch_pair.torchvision_for("2.13.0+cpu") == "0.28"
    assert torch_pair.torchvision_for("2.9.1") == "0.24"
    assert torch_pair.torchvision_for("nightly") is None


def test_the_operator_error_of_another_build_becomes_one_line(monkeypatch):
    _installed(monkeypatch, torch="2.13.0+cpu", torchvision="0.28.0")
    error = torch_pair.torchvision_import_error(RuntimeError(NMS_ERROR))
    assert isinstance(error, SslzooError)
    assert "\n" not in str(error)
    assert "torchvision 0.28.0 does not load beside torch 2.13.0+cpu" in str(error)
    assert "torchvision==0.28.*" in str(error)
    assert torch_pair.torchvision_import_error(RuntimeError("CUDA out of memory")) is None
    assert torch_pair.torchvision_import_error(ValueError(NMS_ERROR)) is None


def test_the_cli_reports_a_mismatched_pair_in_one_line_without_a_traceback():
    # A fresh interpreter: the check runs when `sslzoo` imports zoo, before any command is parsed.
    program = (
        "import importlib.metadata as m, sys\n"
        "real = m.version\n"
        "m.version = lambda name: {'torch': '2.13.0', 'torchvision': '0.29.1'}.get(name) or real(name)\n"
        "sys.argv = ['sslzoo', 'datasets']\n"
        "from app.cli import main\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("sslzoo: error: torch 2.13.0 and torchvision 0.29.1 are not a pair")
    assert "torchvision==0.28.*" in lines[0]


def test_the_cli_reports_torchvision_operator_errors_in_one_line(monkeypatch, capsys):
    _installed(monkeypatch, torch="2.13.0+cpu", torchvision="0.28.0")

    def broken_import(command):  # what `import timm` raises when torchvision's C++ operators did not load
        raise RuntimeError(NMS_ERROR)

    monkeypatch.setattr(app.cli, "build_parser", broken_import)
    assert app.cli.main(["train", "--help"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sslzoo: error: torchvision 0.28.0 does not load beside torch")


def test_other_runtime_errors_still_propagate(monkeypatch):
    def broken(command):
        raise RuntimeError("something else")

    monkeypatch.setattr(app.cli, "build_parser", broken)
    with pytest.raises(RuntimeError, match="something else"):
        app.cli.main(["train"])
