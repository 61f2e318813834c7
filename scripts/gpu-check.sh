#!/usr/bin/env bash
# The one prepared GPU check, for a session whose task is lent the device machine (issues 14 and 15 ask for it):
#
#   scripts/gpu-check.sh --prepare          # here, once: Fashion-MNIST and wheels into .gpu/ (ignored, ~40 MB)
#   device run: command "bash scripts/gpu-check.sh", carry [".gpu"], timeout_s 580
#   GPU_CHECK_SMOKE=1 scripts/gpu-check.sh  # here, on the CPU: every stage at toy sizes, to catch breakage first
#   GPU_CHECK_ONLY="dino-vit" ...           # only the stages named (resume a ViT run cut by the budget)
#
# The device machine is bare and offline: its python3 (3.12) holds its own torch and torchvision (2.11 + 0.26 when
# last seen, not ours: pyproject's ranges admit them), timm, scikit-learn and scikit-image, but not this package nor
# `datasets`. The code runs from the working tree (PYTHONPATH), Fashion-MNIST comes from .gpu/fashion-mnist, and
# the packages the device lacks come as wheels in .gpu/wheels, installed offline into its python3 first. Stages are
# time-boxed and independent (a failure is logged and the next one runs); logs and the dino-vit run come back under
# $OUT (at most 8 files): gpu-check.log, the runs as dino-vit-run.tgz.part-* and dino-vit-validation.tar.gz.
#
#   0. wheels                 pip install --no-index from .gpu/wheels (when --prepare made it; --dry-run in smoke)
#   1. environment            nvidia-smi, torch/torchvision/CUDA/timm/datasets versions, `import zoo`
#   2. CUDA-conditional tests trainers' engine (AMP, channels-last), DDP helpers, feature extraction
#   3. trainer throughput     images/s per method on the CNN and the nano ViT, fp32 vs bf16 autocast (issue 14)
#   4. chunked GPU k-NN       1.28 M-row memory-mapped bank × 50 k queries (issue 15)
#   5. DDP embed path         `torchrun -m app.cli eval` on Fashion-MNIST, one rank per GPU (issue 15)
#   6. linear probe on GPU    benchmarks/bench_linear.py, 60 k × 384 (issue 15)
#   7. dino-vit               the full recipe with GPU_CHECK_VIT_EPOCHS (30) epochs on the validation split, then on
#                             train/test; the run folder is tarred for `sslzoo benchmark --ship` here (issue 14)
set -uo pipefail
cd "$(dirname "$0")/.."

# What the device's python3 lacks or may hold too old: `datasets` (and its dill, multiprocess), timm >= 1.0.31
# (zoo/dino_vit.py), at this repository's versions (constraints.txt), with the dependencies pip resolves for them.
# Never torch or torchvision: the device's pair stays (timm is fetched without its dependencies for that reason).
# faiss-cpu (19 MB; only the clustering methods import it, which no stage trains) would push what travels past the
# device's 64 MiB: add it with GPU_CHECK_WHEELS="datasets faiss-cpu".
WHEELS=(${GPU_CHECK_WHEELS:-datasets})
NO_DEPS_WHEELS=(timm)
# On the device image already, and large (56 + 16 + 12 + 4 MB): their wheels are dropped, the device's kept.
DEVICE_HAS=(pyarrow numpy pandas hf_xet)
DEVICE_PYTHON=${GPU_CHECK_DEVICE_PYTHON:-3.12}

