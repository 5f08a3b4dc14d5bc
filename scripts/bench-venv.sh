#!/usr/bin/env bash
# Shared set-up of the Python benchmarks: builds the release binary and the
# release wheel, and installs the wheel with numpy and any packages given as
# arguments into its own virtual environment, target/bench-venv (reused).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p attend-cli
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q "maturin>=1.16,<2" "numpy>=1.23" "$@"
rm -rf target/bench-wheels
"$venv/bin/maturin" build --release --locked --quiet -m crates/attend-py/Cargo.toml -o target/bench-wheels
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps target/bench-wheels/attend-*.whl
