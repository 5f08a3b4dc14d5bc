#!/usr/bin/env bash
# The README's test command: every Rust test, then the Python package: one
# abi3 wheel built with maturin, installed into two virtual environments:
#  - target/py-venv: with scikit-learn, scipy, dask[distributed,dataframe]
#    and pytest; all Python tests (they also run the `attend` CLI beside the
#    package; Ray's are skipped unless Ray is installed there);
#  - target/py-venv-numpy: numpy and pytest only (the package's only
#    dependency): the tests that need no scikit-learn, through its fallback.
# Both environments are reused on a second run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
# The CLI's tests built target/debug/attend; the Python tests run it.
[ -x target/debug/attend ] || cargo build --locked -p attend-cli
python=${PYTHON:-python3}
for venv in target/py-venv target/py-venv-numpy; do
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
done
target/py-venv/bin/python -m pip install -q "maturin>=1.16,<2" "numpy>=1.23" "scikit-learn>=1.6" "scipy>=1.10" "dask[distributed,dataframe]>=2024.8" "pytest>=7"
target/py-venv-numpy/bin/python -m pip install -q "numpy>=1.23" "pytest>=7"
# The dev profile, into the same target/ (every profile optimises the
# dependencies). Built alone, attend-py's dependencies get fewer features
# than in the workspace's test build, so some compile again: about 5 minutes
# on 2 cores from a clean clone.
rm -rf target/wheels
target/py-venv/bin/maturin build --locked --profile dev --strip --quiet -m crates/attend-py/Cargo.toml -o target/wheels
wheel=$(ls target/wheels/attend-*.whl)
export ATTEND_BIN="$PWD/target/debug/attend"
for venv in target/py-venv target/py-venv-numpy; do
  "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"
done
echo "== Python tests (numpy only: no scikit-learn, no scipy)"
(cd crates/attend-py && ../../target/py-venv-numpy/bin/python -m pytest -q -p no:cacheprovider tests/test_sequence.py tests/test_errors.py tests/test_behaviour.py)
echo "== Python tests"
# Dask is installed there: its tests must run, not skip.
(cd crates/attend-py && ATTEND_REQUIRE_DASK=1 ../../target/py-venv/bin/python -m pytest -q -p no:cacheprovider tests)
