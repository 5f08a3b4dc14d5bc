#!/usr/bin/env bash
# Prediction from Python against the CLI on the same model and data (issue:
# within 10% of the CLI's throughput). Builds the release binary and the
# release wheel, installs it into its own virtual environment
# (target/bench-venv), then runs scripts/bench_python.py (its --help: the set,
# copies, threads, runs). Not a test: a benchmark to run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p attend-cli
venv=target/bench-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q "maturin>=1.16,<2" "numpy>=1.23"
rm -rf target/bench-wheels
"$venv/bin/maturin" build --release --locked --quiet -m crates/attend-py/Cargo.toml -o target/bench-wheels
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps target/bench-wheels/attend-*.whl
"$venv/bin/python" scripts/bench_python.py --bin target/release/attend "$@"
