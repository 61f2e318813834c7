#!/usr/bin/env bash
# The mini-zoo's full-preset training runs at the lowest CPU priority, one torch thread each, JOBS at a time
# (default 2: on 2 cores two 1-thread runs train ~15% more images/s in total than one 2-thread run), so they can
# run in the background on a shared CPU without starving anything else.
#
#   scripts/full-runs.sh                 # all seven, DINO (the slowest) first; run it again to resume
#   scripts/full-runs.sh simclr byol     # only these
#   JOBS=1 scripts/full-runs.sh          # one at a time
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
JOBS=${JOBS:-2}
if [ $# -eq 0 ]; then set -- dino simclr byol moco selflabel deepcluster deepercluster; fi
mkdir -p "$OUT"
export OUT HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
# With the kernel's autogroup scheduling (on by default) a process started with setsid gets its own group, and nice
# only ranks processes inside a group: lower the whole group too, or it takes a full core from interactive work.
echo 19 > /proc/self/autogroup 2>/dev/null || true
log() { echo "$(date -u +%FT%TZ) $*" >> "$OUT/driver.log"; }
export -f log
log "driver $$ starts: $* ($JOBS at a time, out $OUT)"
# shellcheck disable=SC2016
printf '%s\n' "$@" | xargs -P "$JOBS" -I '{}' bash -c '
    log "{}: start/resume"
    if nice -n 19 .venv/bin/sslzoo benchmark --preset full --methods "{}" --out "$OUT" --threads 1 \
        --no-baselines --no-mini-zoo --no-progress >> "$OUT/{}.log" 2>&1; then
        log "{}: done"
    else
        log "{}: FAILED (exit $?); see $OUT/{}.log"
    fi
'
log "driver $$ finished"
