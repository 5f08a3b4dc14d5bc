#!/usr/bin/env bash
# The README's test command: every Rust test, then the Python package built
# into its own virtual environment (numpy, scikit-learn, scipy, pytest from
# PyPI) and its tests, which also run the `attend` CLI beside it.
# ATTEND_VENV chooses the environment (default target/py-venv, reused).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
cargo build --locked -p attend-cli
venv=${ATTEND_VENV:-target/py-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q "maturin>=1.16,<2" "numpy>=1.23" "scikit-learn>=1.6" "scipy>=1.10" "pytest>=7"
# Built in the dev profile, into the same target/ as the Rust tests: the
# dependencies compiled above are reused (they are optimised in every profile).
(cd crates/attend-py && VIRTUAL_ENV="$(cd "../../$venv" && pwd)" PATH="$(cd "../../$venv" && pwd)/bin:$PATH" maturin develop --locked -q)
ATTEND_BIN="$PWD/target/debug/attend" "$venv/bin/python" -m pytest -q crates/attend-py/tests
