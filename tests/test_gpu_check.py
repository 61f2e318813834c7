"""scripts/gpu-check.sh, the prepared device check: every stage runs (at toy sizes, on the CPU) and the dino-vit run
comes back in parts that unpack into a run a ``--ship`` can resume from.

The device is lent to few sessions and each has minutes of it: a check that breaks (a renamed option, a moved
benchmark) must be found here, not on the GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_stage_of_the_gpu_check_runs_and_the_run_comes_back(tmp_path):
    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "GPU_CHECK_SMOKE": "1",
        "GPU_CHECK_BUDGET": "900",
        "GPU_CHECK_PYTHON": sys.executable,
        "SSLZOO_CACHE": str(tmp_path / "cache"),  # the feature cache of the eval stage, not the user's
    }
    subprocess.run(["bash", "scripts/gpu-check.sh"], cwd=ROOT, env=env, check=True, capture_output=True)
    log = (out / "gpu-check.log").read_text()
    stages = [line for line in log.splitlines() if line.startswith("=== ") and ": exit " in line]
    names = [line.split()[1].rstrip(":") for line in stages]
    # The wheels of --prepare (for the device's python3) install first where .gpu/wheels exists: --dry-run here.
    wheels = ["wheels"] if (ROOT / ".gpu" / "wheels").is_dir() else []
    assert names == [
        *wheels,
        "environment",
        "tests",
        "throughput-fp32",
        "throughput-bf16",
        "knn-chunked",
        "ddp-embed",
        "linear-gpu",
        "dino-vit-validation",
        "dino-vit",
    ]
    assert all(": exit 0 " in line for line in stages), "\n".join(stages)

    # The parts, concatenated, are one archive holding the run with the checkpoint a --ship resumes from.
    parts = sorted(out.glob("dino-vit-run.tgz.part-*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    archive = tmp_path / "run.tgz"
    archive.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(archive) as tar:
        members = set(tar.getnames())
    assert {
        "runs/dino-vit-full/checkpoints/last.pt",
        "runs/dino-vit-full/encoder/model.safetensors",
        "runs/dino-vit-full/metrics.jsonl",
    } <= members
    with tarfile.open(out / "dino-vit-validation.tar.gz") as tar:
        assert not any("checkpoints" in name for name in tar.getnames())
