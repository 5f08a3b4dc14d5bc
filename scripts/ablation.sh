#!/usr/bin/env bash
# Ablation of the tagger on UD English EWT: positional encoding, heads, depth.
# Every variant trains with the same short budget (EPOCHS, default 2) so the
# table compares architectures, not converged accuracy. Prints a Markdown table.
# Usage: scripts/ablation.sh [TREEBANK_DIR] [OUT_DIR]
set -euo pipefail
bank=${1:-../shared/data/ud-english-ewt}
out=${2:-runs/ablation}
epochs=${EPOCHS:-2}
cargo build --release --quiet
bin=target/release/attend
common=(--epochs "$epochs" --batch-tokens 1024 --warmup-steps 150)
variants=(
  "rope, 8 heads, 4 layers (baseline)|--layers 4"
  "no position|--layers 4 --position none"
  "sinusoidal|--layers 4 --position sinusoidal"
  "learned|--layers 4 --position learned"
  "1 head|--layers 4 --heads 1"
  "4 heads|--layers 4 --heads 4"
  "2 layers|--layers 2"
  "6 layers|--layers 6"
)
echo "| variant | dev UPOS | test UPOS | test unknown words | train tok/s |"
echo "|---|---|---|---|---|"
for v in "${variants[@]}"; do
  name=${v%%|*}; flags=${v#*|}
  dir="$out/$(echo "$name" | tr -c 'a-z0-9' '_')"
  # shellcheck disable=SC2086
  "$bin" train tagger --treebank "$bank" --out "$dir" "${common[@]}" $flags 2>/dev/null
  python3 - "$dir/train_report.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["train"]
print(f"| {sys.argv[2]} | {100*r['dev']['accuracy']:.2f} | {100*r['test']['accuracy']:.2f} | "
      f"{100*r['test']['unknown_accuracy']:.2f} | {t['train_tokens']/t['train_seconds']:.0f} |")
PY
done
