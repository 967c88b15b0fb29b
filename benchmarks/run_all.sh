#!/usr/bin/env bash
# Every figure in README and docs/results, regenerated from the shipped shapes model (CPU is fine: about 4.5 hours on 2 cores).
# Benchmarks resume: rerunning skips images already written. Lines with --guidance-interval all reproduce files measured
# before the model's guidance interval (CFG at every step), as docs/results/README.md says.
set -euo pipefail
cd "$(dirname "$0")/.."
R=docs/results
mkdir -p $R
layoutguide shapes competence --n 200 --out $R/competence > $R/competence.txt
python benchmarks/saturation.py cfg --n 64 --scales 2,3,5 --intervals all,0:900,0:850,0:800 --out $R/cfg-interval.md
python benchmarks/calibrate.py --n 24 --seed 1 --write --guidance-interval all --out $R/calibration
layoutguide bench shapes --methods none,refocus,layout-guidance,zestguide --n 200 --seed 0 --out $R/shapes
layoutguide bench shapes --methods all --n 32 --seed 0 --guidance-interval all --out $R/all
layoutguide bench shapes --masks --max-objects 3 --methods none,zestguide,zestguide+pww,pww,densediffusion,refocus,layout-guidance --n 32 --seed 2 --guidance-interval all --out $R/masks
layoutguide bench relations --planners rule --methods 'none,refocus,layout-guidance,zestguide,refocus[tokens=last],pww+refocus[refocus.tokens=last]' --n 48 --seed 0 --out $R/relations
python benchmarks/attention_localisation.py --n 16 --guidance-interval all --out $R/attention-localisation.md
python benchmarks/decision_time.py --n 64 --out $R/decision-time.md
python benchmarks/refocus_followthrough.py --n 48 --guidance-interval all --out $R/refocus-followthrough.md
python benchmarks/overhead.py --model tiny --steps 20 --repeats 3 --out $R/overhead-tiny.md
python benchmarks/overhead.py --model shipped --guidance-interval all --steps 30 --repeats 2 --methods none,refocus,refocus[car],refocus[sar],boxdiff,layout-guidance,attend-excite,zestguide,pww,densediffusion --out $R/overhead-shapes.md
python benchmarks/gligen_sweep.py --model shapes-gligen --n 32 --out $R/gligen
G=shapes-gligen
layoutguide bench relations --model $G --planners rule --methods 'none,gligen,reground,gligen+refocus,reground+refocus,gligen+pww+refocus,gligen+refocus[refocus.tokens=last],gligen+pww+refocus[refocus.tokens=last],gligen+layout-guidance,gligen+pww+layout-guidance' --n 96 --seed 0 --out $R/gligen/relations
layoutguide bench relations --model $G --planners rule --methods 'none,gligen,gligen+refocus,gligen+pww+refocus,gligen+refocus[refocus.tokens=last],gligen+pww+refocus[refocus.tokens=last],gligen+layout-guidance,gligen+pww+layout-guidance' --n 96 --seed 1 --out $R/gligen/relations-seed1
layoutguide bench relations --model $G --planners rule --methods 'none,gligen+refocus,gligen+pww+refocus,gligen+pww+refocus[refocus.tokens=last],gligen+layout-guidance' --n 96 --seed 2 --out $R/gligen/relations-seed2
layoutguide bench relations --model $G --planners rule --methods 'gligen+pww+refocus,gligen+pww+refocus[refocus.tokens=last],gligen+pww+refocus[pww.weight=0.3],gligen+pww+densediffusion+refocus[densediffusion.w_cross=0;densediffusion.w_self=0],gligen+densediffusion+refocus,gligen+pww+refocus[refocus.variant=official],gligen+pww+refocus[refocus.early_stop=false],gligen+pww+refocus[refocus.grounding_weight=3],gligen+pww+zestguide' --n 48 --seed 0 --out $R/gligen/relations-ablations
layoutguide bench shapes --model $G --methods 'gligen+refocus,gligen+pww+refocus,gligen+pww+refocus[refocus.tokens=last],gligen+layout-guidance' --n 32 --seed 0 --out $R/gligen/relation-settings-boxes
python benchmarks/gligen_position_probe.py probe --n 96 --out $R/gligen/position-probe.md
python benchmarks/gligen_position_probe.py experiment --arms plain,position,gate,highnoise --steps 400 --n 24 --out $R/gligen/position-experiment.md
python benchmarks/gligen_position_probe.py experiment --arms supervised,supervised+position --steps 250 --n 24 --work bench-out/gligen-fix --out $R/gligen/position-experiment-fix.md
python benchmarks/model_card.py  # last: the cards read the results above
