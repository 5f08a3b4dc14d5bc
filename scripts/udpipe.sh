#!/usr/bin/env bash
# UDPipe 1 beside attend on raw text: trains UDPipe 1.4 (ufal.udpipe from
# PyPI, in its own virtual environment under target/udpipe-venv) on the
# same treebank with its default tokenizer and tagger settings (lemmas and
# features off), tags the test file's raw text with both tools, and prints
# both CoNLL 2018 tables (scored by `attend eval --system --gold`) and
# their words per second. Not needed by the tests or CI.
#
#   scripts/udpipe.sh [TREEBANK_DIR] [ATTEND_MODEL_DIR]
#
# TREEBANK_DIR defaults to ../shared/data/ud-english-ewt; ATTEND_MODEL_DIR
# (a tagger with its segmenter/, as the README's main job writes it)
# defaults to runs/ewt. UDPipe's training takes about 40 minutes on one
# core; the model is kept in target/udpipe/ and reused. UDPIPE_TOKENIZER
# and UDPIPE_TAGGER (";iterations=1") add UDPipe training options, for a
# quick check of the script.
set -euo pipefail
cd "$(dirname "$0")/.."
TREEBANK=${1:-../shared/data/ud-english-ewt}
MODEL=${2:-runs/ewt}
VENV=target/udpipe-venv
OUT=target/udpipe
mkdir -p "$OUT"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet ufal.udpipe==1.4.0.1
fi
TRAIN=$(ls "$TREEBANK"/*-ud-train.conllu)
DEV=$(ls "$TREEBANK"/*-ud-dev.conllu)
TEST=$(ls "$TREEBANK"/*-ud-test.conllu)
cargo build --release -q -p attend-cli
ATTEND=target/release/attend
"$ATTEND" raw-text "$TEST" --output "$OUT/test.txt"
WORDS=$(grep -cP '^\d+\t' "$TEST")

"$VENV/bin/python" - "$TRAIN" "$DEV" "$OUT" <<'PY'
import os, sys, time
from ufal.udpipe import Model, Pipeline, ProcessingError, Trainer, InputFormat
train_path, dev_path, out = sys.argv[1:4]
model_path = os.path.join(out, "udpipe.model")
if not os.path.exists(model_path):
    read = lambda p: open(p, encoding="utf-8").read()
    fmt = InputFormat.newInputFormat("conllu")
    def sentences(text):
        from ufal.udpipe import Sentence
        fmt.setText(text)
        s, all_ = Sentence(), []
        err = ProcessingError()
        while fmt.nextSentence(s, err):
            all_.append(s)
            s = Sentence()
        return all_
    from ufal.udpipe import Sentences
    def vec(text):
        v = Sentences()
        for s in sentences(text):
            v.push_back(s)
        return v
    t0 = time.time()
    err = ProcessingError()
    # Default tokenizer and tagger; no lemmas, no features, no parser.
    tokenizer = os.environ.get("UDPIPE_TOKENIZER", Trainer.DEFAULT)
    tagger = "use_lemma=0;provide_lemma=0;use_feats=0;provide_feats=0" + os.environ.get("UDPIPE_TAGGER", "")
    model = Trainer.train("morphodita_parsito", vec(read(train_path)), vec(read(dev_path)), tokenizer, tagger, Trainer.NONE, err)
    if err.occurred():
        sys.exit("UDPipe training failed: " + err.message)
    open(model_path, "wb").write(model if isinstance(model, bytes) else model.encode("utf-8", "surrogateescape"))
    print(f"UDPipe trained in {(time.time() - t0) / 60:.1f} min", file=sys.stderr)
model = Model.load(model_path)
pipeline = Pipeline(model, "tokenize", Pipeline.DEFAULT, Pipeline.NONE, "conllu")
text = open(os.path.join(out, "test.txt"), encoding="utf-8").read()
t0 = time.time()
err = ProcessingError()
result = pipeline.process(text, err)
secs = time.time() - t0
open(os.path.join(out, "udpipe-test.conllu"), "w", encoding="utf-8").write(result)
open(os.path.join(out, "udpipe-seconds"), "w").write(f"{secs}")
PY
"$ATTEND" --threads 2 tag --model "$MODEL" --input "$OUT/test.txt" --output "$OUT/attend-test.conllu" --stats 2> "$OUT/attend-stats"

echo "== UDPipe 1.4 ($(awk -v w="$WORDS" '{printf "%.0f words/s", w / $1}' "$OUT/udpipe-seconds"))"
# UDPipe writes `_` in HEAD without a parser; attend eval reads that and leaves the dependency metrics out.
"$ATTEND" eval --system "$OUT/udpipe-test.conllu" --gold "$TEST" | head -6
echo "== attend ($(sed -E 's/.*total [0-9.]+ s \(([0-9]+ words\/s)\).*/\1/' "$OUT/attend-stats"))"
"$ATTEND" eval --system "$OUT/attend-test.conllu" --gold "$TEST" | head -6
