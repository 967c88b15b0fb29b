"""Calibrate each gradient method's step size for a model, on a calibration suite disjoint from the benchmark's.

Published step sizes were tuned for Stable Diffusion or GLIGEN at 512 px; a gradient's scale depends on the
model (Attention Refocusing issue #3: ~10x on plain SD), so a fixed number does not transfer. For every method
this sweeps a multiplier on its step-size option, scores object-in-box accuracy (mIoU inside the masks for
ZestGuide) with the exact evaluator on ``--n`` layouts of suite seed ``--seed`` (the benchmark uses seed 0), and
writes the best value into the model's ``layoutguide.json`` (the pipeline's per-model defaults). The methods
that read Attend-and-Excite's normalised token maps also sweep their softmax ``temperature``: its published 100
saturates on a model whose word attention is strong (docs/shapes.md), so it is as model-specific as the step.

    python benchmarks/calibrate.py --model src/layoutguide/weights/shapes --n 24 --seed 1 --write
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# method -> (option, published default, multipliers tried, metric, temperatures tried or None)
SWEEPS = {
    "refocus": ("loss_scale", 1.0, (3, 10, 30, 100), "object_in_box", (100.0, 10.0)),
    "boxdiff": ("scale_factor", 20.0, (0.3, 1, 3), "object_in_box", (100.0, 10.0)),
    "layout-guidance": ("loss_scale", 30.0, (0.1, 0.3, 1, 3), "object_in_box", None),
    "attend-excite": ("scale_factor", 20.0, (0.3, 1, 3), "found_rate", (100.0, 10.0)),
    "zestguide": ("eta", 1.0, (0.3, 1, 3, 10), "miou_inside", None),
}


def sweep_specs(name: str) -> list:
    """One MethodSpec per point of ``name``'s grid."""
    from layoutguide.bench import MethodSpec

    option, default, multipliers, _, temperatures = SWEEPS[name]
    grid = [{option: default * m} for m in multipliers]
    if temperatures:
        grid = [{"temperature": t, **point} for t in temperatures for point in grid]
    return [
        MethodSpec(label=f"{name}[{','.join(f'{k}={v:g}' for k, v in point.items())}]", method=name, options=point)
        for point in grid
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the shipped shapes model)")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--methods", default=",".join(SWEEPS))
    parser.add_argument("--out", type=Path, default=Path("bench-out/calibration"))
    parser.add_argument(
        "--write", action="store_true", help="write the chosen values into the model's layoutguide.json"
    )
    parser.add_argument(
        "--guidance-interval",
        default=None,
        help="CFG only at timesteps LOW,HIGH, or 'all' (every step); default: the model's",
    )
    args = parser.parse_args()

    from layoutguide.bench import run_shapes_bench
    from layoutguide.layout import atomic_write_text
    from layoutguide.loading import MODEL_DEFAULTS_FILE, SHIPPED_MODEL, load_pipeline

    folder = Path(args.model) if args.model else SHIPPED_MODEL
    pipe = load_pipeline(folder, guidance_interval=args.guidance_interval)
    pipe.model_defaults = {
        k: v for k, v in pipe.model_defaults.items() if k != "methods"
    }  # sweep from the published values
    header = ["| method | options | metric | score | found (colour+shape) |", "|---|---|---|---|---|"]
    for name in args.methods.split(","):
        metric = SWEEPS[name][3]
        specs = sweep_specs(name)
        results = run_shapes_bench(
            pipe, specs, n=args.n, seed=args.seed, out=args.out / name, use_masks=name == "zestguide", progress=False
        )
        best = max(specs, key=lambda s: results["methods"][s.label][metric])
        lines = []
        for spec in specs:
            scores = results["methods"][spec.label]
            mark = " **(chosen)**" if spec is best else ""
            values = ", ".join(f"{k}={v:g}" for k, v in spec.options.items())
            lines.append(f"| {name} | {values} | {metric} | {scores[metric]:.3f}{mark} | {scores['found_rate']:.3f} |")
        print("\n".join(lines), flush=True)
        atomic_write_text(args.out / name / "calibration.md", "\n".join(lines) + "\n")
        if args.write:  # per method, so that methods calibrated in separate processes all land
            path = folder / MODEL_DEFAULTS_FILE
            defaults = json.loads(path.read_text()) if path.exists() else {}
            defaults.setdefault("methods", {})[name] = dict(best.options)
            atomic_write_text(path, json.dumps(defaults, indent=2) + "\n")
            print(f"wrote {path}")
    # the summary holds every method calibrated into this folder so far (runs for subsets of methods add up)
    rows = [
        (args.out / name / "calibration.md").read_text().rstrip("\n")
        for name in SWEEPS
        if (args.out / name / "calibration.md").exists()
    ]
    table = "\n".join(header + rows)
    print(table)
    atomic_write_text(
        args.out / "calibration.md",
        f"Calibration suite: seed {args.seed}, n {args.n}, model `{folder.name}`.\n\n{table}\n",
    )


if __name__ == "__main__":
    main()
