#!/usr/bin/env bash
# attend's default tagger beside its PyTorch twin (scripts/torch_twin.py),
# same architecture, same batches, same learning rates, same thread count:
# training words/s, tagging words/s on the test set, peak RSS, and the
# ratios. PyTorch is installed in its own virtual environment under
# target/torch-venv by scripts/bench-setup.sh. Not needed by the tests or CI.
#
#   scripts/bench-torch.sh [--threads N] [--steps N] [--busy] [--runs N] [TREEBANK_DIR]
#
# --busy starts one single-threaded busy loop beside each run, to see how
# each implementation copes with a machine it does not have to itself.
# --runs N alternates the two implementations N times and reports each
# run (the machine is shared: read the spread, not one number).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=2
STEPS=100
RUNS=1
BUSY=0
TREEBANK=../shared/data/ud-english-ewt
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --busy) BUSY=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) TREEBANK=$1; shift ;;
  esac
done
source scripts/bench-setup.sh
ATTEND=target/release/attend

busy_pid=""
start_busy() { if [ "$BUSY" = 1 ]; then (while :; do :; done) & busy_pid=$!; fi; }
stop_busy() { if [ -n "$busy_pid" ]; then kill "$busy_pid" 2>/dev/null || true; wait "$busy_pid" 2>/dev/null || true; busy_pid=""; fi; }
trap stop_busy EXIT

# The batches once, with no other process running.
"$ATTEND" --threads "$THREADS" bench tagger --treebank "$TREEBANK" --steps "$STEPS" --tag-runs 1 --export "$OUT" --json > /dev/null
for run in $(seq 1 "$RUNS"); do
  start_busy
  "$ATTEND" --threads "$THREADS" bench tagger --treebank "$TREEBANK" --steps "$STEPS" --json > "$OUT/attend-$run.json"
  stop_busy
  start_busy
  OMP_NUM_THREADS=$THREADS "$TORCH_PY" -W ignore scripts/torch_twin.py "$OUT/batches.json" --threads "$THREADS" --json > "$OUT/torch-$run.json"
  stop_busy
done

python3 - "$OUT" "$RUNS" "$THREADS" "$BUSY" <<'PY'
import json, os, platform, sys, statistics
out, runs, threads, busy = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "no AVX2"
print(f"default tagger, {cpu} ({isa}), {threads} threads{', one busy process beside' if busy else ''}")
print(f"{'run':>3} {'impl':<16} {'train w/s':>10} {'tag w/s':>10} {'peak RSS MiB':>13} {'loss first->last':>18}")
ratios, f32_ratios = [], []
for run in range(1, runs + 1):
    a = json.load(open(os.path.join(out, f"attend-{run}.json")))
    t = json.load(open(os.path.join(out, f"torch-{run}.json")))
    for name, d in (("attend", a), (t["implementation"], t)):
        r = d["result"]
        print(f"{run:>3} {name:<16} {r['train_words_per_second']:>10.0f} {r['tag_words_per_second']:>10.0f} {r['peak_rss_mib']:>13.0f} {r['first_loss']:>8.3f} -> {r['last_loss']:.3f}")
    ar, tr = a["result"], t["result"]
    ratios.append((ar["train_words_per_second"] / tr["train_words_per_second"], ar["tag_words_per_second"] / tr["tag_words_per_second"], ar["peak_rss_mib"] / tr["peak_rss_mib"]))
    if ar.get("tag_f32_words_per_second"):
        f32_ratios.append(ar["tag_f32_words_per_second"] / tr["tag_words_per_second"])
for label, i in (("training", 0), ("tagging", 1), ("peak RSS", 2)):
    vals = [r[i] for r in ratios]
    spread = f" (runs: {', '.join(f'{v:.2f}' for v in vals)})" if len(vals) > 1 else ""
    print(f"attend / pytorch {label}: {statistics.median(vals):.2f}x{spread}")
precision = a["result"].get("tag_precision") or "f32"
print(f"attend tagged with {precision} matrix products (attend --precision; auto: bf16 where the CPU has AVX-512 BF16)")
if f32_ratios:
    print(f"attend / pytorch tagging with f32 products (the same runs): {statistics.median(f32_ratios):.2f}x (runs: {', '.join(f'{v:.2f}' for v in f32_ratios)})")
PY
