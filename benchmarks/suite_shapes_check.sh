#!/usr/bin/env bash
# `bench suite` (COCO-MIG format, the shapes detector) against `bench shapes` on the same layouts and images, on the
# shipped model: docs/results/public-suite-shapes.md. Usage: benchmarks/suite_shapes_check.sh [N] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-8}
SEED=${2:-0}
M=none,refocus,layout-guidance
OUT=bench-out/suite-shapes-s$SEED
DATA=$OUT/shapes-as-mig.json
mkdir -p "$OUT"
python benchmarks/shapes_as_mig.py --n "$N" --seed "$SEED" --out "$DATA"
common=(--suite coco-mig --data "$DATA" --detector shapes --methods "$M" --n "$N" --seed "$SEED" --device cpu)
layoutguide bench suite "${common[@]}" --matching one-to-one --score-threshold 0 --out "$OUT/1to1"
# the same images, rescored (copied, so nothing is generated again)
for variant in paper-t0:0 paper-t025:0.25; do
    name=${variant%%:*}
    rm -rf "${OUT:?}/$name" && mkdir -p "$OUT/$name" && cp -r "$OUT/1to1/images" "$OUT/$name/"
    layoutguide bench suite "${common[@]}" --score-threshold "${variant##*:}" --out "$OUT/$name"
done
rm -rf "${OUT:?}/shapes" && mkdir -p "$OUT/shapes" && cp -r "$OUT/1to1/images" "$OUT/shapes/"
layoutguide bench shapes --methods "$M" --n "$N" --seed "$SEED" --device cpu --out "$OUT/shapes"
