#!/usr/bin/env bash
# The mini-zoo's full-preset training runs, one method at a time, at the lowest CPU priority with one thread, so
# they can run in the background for days on a shared CPU without starving anything else.
#
#   scripts/full-runs.sh                 # all seven, in this order; run it again to resume where it stopped
#   scripts/full-runs.sh simclr byol     # only these
#   setsid nohup scripts/full-runs.sh > /dev/null 2>&1 &      # detached from the terminal
#
# Runs and checkpoints live outside the work tree, in $SSLZOO_FULL_RUNS (default ~/.cache/sslzoo/full-runs/runs/
# METHOD-full); each resumes from its last checkpoint (every 50 steps and every epoch end); a finished run is only
# re-exported and evaluated. Records go to $SSLZOO_FULL_RUNS/leaderboard; the log is $SSLZOO_FULL_RUNS/driver.log.
# Ship finished encoders into models/ (and the repository's leaderboard and model_cards/) with
#   sslzoo benchmark --preset full --methods METHOD --out ~/.cache/sslzoo/full-runs --ship
# On a GPU run the same command without nice/threads, or several GPUs with torchrun (see README, Benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${SSLZOO_FULL_RUNS:-$HOME/.cache/sslzoo/full-runs}
if [ $# -eq 0 ]; then set -- simclr byol moco deepcluster deepercluster selflabel dino; fi
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
# With the kernel's autogroup scheduling (on by default) a process started with setsid gets its own group, and nice
# only ranks processes inside a group: lower the whole group too, or it takes a full core from interactive work.
echo 19 > /proc/self/autogroup 2>/dev/null || true
echo "$(date -u +%FT%TZ) driver $$ starts: $* (out $OUT)" >> "$OUT/driver.log"
for method in "$@"; do
    echo "$(date -u +%FT%TZ) $method: start/resume" >> "$OUT/driver.log"
    if nice -n 19 .venv/bin/sslzoo benchmark --preset full --methods "$method" --out "$OUT" --threads 1 \
        --no-baselines --no-mini-zoo --no-progress >> "$OUT/driver.log" 2>&1; then
        echo "$(date -u +%FT%TZ) $method: done" >> "$OUT/driver.log"
    else
        echo "$(date -u +%FT%TZ) $method: FAILED (exit $?); see above" >> "$OUT/driver.log"
    fi
done
echo "$(date -u +%FT%TZ) driver $$ finished" >> "$OUT/driver.log"
