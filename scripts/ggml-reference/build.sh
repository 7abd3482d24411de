#!/bin/sh
# Build ggml's own quantizers into ./harness, to regenerate tests/engine/export/data/kquant_vectors.npz.
# usage: scripts/ggml-reference/build.sh /path/to/ggml   (a checkout of github.com/ggml-org/ggml)
# Plain x86-64 flags and no FMA contraction: each float operation is rounded once, as in numpy.
set -e
GGML=${1:?give the path of a ggml checkout}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${2:-$HERE/build}
mkdir -p "$OUT/ggml-cpu"
cp "$GGML/src/ggml-cpu/ggml-cpu-impl.h" "$OUT/ggml-cpu/"
FLAGS="-O2 -ffp-contract=off -std=gnu11 -I$OUT -I$GGML/src -I$GGML/include"
gcc $FLAGS -c "$GGML/src/ggml-quants.c" -o "$OUT/quants.o"
gcc $FLAGS -DGGML_COMMON_DECL_C -c "$HERE/stubs.c" -o "$OUT/stubs.o"
gcc $FLAGS -c "$HERE/harness.c" -o "$OUT/harness.o"
gcc "$OUT/harness.o" "$OUT/quants.o" "$OUT/stubs.o" -lm -o "$OUT/harness"
echo "$OUT/harness"
