#!/bin/bash
# The shapes MMDiT's tables (docs/results/dit/report.md), as run: one CPU core of a 2-core machine shared with the
# training. One benchmark at a time; each resumes if interrupted. From the repository root:
#   MODEL=checkpoints/shapes-mmdit/model bash docs/results/dit/commands.sh [STAGE...]
# (no stage: all of them, in this order). MODEL may be any export of runs/shapes-mmdit (an intermediate one for
# progress marks); OUT names where the images go (default bench-out/dit-<model folder's parent name>).
set -e
MODEL=${MODEL:-checkpoints/shapes-mmdit/model}
OUT=${OUT:-bench-out/dit-$(basename "$(dirname "$MODEL")")}
N=${N:-200}          # competence prompts per kind and box benchmark size
CAL_N=${CAL_N:-24}   # calibration layouts per sweep point
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
LG="nice -n 10 layoutguide"
METHODS=${METHODS:-none,regional,refocus,regional+refocus}

stage() {
  case $1 in
    # unguided competence on held-out prompts (targets: single object >= 0.90, two objects both colours >= 0.70)
    competence) $LG shapes competence --model "$MODEL" --n "$N" --device cpu --out "$OUT/competence" ;;
    # word-attention localisation (the premise of refocus; 0.91-1.02 at stage 1's step 3,840, 3.2-4.6 at 4,700)
    localisation) mkdir -p "$OUT" && PYTHONPATH=src nice -n 10 python benchmarks/attention_localisation.py --model "$MODEL" --n 16 \
      --out "$OUT/localisation.md" ;;
    # regional's mask steps and base blend, then refocus's step and temperature, on suite seed 1 (disjoint from the
    # benchmark's seed 0); --write puts the chosen values in the model's layoutguide.json
    calibrate) PYTHONPATH=src nice -n 10 python benchmarks/calibrate.py --model "$MODEL" --methods regional,refocus \
      --n "$CAL_N" --seed 1 --write --out "$OUT/calibration" ;;
    # box benchmark, 1-4 objects, suite seed 0
    box) $LG bench shapes --model "$MODEL" --methods "$METHODS" --n "$N" --seed 0 --batch-size 16 --device cpu \
      --out "$OUT/box-s0-n$N" ;;
    # mask benchmark: exact masks, 1-3 objects, seed 2 (the settings of docs/results/masks)
    masks) $LG bench shapes --model "$MODEL" --masks --max-objects 3 --methods "$METHODS" --n 32 --seed 2 \
      --batch-size 16 --device cpu --out "$OUT/masks-s2" ;;
    # relation benchmark: rule-planned layouts of prompts with counts ("two red triangles above ...")
    relations) $LG bench relations --model "$MODEL" --planners rule --methods "$METHODS" --n 48 --seed 0 \
      --batch-size 16 --device cpu --out "$OUT/relations-s0" ;;
    # what moves: another suite seed (layouts and noise), region phrases with an article, half the steps
    seed1) $LG bench shapes --model "$MODEL" --methods "$METHODS" --n 32 --seed 1 --batch-size 16 --device cpu \
      --out "$OUT/box-s1-n32" ;;
    article) $LG bench shapes --model "$MODEL" --methods "$METHODS" --phrase-form article --n 32 --seed 0 \
      --batch-size 16 --device cpu --out "$OUT/box-s0-n32-article" ;;
    steps14) $LG bench shapes --model "$MODEL" --methods "$METHODS" --steps 14 --n 32 --seed 0 --batch-size 16 \
      --device cpu --out "$OUT/box-s0-n32-steps14" ;;
    *) echo "unknown stage $1" >&2; exit 2 ;;
  esac
}

for s in "${@:-competence localisation calibrate box masks relations seed1 article steps14}"; do
  for one in $s; do stage "$one"; done
done
