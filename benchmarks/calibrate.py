"""Calibrate each gradient method's step size for a model, on a calibration suite disjoint from the benchmark's.

Published step sizes were tuned for Stable Diffusion or GLIGEN at 512 px; a gradient's scale depends on the
model (Attention Refocusing issue #3: ~10x on plain SD), so a fixed number does not transfer. For every method
this sweeps a multiplier on its step-size option, scores object-in-box accuracy (mIoU inside the masks for
ZestGuide) with the exact evaluator on ``--n`` layouts of suite seed ``--seed`` (the benchmark uses seed 0), and
writes the best value into the model's ``layoutguide.json`` (the pipeline's per-model defaults).

    python benchmarks/calibrate.py --model src/layoutguide/weights/shapes --n 24 --seed 1 --write
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# method -> (option, published default, multipliers tried, metric)
SWEEPS = {
    "refocus": ("loss_scale", 1.0, (0.3, 1, 3, 10, 30), "object_in_box"),
    "boxdiff": ("scale_factor", 20.0, (0.3, 1, 3, 10), "object_in_box"),
    "layout-guidance": ("loss_scale", 30.0, (0.1, 0.3, 1, 3), "object_in_box"),
    "attend-excite": ("scale_factor", 20.0, (0.3, 1, 3), "found_rate"),
    "zestguide": ("eta", 1.0, (0.3, 1, 3, 10), "miou_inside"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the shipped shapes model)")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--methods", default=",".join(SWEEPS))
    parser.add_argument("--out", type=Path, default=Path("bench-out/calibration"))
    parser.add_argument("--write", action="store_true", help="write the chosen values into the model's layoutguide.json")
    args = parser.parse_args()

    from layoutguide.bench import MethodSpec, run_shapes_bench
    from layoutguide.loading import MODEL_DEFAULTS_FILE, SHIPPED_MODEL, load_pipeline

    folder = Path(args.model) if args.model else SHIPPED_MODEL
    pipe = load_pipeline(folder)
    pipe.model_defaults = {k: v for k, v in pipe.model_defaults.items() if k != "methods"}  # sweep from the published values
    lines = ["| method | option | value | metric | score |", "|---|---|---|---|---|"]
    chosen = {}
    for name in args.methods.split(","):
        option, default, multipliers, metric = SWEEPS[name]
        specs = [MethodSpec(label=f"{name}[{option}={default * m:g}]", method=name, options={option: default * m}) for m in multipliers]
        results = run_shapes_bench(pipe, specs, n=args.n, seed=args.seed, out=args.out / name, use_masks=name == "zestguide", progress=False)
        best = max(specs, key=lambda s: results["methods"][s.label][metric])
        for spec in specs:
            score = results["methods"][spec.label][metric]
            mark = " **(chosen)**" if spec is best else ""
            lines.append(f"| {name} | {option} | {spec.options[option]:g} | {metric} | {score:.3f}{mark} |")
        chosen[name] = {option: best.options[option]}
        print("\n".join(lines[-len(specs):]), flush=True)
    table = "\n".join(lines)
    print(table)
    (args.out / "calibration.md").write_text(f"Calibration suite: seed {args.seed}, n {args.n}.\n\n{table}\n")
    if args.write:
        path = folder / MODEL_DEFAULTS_FILE
        defaults = json.loads(path.read_text()) if path.exists() else {}
        defaults.setdefault("methods", {}).update(chosen)
        path.write_text(json.dumps(defaults, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
