#!/bin/bash
# The preset comparison of docs/results/presets/report.md, as run (one CPU core of a 2-core machine shared with other
# jobs; hence n=64 and n=32, not 200). One benchmark at a time; each resumes if interrupted. From the repository
# root: bash docs/results/presets/commands.sh [STAGE...] (no stage: all of them, in this order; the report's numbers
# come from the stages before collect, the last three were not run to the end).
set -e
OUT=${OUT:-bench-out/presets}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
LG="nice -n 10 layoutguide"
SD='refocus,refocus[preset=official],refocus[preset=paper],zestguide,zestguide[preset=official],zestguide[preset=paper]'
SD4='refocus,refocus[preset=official],zestguide,zestguide[preset=official]'
SD4_ZEST_FIRST='zestguide,zestguide[preset=official],refocus,refocus[preset=official]'
GLIGEN_REFOCUS='gligen+refocus,gligen+refocus[preset=official],gligen+refocus[preset=paper]'
GLIGEN="gligen,gligen[preset=official],$GLIGEN_REFOCUS"

# n=200 (the size): one call per added row, each resuming into the same folder, so every finished row has
# its results.json even when a later row is stopped; the tuned SD rows come last (the published n=200 run holds them,
# made in batches of 8: docs/results/shapes/results.json)
SD200_ROWS=('refocus[preset=official]' 'zestguide[preset=official]' 'zestguide[preset=paper]' 'refocus[preset=paper]'
  'refocus' 'zestguide')
GLIGEN200_ROWS=('gligen+refocus' 'gligen+refocus[preset=official]' 'gligen+refocus[preset=paper]')
grow() {  # grow MODEL FOLDER ROW...: bench shapes with the first 1, 2, ... rows (each call resumes the folder)
  local model=$1 folder=$2 rows=""; shift 2
  for row in "$@"; do
    rows=${rows:+$rows,}$row
    $LG bench shapes --model "$model" --methods "$rows" --n 200 --seed 0 --batch-size 16 --device cpu --out "$folder"
  done
}

stage() {
  case $1 in
    # n=200: the SD shapes model's preset rows, then the GLIGEN model's
    sd200) grow shapes $OUT/box-shapes-s0-n200 "${SD200_ROWS[@]}" ;;
    gligen200) grow shapes-gligen $OUT/box-gligen-s0-n200 "${GLIGEN200_ROWS[@]}" ;;
    # ZestGuide's presets on the mask benchmark (the settings of docs/results/masks: masks, 1-3 objects, seed 2)
    masks) $LG bench shapes --model shapes --masks --max-objects 3 \
      --methods 'zestguide,zestguide[preset=official],zestguide[preset=paper]' --n 32 --seed 2 --batch-size 16 \
      --device cpu --out $OUT/masks-shapes-s2-n32 ;;
    # refocus's presets on the relation benchmark (its prompts carry counts: "two red triangles above ...")
    relations) $LG bench relations --model shapes --planners rule \
      --methods 'refocus,refocus[preset=official],refocus[preset=paper]' --n 48 --seed 0 --batch-size 16 --device cpu \
      --out $OUT/relations-shapes-s0-n48 ;;
    # 1. box benchmark, shipped SD shapes model: every preset of both methods on the same layouts and seeds
    sd) $LG bench shapes --model shapes --methods "$SD" --n 64 --seed 0 --batch-size 16 --device cpu \
      --out $OUT/box-shapes-s0-n64 ;;
    # 2. the same on the shipped GLIGEN shapes model; gligen / gligen[preset=official] separate GLIGEN's own official
    #    settings (beta 0.3, "a " prefix, PLMS 50, CFG 7.5, negative prompt) from refocus's options
    #    (run first with the three gligen+refocus rows, then resumed with all five into the same folder: a resumed run
    #    generates only the missing rows' images, and its results.json holds every row)
    gligen-refocus) $LG bench shapes --model shapes-gligen --methods "$GLIGEN_REFOCUS" --n 64 --seed 0 --batch-size 16 \
      --device cpu --out $OUT/box-gligen-s0-n64 ;;
    gligen) $LG bench shapes --model shapes-gligen --methods "$GLIGEN" --n 64 --seed 0 --batch-size 16 --device cpu \
      --out $OUT/box-gligen-s0-n64 ;;
    # 3a. the tuned options under the official presets' steps and CFG (50 steps, CFG 7.5 on every step; the
    #     model's DDIM, no negative prompt): is it the sampling or the method's options?
    sampling) $LG bench shapes --model shapes --methods 'none,refocus,zestguide' --steps 50 --guidance-scale 7.5 \
      --guidance-interval all --n 16 --seed 0 --batch-size 16 --device cpu --out $OUT/box-shapes-s0-n16-cfg7.5 ;;
    # 3b. what moves: a second suite seed (other layouts, other initial noise); tuned and official only (time)
    seed1) $LG bench shapes --model shapes --methods "$SD4_ZEST_FIRST" --n 32 --seed 1 --batch-size 16 --device cpu \
      --out $OUT/box-shapes-s1-n32 ;;
    # 3c. what moves: region phrases with an article ("a red circle"), the first 32 layouts of stage sd; tuned and
    #     official only (time)
    article) $LG bench shapes --model shapes --methods "$SD4" --phrase-form article --n 32 --seed 0 --batch-size 16 \
      --device cpu --out $OUT/box-shapes-s0-n32-article ;;
    # 3d. the official presets without their negative prompt (first 16 layouts of stage sd; prints the numbers)
    negative) PYTHONPATH=src nice -n 10 python docs/results/presets/negative_prompt.py ;;
    # why 2 of 64 tuned ZestGuide images score otherwise than the published run (needs stage sd's images)
    rounding) PYTHONPATH=src nice -n 10 python docs/results/presets/batch_rounding.py ;;
    # box-edge cell counts on the n=200 suites (seeds 0 and 1): no generation
    edges) PYTHONPATH=src python docs/results/presets/box_edges.py ;;
    # the tables (rewrites per_image.csv and runs.json from the bench folders)
    collect) PYTHONPATH=src python docs/results/presets/collect.py $OUT ;;
    *) echo "unknown stage $1" >&2; exit 2 ;;
  esac
}

for s in "${@:-sd gligen-refocus sampling negative rounding edges collect seed1 gligen article}"; do
  for one in $s; do stage "$one"; done
done
