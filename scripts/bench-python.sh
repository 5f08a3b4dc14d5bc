#!/usr/bin/env bash
# Prediction from Python against the CLI on the same model and data (issue:
# within 10% of the CLI's throughput). Builds the release binary and the
# release wheel into target/bench-venv (scripts/bench-venv.sh), then runs
# scripts/bench_python.py (its --help: the set, copies, threads, runs). Not a
# test: a benchmark to run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bench-venv.sh
target/bench-venv/bin/python scripts/bench_python.py --bin target/release/attend "$@"
