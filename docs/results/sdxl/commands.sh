#!/bin/bash
# The SDXL-architecture shapes model's tables (issue #20), side by side with the SD shapes model's published ones:
# the same suites, seeds and sizes. One benchmark at a time; each resumes if interrupted. From the repository root:
#   MODEL=checkpoints/shapes-sdxl/model bash docs/results/sdxl/commands.sh [STAGE...]
# (no stage: all of them, in this order). MODEL may be an intermediate export (progress marks); OUT names where the
# images go (default bench-out/sdxl-<model folder's parent name>).
set -e
MODEL=${MODEL:-checkpoints/shapes-sdxl/model}
OUT=${OUT:-bench-out/sdxl-$(basename "$(dirname "$MODEL")")}
N=${N:-200}          # box benchmark size (the SD shapes table: 200)
CAL_N=${CAL_N:-24}   # calibration layouts per sweep point
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
LG="nice -n 10 layoutguide"

stage() {
  case $1 in
    # unguided competence on held-out prompts (targets: single object >= 0.90, two objects both colours >= 0.70)
    competence) $LG shapes competence --model "$MODEL" --n 200 --device cpu --out "$OUT/competence" ;;
    # word-attention localisation (the premise of every attention method; SD shapes: 13-17)
    localisation) mkdir -p "$OUT" && PYTHONPATH=src nice -n 10 python benchmarks/attention_localisation.py --model "$MODEL" --n 16 \
      --out "$OUT/localisation.md" ;;
    # step sizes and temperatures of the gradient methods on suite seed 1; --write into the model's layoutguide.json
    calibrate) PYTHONPATH=src nice -n 10 python benchmarks/calibrate.py --model "$MODEL" --n "$CAL_N" --seed 1 --write \
      --out "$OUT/calibration" ;;
    # every method and combination that runs on the model: docs/results/all's suite (n=32, seed 0)
    all) $LG bench shapes --model "$MODEL" --methods all --n 32 --seed 0 --batch-size 16 --device cpu \
      --out "$OUT/all-s0-n32" ;;
    # the box benchmark at the issue's size: docs/results/shapes's methods (n=200, seed 0)
    box) $LG bench shapes --model "$MODEL" --methods none,refocus,layout-guidance,zestguide --n "$N" --seed 0 \
      --batch-size 16 --device cpu --out "$OUT/box-s0-n$N" ;;
    # masks: docs/results/masks's settings (exact masks, 1-3 objects, seed 2)
    masks) $LG bench shapes --model "$MODEL" --masks --max-objects 3 \
      --methods none,zestguide,zestguide+pww,pww,densediffusion,refocus,layout-guidance --n 32 --seed 2 \
      --batch-size 16 --device cpu --out "$OUT/masks-s2-n32" ;;
    # relations: docs/results/relations's settings (rule planner, n=48, seed 0)
    relations) $LG bench relations --model "$MODEL" --planners rule \
      --methods 'none,refocus,layout-guidance,zestguide,refocus[tokens=last],pww+refocus[refocus.tokens=last]' \
      --n 48 --seed 0 --batch-size 16 --device cpu --out "$OUT/relations-s0-n48" ;;
    # what moves: another suite seed, article phrases
    seed1) $LG bench shapes --model "$MODEL" --methods none,refocus,layout-guidance,zestguide --n 32 --seed 1 \
      --batch-size 16 --device cpu --out "$OUT/box-s1-n32" ;;
    article) $LG bench shapes --model "$MODEL" --methods none,refocus,layout-guidance,zestguide --phrase-form article \
      --n 32 --seed 0 --batch-size 16 --device cpu --out "$OUT/box-s0-n32-article" ;;
    *) echo "unknown stage $1" >&2; exit 2 ;;
  esac
}

for s in "${@:-competence localisation calibrate all box masks relations seed1 article}"; do
  for one in $s; do stage "$one"; done
done
