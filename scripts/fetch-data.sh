#!/usr/bin/env bash
# Downloads the public data attend's docs use and checks every file against
# its SHA-256, then converts the Planetoid release to attend's graph format:
#
#   DIR/ud-english-ewt/   UD English EWT, release r2.16 (2025-05-15), CC BY-SA 4.0:
#                         en_ewt-ud-{train,dev,test}.conllu, LICENSE.txt
#   DIR/planetoid/raw/    the Planetoid release of Cora (ind.cora.*, MIT licence)
#   DIR/planetoid/cora/   converted by `attend data planetoid` (nodes.tsv, edges.tsv,
#                         train.txt, val.txt, test.txt)
#
# Usage: scripts/fetch-data.sh [DIR]    (default: data/ in the repository)
# Needs curl (or wget) and sha256sum; the conversion builds attend if needed.
# The files are the ones this project measured on (../shared/data), byte for
# byte: docs/data.md lists the checksums and counts.
set -euo pipefail
# DIR is taken relative to where the script is called from; the default is
# data/ in the repository.
repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -ge 1 ]; then
  mkdir -p "$1"
  dir="$(cd "$1" && pwd)"
else
  dir="$repo/data"
fi
cd "$repo"

EWT_COMMIT=4c89b5833a70aa5ed3a00bad2f23f57992cc7df8          # tag r2.16 of UniversalDependencies/UD_English-EWT
PLANETOID_COMMIT=af6abf468a772cc055bec88c52e4d6f51b7c37e3    # kimiyoung/planetoid master
ewt_url="https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/$EWT_COMMIT"
planetoid_url="https://raw.githubusercontent.com/kimiyoung/planetoid/$PLANETOID_COMMIT"

fetch() { # URL FILE SHA256
  local url=$1 file=$2 sum=$3
  if [ -f "$file" ] && echo "$sum  $file" | sha256sum -c --status; then
    echo "have $file"
    return
  fi
  mkdir -p "$(dirname "$file")"
  echo "fetching $url"
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 -o "$file.part" "$url"
  else
    wget -q -O "$file.part" "$url"
  fi
  if ! echo "$sum  $file.part" | sha256sum -c --status; then
    echo "error: $url does not have the expected SHA-256 $sum (kept as $file.part)" >&2
    exit 1
  fi
  mv "$file.part" "$file"
}

ewt="$dir/ud-english-ewt"
fetch "$ewt_url/en_ewt-ud-train.conllu" "$ewt/en_ewt-ud-train.conllu" 3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b
fetch "$ewt_url/en_ewt-ud-dev.conllu"   "$ewt/en_ewt-ud-dev.conllu"   531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6
fetch "$ewt_url/en_ewt-ud-test.conllu"  "$ewt/en_ewt-ud-test.conllu"  e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd
fetch "$ewt_url/LICENSE.txt"            "$ewt/LICENSE.txt"            b3d1b0f4c6ae151f7eb78738f46ebd5ee140f8a7f76501ba26af123140d35ae7

raw="$dir/planetoid/raw"
while read -r name sum; do
  fetch "$planetoid_url/data/$name" "$raw/$name" "$sum"
done <<'SUMS'
ind.cora.x 23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab
ind.cora.y 94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1
ind.cora.allx 9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543
ind.cora.ally 2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71
ind.cora.tx b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a
ind.cora.ty 41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad
ind.cora.graph 58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d
ind.cora.test.index 297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875
SUMS
fetch "$planetoid_url/LICENSE" "$raw/LICENSE" 8eeeea48c8b4bc197ad1d7ab01143ac43d52053e560b175bca7ca722c4047234

attend=target/release/attend
[ -x "$attend" ] || cargo build --release -p attend-cli
"$attend" data planetoid --raw "$raw" --name cora --out "$dir/planetoid/cora"
(cd "$dir/planetoid/cora" && sha256sum -c --quiet <<'SUMS'
0a1fc047a7ed9d48ee1572f893a923ab26beb0b795859be4cebab5b051e846cb  nodes.tsv
8cc54b7df4589d453d3678e3fcd9e8b4c9206cb10bde585c3525c55ca4334416  edges.tsv
c0de86e68a97de4dfd324bb56ad0be175cd772c0d1e2d23d51dca66762abe524  train.txt
a3ce6ed911f90d6d6424f5776bb20d7f1f9b24732e4b2d99d6cd4163308b66c7  val.txt
fa3a51f3bf640543e579d2536ef3eaec80178f157ad0d6bf5b8ed61716144416  test.txt
SUMS
) && echo "checked: $dir/planetoid/cora matches the project's Cora byte for byte"
echo "done: $ewt and $dir/planetoid/cora"
