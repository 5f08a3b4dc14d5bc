#!/usr/bin/env bash
# attend on the three shared UEA/UCR sets, 5 seeds each, 2 threads: the
# numbers of docs/sequences.md. Models and reports go to runs/uea/SET
# (report.json: every seed's test scores and times).
#
#   scripts/uea.sh [DATA_DIR]          (default: ../shared/data/uea)
#
# Side by side with aeon's MiniRocket: scripts/minirocket.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/uea}
cargo build --release -p attend-cli
run() {
  local set=$1
  shift
  target/release/attend --threads 2 train sequence --train "$data/$set/${set}_TRAIN.ts" --test "$data/$set/${set}_TEST.ts" \
    --out "runs/uea/$set" --seeds 5 "$@"
}
run JapaneseVowels --sequence-norm --pooling summary
run BasicMotions
run PLAID --patch 16 --sequence-norm --lr 0.003 --epochs 200
