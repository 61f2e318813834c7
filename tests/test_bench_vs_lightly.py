"""The peer benchmark's smallest configuration runs end to end: every method × framework trained, evaluated, tabled."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightly")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_comparison_has_every_method_and_framework(tmp_path):
    out = tmp_path / "peer"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_vs_lightly.py"),
            "--smoke",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((out / "results.json").read_text())["rows"]
    methods = ("simclr", "moco", "byol", "dino")
    assert sorted((r["method"], r["framework"]) for r in rows) == sorted(
        (m, f) for m in methods for f in ("sslzoo", "lightly")
    )
    for row in rows:
        # Digits has 10 classes: an encoder trained for one epoch is far above chance on both protocols.
        assert 50 < row["knn"] <= 100 and 50 < row["linear"] <= 100, row
        assert math.isfinite(row["images_per_s"]) and row["images_per_s"] > 0
    table = (out / "report.md").read_text()
    for m in methods:
        assert f"| {m} | sslzoo |" in table and f"| {m} | lightly |" in table
        assert f"- {m}: " in table  # how the two differ, per method
    # A second run with the same budget reuses every row instead of training again.
    again = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_vs_lightly.py"), "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and "training with" not in again.stdout
    # Publishing writes the table between a README's markers and the rows beside it, without local paths.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_vs_lightly as bench

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{bench.MARKERS[0]}\nold\n{bench.MARKERS[1]}\n\ntail\n")
    bench.publish(
        out, f"python benchmarks/bench_vs_lightly.py --smoke --out {out}", readme, tmp_path / "r.json"
    )
    text = readme.read_text()
    assert text.startswith("# x") and text.endswith("tail\n") and "old" not in text
    assert "| dino | lightly |" in text and str(tmp_path) not in text


def test_published_table_is_the_committed_results_rendered():
    """benchmarks/README.md's peer table is generated from benchmarks/results/vs-lightly.json: stale if not."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_vs_lightly as bench

    data = json.loads(bench.RESULTS_FILE.read_text())
    readme = bench.README.read_text()
    block = readme.split(bench.MARKERS[0], 1)[1].split(bench.MARKERS[1], 1)[0]
    assert block == "\n" + bench.render(data), "run bench_vs_lightly.py --publish to regenerate the table"
    rows = data["results"]["rows"]
    assert {(r["method"], r["framework"]) for r in rows} == {
        (m, f) for m in bench.METHODS for f in ("sslzoo", "lightly")
    }
    assert "/root/" not in readme and "/home/" not in readme  # published: no local paths
