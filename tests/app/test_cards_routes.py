"""One card per model whatever the route: export by name or by folder, the shipped copy; and its snippets run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from zoo.publish import CARD_FILE, shipped_folder

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = "simclr-fmnist"


def _export(source: str, out: Path, *extra: str) -> str:
    assert main(["export", source, "--out", str(out), *extra]) == 0
    return (out / CARD_FILE).read_text()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shipped mini-zoo model exported by registry name and by its folder, for one Hub repo."""
    root = tmp_path_factory.mktemp("export")
    by_name = _export(SHIPPED, root / "by-name", "--repo", f"me/{SHIPPED}")
    by_folder = _export(str(shipped_folder(SHIPPED)), root / "by-folder", "--repo", f"me/{SHIPPED}")
    return root, by_name, by_folder


def test_export_by_name_and_by_folder_write_the_same_card_with_training_and_baselines(exported):
    _, by_name, by_folder = exported
    assert by_name == by_folder
    for needle in (
        "## Training",
        '"epochs": 15',  # the training config travelled with the folder
        "![curves.png](curves.png)",
        'zoo.load("hf-hub:me/simclr-fmnist")',
        'timm.create_model("hf-hub:me/simclr-fmnist", pretrained=True, num_classes=0)',
        "import zoo.architectures",
        "| `raw-pixels` |",  # the baselines beside the model's numbers
    ):
        assert needle in by_name, needle
    assert "Not trained by sslzoo" not in by_name


def test_exported_card_has_the_shipped_cards_results_and_no_local_paths(exported):
    _, by_name, _ = exported
    shipped = (shipped_folder(SHIPPED) / CARD_FILE).read_text()
    table = [line for line in shipped.splitlines() if line.startswith("| Fashion-MNIST |")]
    assert table and all(line in by_name for line in table)
    for text in (by_name, shipped):
        assert not re.search(r"/root/|/home/|/Users/|" + re.escape(str(ROOT)), text)


def test_timm_alone_snippet_of_the_card_runs_in_a_fresh_interpreter(exported, hub_cache, tmp_path):
    """The card's "timm alone" code, as written, on the exported folder served from a hand-built Hub cache."""
    root, by_name, _ = exported
    hub_cache.add_repo(f"me/{SHIPPED}", root / "by-name")
    blocks = re.findall(r"```python\n(.*?)```", by_name, re.S)
    snippet = next(b for b in blocks if "timm.create_model" in b)
    script = tmp_path / "snippet.py"
    script.write_text(
        "from PIL import Image\nimage = Image.new('L', (28, 28), 128)\n"
        + snippet
        + "assert tuple(features.shape) == (1, 256), features.shape\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache.root), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_shipped_card_keeps_the_records_it_shipped_with_unless_asked():
    from app.publish_cli import _records, entry_cards
    from evaluators.records import REPO_ROOT
    from zoo.registry import MODELS

    records = _records(REPO_ROOT / "leaderboard")
    adhoc = dict(next(r for r in records if r["model"] == SHIPPED and r["protocol"] == "knn"))
    adhoc.update(metrics={"top1": 12.34, "top5": 56.78}, created="2030-01-01T00:00:00+00:00")
    later = [
        adhoc if r["id"] == adhoc["id"] else r for r in records
    ]  # the row re-evaluated, as eval replaces it
    cards, pin = entry_cards(MODELS[SHIPPED], later)
    shipped = shipped_folder(SHIPPED) / CARD_FILE
    assert str(cards[shipped]) == shipped.read_text() and pin is None  # as shipped
    cards, pin = entry_cards(MODELS[SHIPPED], later, latest=True)
    assert (
        "| **12.34** |" in str(cards[shipped]) and pin[0][0]["metrics"]["top1"] == 12.34
    )  # asked: the latest
