#!/bin/bash
# The preset comparison of docs/results/presets/report.md, as run (2 CPU cores shared with ~15 other jobs, load
# 15-22: hence n=8 and n=4). One benchmark at a time; each resumes if interrupted. From the repository root.
set -e
OUT=${OUT:-bench-out/presets}
LG="nice -n 10 layoutguide"
Z='zestguide,zestguide[preset=official],zestguide[preset=paper]'
$LG bench shapes --model shapes --methods "$Z" --n 8 --seed 0 --batch-size 8 --device cpu --out $OUT/box-shapes-zest-s0
$LG bench shapes --model shapes --methods 'refocus,refocus[preset=official]' --n 4 --seed 0 --batch-size 4 --device cpu \
  --out $OUT/box-shapes-refocus-s0
$LG bench shapes --model shapes --methods 'refocus[preset=paper]' --n 4 --seed 0 --batch-size 4 --device cpu \
  --out $OUT/box-shapes-refocus-paper-s0
# box-edge cell counts on the n=200 suites (seeds 0 and 1): no generation
PYTHONPATH=src python docs/results/presets/box_edges.py
# one table, tuned rows checked against the published n=200 run
PYTHONPATH=src python docs/results/presets/collect.py $OUT
