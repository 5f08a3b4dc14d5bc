#!/usr/bin/env bash
# attend's fused attention kernels beside PyTorch's CPU attention
# (scaled_dot_product_attention) on the same shapes and thread count: each
# row's time in both and the ratio (PyTorch time / attend time, so above 1
# means attend is faster). PyTorch comes from scripts/bench-setup.sh. Not
# needed by the tests or CI.
#
#   scripts/bench-torch-attention.sh [--threads N] [--sizes 1024,4096]
#       [--patterns dense,causal,window256] [--forward-only]
#       [--min-seconds S] [--isa auto|avx512|avx2|portable]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=2
SIZES=1024,4096
PATTERNS=dense,causal,window256
MIN_SECONDS=1
ISA=auto
FORWARD_ONLY=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --sizes) SIZES=$2; shift 2 ;;
    --patterns) PATTERNS=$2; shift 2 ;;
    --min-seconds) MIN_SECONDS=$2; shift 2 ;;
    --isa) ISA=$2; shift 2 ;;
    --forward-only) FORWARD_ONLY=(--forward-only); shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
source scripts/bench-setup.sh
target/release/attend --threads "$THREADS" bench attention --sizes "$SIZES" --patterns "$PATTERNS" \
  --min-seconds "$MIN_SECONDS" --isa "$ISA" "${FORWARD_ONLY[@]}" --json > "$OUT/attention-attend.json" 2>/dev/null
OMP_NUM_THREADS=$THREADS "$TORCH_PY" -W ignore scripts/torch_attention.py --sizes "$SIZES" --patterns "$PATTERNS" \
  --threads "$THREADS" --min-seconds "$MIN_SECONDS" "${FORWARD_ONLY[@]}" > "$OUT/attention-torch.json"

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
a = json.load(open(os.path.join(out, "attention-attend.json")))
t = json.load(open(os.path.join(out, "attention-torch.json")))
peak = a.get("fma_peak")
print(f"attention, batch*heads {a['batch_heads']}, head_dim {a['head_dim']}, {a['machine']}; {t['implementation']}")
if peak:
    print(f"FMA peak {peak['gflops']:.0f} GFLOP/s measured ({peak['isa']} FMA loop, {peak['threads']} threads)")
print(f"{'pattern':<12} {'N':>6} {'pass':<17} {'attend ms':>10} {'pytorch ms':>11} {'ratio':>7} {'attend % peak':>14}")
torch_rows = {(r["pattern"], r["seq"], r["pass"]): r for r in t["rows"]}
for r in a["rows"]:
    tr = torch_rows.get((r["pattern"], r["seq"], r["pass"]))
    if tr is None:
        continue
    pct = f"{100 * r['gflops'] / peak['gflops']:.1f}%" if peak else "n/a"
    print(f"{r['pattern']:<12} {r['seq']:>6} {r['pass']:<17} {1e3 * r['seconds']:>10.2f} {1e3 * tr['seconds']:>11.2f} {tr['seconds'] / r['seconds']:>6.2f}x {pct:>14}")
PY
