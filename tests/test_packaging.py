"""Packaging for the PyTorch ecosystem: pyproject.toml accepts ranges (a user's own torch build stays), the lower
bounds are the versions scripts/check-oldest.sh last passed with, and constraints.txt pins this repository's exact
environment, which `make install` applies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from zoo._torch_pair import torchvision_for

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PAIR = ("torch", "torchvision", "timm")


def _requirements() -> dict[str, Requirement]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {(req := Requirement(dep)).name: req for dep in deps}


def _lower_bound(req: Requirement) -> str:
    (bound,) = [spec.version for spec in req.specifier if spec.operator == ">="]
    return bound


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, pinned = line.split("==")
            pins[name.lower().replace("_", "-")] = pinned
    return pins


def test_torch_torchvision_and_timm_are_ranges_with_a_lower_bound():
    reqs = _requirements()
    for name in PAIR:
        assert not any(spec.operator in ("==", "===", "~=") for spec in reqs[name].specifier), reqs[name]
        _lower_bound(reqs[name])
    # The two lower bounds are themselves a pair.
    assert torchvision_for(_lower_bound(reqs["torch"])) == ".".join(
        _lower_bound(reqs["torchvision"]).split(".")[:2]
    )


def test_the_oldest_check_last_passed_with_pyprojects_lower_bounds():
    script = (ROOT / "scripts" / "check-oldest.sh").read_text()
    measured = re.search(r"^# measured: torch (\S+) torchvision (\S+) timm (\S+): passed", script, re.M)
    assert measured, "scripts/check-oldest.sh records its last run in a '# measured:' line"
    reqs = _requirements()
    assert measured.groups() == tuple(_lower_bound(reqs[name]) for name in PAIR), (
        "pyproject's lower bounds moved: run scripts/check-oldest.sh and record its outcome in its header"
    )
    assert "pyproject.toml" in script and "tomllib" in script  # it reads the bounds, never its own copy


def test_constraints_pin_a_pair_inside_pyprojects_ranges():
    pins, reqs = _constraints(), _requirements()
    for name, req in reqs.items():
        if name.lower() in pins:
            assert Version(pins[name.lower()]) in req.specifier, f"constraints.txt's {name} is outside {req}"
    assert {"torch", "torchvision", "timm"} <= pins.keys()
    assert torchvision_for(pins["torch"]) == ".".join(pins["torchvision"].split(".")[:2])


def test_make_install_applies_the_constraints_and_reinstalls_when_they_change():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\): .*\bconstraints\.txt\b", makefile, re.M)
    assert "pip install --quiet -c constraints.txt -e '.[dev]'" in makefile
