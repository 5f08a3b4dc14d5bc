#!/usr/bin/env bash
# attend with its defaults on every UEA/UCR set of a folder, side by side
# with aeon's MiniRocket on the same files: one table (test accuracy mean
# +- std over seeds, fit and predict times) and the mean over the sets.
#
#   scripts/uea.sh [--data DIR] [--seeds N] [--sets "A B ..."] [--out DIR]
#                  [--no-minirocket] [-- ATTEND_FLAGS...]
#
# DIR: folders SET/SET_TRAIN.ts and SET/SET_TEST.ts (default
# ../shared/data/uea, nine sets). attend's models and each set's
# report.json go to OUT/SET (default runs/uea); MiniRocket's results to
# OUT/minirocket.json (aeon 1.6 in its own virtual environment,
# target/minirocket-venv, set up on first use; scripts/minirocket.py).
# Flags after -- go to every `attend train sequence` (an ablation: the
# defaults plus or minus one thing). --no-minirocket reuses
# OUT/minirocket.json from an earlier run. 2 threads throughout.
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data/uea seeds=5 sets="" out=runs/uea minirocket=1
while [ $# -gt 0 ]; do
  case $1 in
    --data) data=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --sets) sets=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-minirocket) minirocket=0; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "uea.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$sets" ]; then
  sets=$(for d in "$data"/*/; do n=$(basename "$d"); [ -f "$d/${n}_TRAIN.ts" ] && echo "$n"; done | tr '\n' ' ')
fi
[ -n "$sets" ] || { echo "uea.sh: no SET/SET_TRAIN.ts under $data" >&2; exit 1; }
cargo build --release -p attend-cli
mkdir -p "$out"
for set in $sets; do
  echo "== $set" >&2
  target/release/attend --threads 2 train sequence --train "$data/$set/${set}_TRAIN.ts" --test "$data/$set/${set}_TEST.ts" \
    --out "$out/$set" --seeds "$seeds" "$@"
done
if [ "$minirocket" = 1 ]; then
  venv=${MINIROCKET_VENV:-target/minirocket-venv}
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "aeon==1.6.*"
  fi
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 "$venv/bin/python" scripts/minirocket.py "$data" --json "$out/minirocket.json" $sets
fi
# shellcheck disable=SC2086
python3 scripts/uea_table.py "$out" $sets
