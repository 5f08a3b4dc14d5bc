#!/usr/bin/env bash
# The baseline users of the UEA/UCR sets pick first, side by side with attend:
# aeon's MiniRocketClassifier on the same .ts files (accuracy, fit + predict
# time), in its own virtual environment. Not needed by the tests or CI.
#
#   scripts/minirocket.sh [DATA_DIR] [SET...]     (default: ../shared/data/uea, the three shared sets)
#
# MiniRocket needs equal lengths: unequal series are zero-padded at the end
# to the longest (train and test together), as aeon's own loaders do when
# asked for a 3-D array.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${MINIROCKET_VENV:-target/minirocket-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "aeon==1.6.*"
fi
data=${1:-../shared/data/uea}
shift || true
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(JapaneseVowels BasicMotions PLAID)
OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 "$venv/bin/python" scripts/minirocket.py "$data" "${sets[@]}"