if [ "${1:-}" = "--prepare" ]; then
    set -e
    mkdir -p .gpu/fashion-mnist
    cp -p /usr/share/datasets/fashion-mnist/*.gz .gpu/fashion-mnist/
    rm -rf .gpu/wheels
    pip=(python3 -m pip download --quiet --dest .gpu/wheels -c constraints.txt --only-binary=:all:
        --python-version "$DEVICE_PYTHON" --implementation cp --platform manylinux_2_28_x86_64
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    [ -x .venv/bin/python ] && pip[0]=.venv/bin/python
    "${pip[@]}" "${WHEELS[@]}" safetensors  # and timm's other dependencies, for an image without them
    "${pip[@]}" --no-deps "${NO_DEPS_WHEELS[@]}"
    for name in "${DEVICE_HAS[@]}"; do rm -f .gpu/wheels/"$name"-*.whl; done
    if ls .gpu/wheels | grep -qiE '^(torch|torchvision|nvidia|triton)[-_]'; then
        echo "gpu-check --prepare: a torch wheel was fetched; the device's own torch must stay" >&2
        exit 1
    fi
    ls .gpu/wheels
    # The device takes at most 64 MiB: the working tree (tracked and untracked files git does not ignore) and .gpu.
    total=$(( $(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1) \
        + $(du -sb .gpu | cut -f1) ))
    echo "travels: $((total / 1048576)) MiB of at most 64 (.gpu: $(du -sh .gpu | cut -f1))"
    [ "$total" -le $((64 * 1048576)) ] || echo "gpu-check --prepare: over the device's 64 MiB: carry less" >&2
    exit 0
fi

SMOKE=${GPU_CHECK_SMOKE:-0}
OUT=${OUT:-$PWD/outputs/gpu-check}
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
: > "$LOG"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
PY=${GPU_CHECK_PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${GPU_CHECK_PYTHON:-}" ] && PY=.venv/bin/python
RUNS=$(mktemp -d)
trap 'rm -rf "$RUNS"' EXIT  # ours: the runs that matter are packed into $OUT before the end

# The device kills a command at its timeout_s with everything under it, files included: every stage ends by
# GPU_CHECK_BUDGET seconds (less 30 for packing the results), however long the ones before it took.
BUDGET=${GPU_CHECK_BUDGET:-560}
ONLY=${GPU_CHECK_ONLY:-}  # e.g. "dino-vit": only the stages named (a second call resuming the ViT run)
stage() {  # stage NAME SECONDS COMMAND...: time-boxed, output to the log, never stops the script
    local name=$1 limit=$2 left=$((BUDGET - 30 - SECONDS))
    shift 2
    # The wheels always install: a fresh device holds none of them, whichever stages were asked for.
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]] && [ "$name" != wheels ]; then
        return
    fi
    if [ "$left" -lt 15 ]; then
        echo "=== $name: skipped, the budget is spent" | tee -a "$LOG"
        return
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    echo "=== $name (limit ${limit}s) $(date -u +%T)" | tee -a "$LOG"
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >> "$LOG" 2>&1
    local rc=$?
    echo "=== $name: exit $rc in $((SECONDS - start)) s" | tee -a "$LOG"
}

# Fashion-MNIST where zoo.datasets reads it (the device runs as root; here the Debian package is installed).
if [ -d .gpu/fashion-mnist ] && [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
    mkdir -p /usr/share/datasets/fashion-mnist && cp -p .gpu/fashion-mnist/*.gz /usr/share/datasets/fashion-mnist/
fi

if [ "$SMOKE" = 1 ]; then
    TESTS=(tests/trainers/test_distributed.py)
    THROUGHPUT=(--methods simclr --archs sslzoo_cnn4 --steps 1 --batch-size 16)
    KNN=(--rows 4000 --queries 500)
    EVAL_DATA="fashion-mnist?train=2000&test=500"
    LINEAR=(--n-train 2000 --n-test 500)
    VIT_EPOCHS=${GPU_CHECK_VIT_EPOCHS:-1}
    VIT_DATA=(--dataset "fashion-mnist?train=1000&test=500" --batch-size 64)
    VIT_VAL_DATA=(--dataset "fashion-mnist?val=1000&train=2000&test=500" --batch-size 64)
else
    TESTS=(tests/trainers/test_engine.py tests/trainers/test_distributed.py tests/evaluators/test_features.py)
    THROUGHPUT=(--methods simclr byol dino --steps 10 --batch-size 512)
    KNN=(--rows 1281167 --queries 50000 --skip-embed)
    EVAL_DATA="fashion-mnist"
    LINEAR=(--n-train 60000 --n-test 10000)
    VIT_EPOCHS=${GPU_CHECK_VIT_EPOCHS:-30}  # 10× the CPU recipe's 3; ~20 ms a step of 256 would be ~140 s
    VIT_DATA=()
    VIT_VAL_DATA=(--validation)
fi

# The device's python3 takes what it lacks from .gpu/wheels, offline; packages it holds in versions that fit stay.
# The wheels of the packages asked for are named as files, so their versions are this repository's.
if [ -d .gpu/wheels ]; then
    DRY=()
    [ "$SMOKE" = 1 ] && DRY=(--dry-run)  # on the CPU, against our .venv: show what it would do, change nothing
    mapfile -t NAMED < <(for name in "${WHEELS[@]}" "${NO_DEPS_WHEELS[@]}"; do
        ls .gpu/wheels/"${name//-/_}"-*.whl; done)
    stage wheels 90 "$PY" -m pip install --no-index --find-links .gpu/wheels --no-cache-dir --no-compile \
        --disable-pip-version-check "${DRY[@]}" "${NAMED[@]}"
fi
stage environment 30 bash -c "nvidia-smi || true; $PY -c 'import torch, torchvision, timm, datasets, zoo; print(
    \"torch\", torch.__version__, \"torchvision\", torchvision.__version__, \"cuda\", torch.version.cuda,
    \"available\", torch.cuda.is_available(), \"timm\", timm.__version__, \"datasets\", datasets.__version__)'"
stage tests 120 "$PY" -m pytest -q -x -p no:cacheprovider -m "not slow and not browser" "${TESTS[@]}"
stage throughput-fp32 60 "$PY" benchmarks/bench_trainers.py "${THROUGHPUT[@]}" --amp none
stage throughput-bf16 60 "$PY" benchmarks/bench_trainers.py "${THROUGHPUT[@]}" --amp bf16 --channels-last
stage knn-chunked 90 "$PY" benchmarks/bench_imagenet_eval.py "${KNN[@]}"
stage ddp-embed 90 "$PY" -m torch.distributed.run --nproc-per-node 1 -m app.cli eval dino-fmnist "$EVAL_DATA" \
    --protocols knn --leaderboard "$RUNS/leaderboard"
stage linear-gpu 60 "$PY" benchmarks/bench_linear.py "${LINEAR[@]}"
# A run brought back by an earlier check (unpacked into .gpu/dino-vit: runs/, leaderboard/) resumes.
mkdir -p "$RUNS/full"
[ -d .gpu/dino-vit/runs ] && cp -r .gpu/dino-vit/. "$RUNS/full/"
# The nano ViT: the validation run shows whether the longer schedule helps before the train/test run is kept.
stage dino-vit-validation 150 "$PY" -m app.cli benchmark --preset full --methods dino-vit --epochs "$VIT_EPOCHS" \
    "${VIT_VAL_DATA[@]}" --out "$RUNS/val" --no-baselines --no-mini-zoo --no-progress
stage dino-vit 150 "$PY" -m app.cli benchmark --preset full --methods dino-vit --epochs "$VIT_EPOCHS" \
    "${VIT_DATA[@]}" --out "$RUNS/full" --no-baselines --no-mini-zoo --no-progress
# The run folder (weights, metrics, curves, the checkpoint a --ship resumes from) goes back in 15 MB parts (the
# device returns files of at most 16 MiB): `cat dino-vit-run.tgz.part-* | tar -xz -C ~/.cache/sslzoo/full-runs`,
# then `sslzoo benchmark --preset full --methods dino-vit --epochs N --ship` here; or unpack into .gpu/dino-vit to
# resume it on the device.
if [ -d "$RUNS/full/runs" ]; then
    tar -cz -C "$RUNS/full" runs leaderboard 2>> "$LOG" | split -b 15m - "$OUT/dino-vit-run.tgz.part-"
fi
if [ -d "$RUNS/val/runs" ]; then
    tar -czf "$OUT/dino-vit-validation.tar.gz" --exclude=checkpoints -C "$RUNS/val" runs leaderboard 2>> "$LOG"
fi
grep -E "^===|ratio|img/s|images/s|top-1|top1|k-NN|s for|extrapolated|│" "$LOG" | cut -c1-200
ls -la "$OUT"
