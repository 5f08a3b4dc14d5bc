#!/usr/bin/env bash
# Tagging about a million words of raw text (EWT train's text, repeated)
# with the CLI on all cores and with attend.dask on LocalClusters of 1 and
# 2 worker processes of 1 thread each: words per second, the speed-ups the
# issue asks for (2 workers >= 1.8x 1 worker, >= 0.85x the CLI on as many
# cores) and peak memory per worker; checks that every engine's CoNLL-U is
# byte-equal to the CLI's, and where each cluster's CPU time went (workers,
# nannies, client and scheduler). With --write, each cluster also runs with
# its workers writing CoNLL-U files (one per partition) instead of sending
# the text back to the client. Builds the release binary and wheel into
# target/bench-venv with dask[distributed] (scripts/bench-venv.sh), then runs
# scripts/bench_dask.py (its --help: model, words, workers, partitions, --write). Not
# a test: a benchmark to run by hand (about 6 minutes on 2 cores with the
# README's model in runs/ewt).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bench-venv.sh "dask[distributed]>=2024.8"
target/bench-venv/bin/python scripts/bench_dask.py --bin target/release/attend "$@"
