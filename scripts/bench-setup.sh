# Sourced by the scripts that run PyTorch beside attend (bench-torch.sh,
# bench-torch-attention.sh): makes sure target/torch-venv has PyTorch (CPU
# use only; the PyPI wheel brings CUDA libraries too, about 5 GB) and sets
# $TORCH_PY to its python, builds attend (release) and makes $OUT, the
# folder for both sides' results. Not needed by the tests or CI.
TORCH_VENV=target/torch-venv
TORCH_VERSION=2.15.0
if [ ! -x "$TORCH_VENV/bin/python" ] || ! "$TORCH_VENV/bin/python" -c "import torch" 2>/dev/null; then
  python3 -m venv "$TORCH_VENV"
  "$TORCH_VENV/bin/pip" install --quiet "torch==$TORCH_VERSION"
fi
TORCH_PY=$TORCH_VENV/bin/python
cargo build --release -q -p attend-cli
OUT=target/bench-torch
mkdir -p "$OUT"
