#!/usr/bin/env bash
# The lower-bound check: a throwaway venv with the oldest torch, torchvision and timm that pyproject.toml admits,
# the rest of the dependencies as pip resolves them beside those, then `import` of every package and a smoke train
# (SimCLR on the CNN, DINO on the nano ViT, one epoch of digits each) and a k-NN eval of the trained run.
# The bounds are read from pyproject.toml, so they cannot drift from what is tested (tests/test_packaging.py).
#
#   scripts/check-oldest.sh            # about 8 GB of disk while it runs (torch's CUDA wheels); removed after
#   CHECK_OLDEST_KEEP=1 ...            # keep the venv (its path is printed) to look into a failure
#
# Last run, by hand (tests/test_packaging.py checks these are pyproject's bounds: re-run after changing them):
# measured: torch 2.9.1 torchvision 0.24.1 timm 1.0.31: passed, 2026-12-07, x86_64, Python 3.11, 2 CPU cores;
#   PyPI's CUDA 12.8 builds run on the CPU, 311 s to install (7.6 GB venv), 430 s in all; the SimCLR run's
#   k-NN top-1 on digits after 1 epoch: 95.83 %. torch 2.13.0+cpu (on this disk) has no torchvision here that
#   imports beside it (PyPI's 0.28.0, a CUDA build, fails with "operator torchvision::nms does not exist", per
#   this machine's notes; not re-tried).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}  # 3.11+ (tomllib); the venv is made with it

read -r TORCH TORCHVISION TIMM < <("$PYTHON" - <<'EOF'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
low = {m["name"]: m["v"] for d in deps if (m := re.fullmatch(r"(?P<name>[A-Za-z0-9_.-]+)>=(?P<v>[^,;\s]+).*", d))}
print(low["torch"], low["torchvision"], low["timm"])
EOF
)
echo "oldest supported: torch $TORCH, torchvision $TORCHVISION, timm $TIMM"
df -h /tmp | tail -1

WORK=$(mktemp -d /tmp/sslzoo-oldest.XXXXXX)
if [ "${CHECK_OLDEST_KEEP:-0}" = 1 ]; then
    trap 'echo "kept: $WORK"' EXIT
else
    trap 'rm -rf "$WORK"' EXIT
fi
VENV=$WORK/venv
START=$SECONDS
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
printf 'torch==%s\ntorchvision==%s\ntimm==%s\n' "$TORCH" "$TORCHVISION" "$TIMM" > "$WORK/oldest.txt"
# No cache: the CUDA wheels would stay behind in ~/.cache/pip (GBs) after the venv is gone.
"${PIP[@]}" install --quiet --no-cache-dir torch=="$TORCH" torchvision=="$TORCHVISION" timm=="$TIMM"
# The package and its other dependencies; the constraints keep pip from replacing the old three.
"${PIP[@]}" install --quiet --no-cache-dir -c "$WORK/oldest.txt" -e .
echo "installed in $((SECONDS - START)) s: $(du -sh "$VENV" | cut -f1)"

cd "$WORK"  # runs, caches and leaderboard records land in the throwaway folder, not the working tree
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg SSLZOO_CACHE=$WORK/cache HF_DATASETS_CACHE=$WORK/hf-datasets
"$VENV/bin/python" - <<'EOF'
import timm, torch, torchvision

import app.cli, evaluators, trainers, zoo, zoo.dino_vit, zoo.registry  # noqa: F401  (zoo checks the pair)

print("imports ok: torch", torch.__version__, "torchvision", torchvision.__version__, "timm", timm.__version__)
EOF
"$VENV/bin/sslzoo" train --method simclr --dataset digits --epochs 1 --batch-size 128 --out "$WORK/simclr" \
    --no-progress
"$VENV/bin/sslzoo" train --method dino --dataset digits --arch sslzoo_vit_nano_patch4 --epochs 1 \
    --batch-size 64 --n-local-crops 2 --out "$WORK/dino" --no-progress
"$VENV/bin/sslzoo" eval "$WORK/simclr" digits --protocols knn --leaderboard "$WORK/leaderboard"
echo "check-oldest: passed with torch $TORCH, torchvision $TORCHVISION, timm $TIMM in $((SECONDS - START)) s"
cd "$ROOT"
