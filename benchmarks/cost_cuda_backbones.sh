#!/usr/bin/env bash
# Cost at real model size on one CUDA GPU, random weights built on the GPU (nothing downloaded), 1024 px:
#   SD3.5-medium (24 joint blocks, bf16): whole 28-step sampling, CFG off, every DiT method; then refocus reading
#     4 blocks (layoutguide.json attention_blocks);
#   FLUX.1-dev (19 + 38 blocks, 11.9 B, bf16): one step of every DiT method, then whole 28-step sampling of none
#     and regional;
#   SDXL base (2.57 B UNet, fp16): whole 30-step sampling at CFG 5 of every UNet method (benchmarks/overhead.py).
# Each part has its own time limit and writes as it goes; a method out of GPU memory is recorded and the rest go
# on. Sized for one H100/H200-class GPU in under 9 minutes. Needs python with a CUDA torch and this package
# importable (PYTHONPATH=src); results under $OUT (default bench-out/cuda-backbones), one folder or file per part.
#
#     OUT=bench-out/cuda-backbones bash benchmarks/cost_cuda_backbones.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-out/cuda-backbones}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python}
DIT=(--device cuda --size 1024 --dtype bf16)

part() {  # part NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, say how it ended
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$PY" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $? after $((SECONDS - t0)) s (limit $limit)" | tee -a "$OUT/parts.log"
}

"$PY" -c "import torch, diffusers; print(torch.__version__, diffusers.__version__, torch.cuda.get_device_name())" \
  | tee "$OUT/versions.log"

part sd35-1024-steps28 120 benchmarks/dit_real.py "${DIT[@]}" --family sd35 --steps 28 --warmup 1 --repeats 2 \
  --out "$OUT/sd35-1024-steps28"
part sd35-1024-steps28-blocks4 60 benchmarks/dit_real.py "${DIT[@]}" --family sd35 --steps 28 --warmup 1 \
  --repeats 2 --attention-blocks 4,5,6,7 --methods none,refocus,regional+refocus --out "$OUT/sd35-1024-steps28-blocks4"
part flux-1024-step1 80 benchmarks/dit_real.py "${DIT[@]}" --family flux --steps 1 --warmup 1 --repeats 3 \
  --out "$OUT/flux-1024-step1"
part flux-1024-steps28 70 benchmarks/dit_real.py "${DIT[@]}" --family flux --steps 28 --warmup 1 --repeats 2 \
  --methods 'none,regional,regional[region_text=separate]' --out "$OUT/flux-1024-steps28"
part sdxl-1024-fp16 200 benchmarks/overhead.py --model sdxl --device cuda --dtype fp16 --size 1024 --steps 30 \
  --guidance-scale 5 --warmup 0 --repeats 2 \
  --methods none,refocus,boxdiff,layout-guidance,attend-excite,zestguide,pww,densediffusion,zestguide+pww,pww+refocus \
  --out "$OUT/sdxl-1024-fp16.md"
