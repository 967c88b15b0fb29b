#!/usr/bin/env bash
# The cost table on one CUDA GPU: Stable Diffusion 1.5's architecture with random weights (built in code, nothing
# downloaded), 512 px, fp16 weights, 20 steps, every method against plain sampling, interleaved, with
# torch.cuda.max_memory_allocated; then fp32 weights with the fp16/bf16 autocast guidance pass; then GLIGEN/ReGround
# on the gated architecture. Sized for under 10 minutes of device time on one H100/H200-class GPU (model builds
# ~1 min each; every call under ~3 s). Needs python with a CUDA torch and this package importable (PYTHONPATH=src).
#
#     OUT=bench-out bash benchmarks/cost_cuda.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
PY=${PY:-python}
COMMON=(--model sd15 --device cuda --size 512 --steps 20 --repeats 3)

METHODS="none,refocus@full,refocus,boxdiff@full,boxdiff,layout-guidance@full,layout-guidance,attend-excite@full,\
attend-excite,zestguide@full,zestguide,pww,densediffusion@prob,densediffusion,refocus@t700,refocus@it1,refocus@ckpt"
timeout 300 "$PY" benchmarks/overhead.py "${COMMON[@]}" --dtype fp16 --methods "$METHODS" \
  --out "$OUT/sd15-cuda-fp16.md" | tee "$OUT/sd15-cuda-fp16.log"

timeout 150 "$PY" benchmarks/overhead.py "${COMMON[@]}" --dtype fp32 \
  --methods "none,refocus@full,refocus,refocus@fp16,refocus@bf16,zestguide,zestguide@bf16" \
  --out "$OUT/sd15-cuda-fp32-autocast.md" | tee "$OUT/sd15-cuda-fp32-autocast.log"

timeout 120 "$PY" benchmarks/overhead.py "${COMMON[@]}" --dtype fp16 --gated \
  --methods "none,gligen,gligen[beta=1],reground,gligen+refocus@full,gligen+refocus,reground+refocus" \
  --out "$OUT/sd15-cuda-fp16-gated.md" | tee "$OUT/sd15-cuda-fp16-gated.log"
