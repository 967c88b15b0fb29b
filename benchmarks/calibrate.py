"""Calibrate each layout method's strength for a model, on a calibration suite disjoint from the benchmark's.

Published step sizes were tuned for Stable Diffusion or GLIGEN at 512 px; a gradient's scale depends on the
model (Attention Refocusing issue #3: ~10x on plain SD), so a fixed number does not transfer. For every method
that runs on the model this sweeps its grid (``SWEEPS``: a gradient method's step size at 0.3-100x the published
value; regional attention's mask steps and base blend), scores object-in-box accuracy (mIoU inside the masks for
ZestGuide) with the exact evaluator on ``--n`` layouts of suite seed ``--seed`` (the benchmark uses seed 0), and
writes the best point into the model's ``layoutguide.json`` (the pipeline's per-model defaults). The methods
that read Attend-and-Excite's normalised token maps also sweep their softmax ``temperature``: its published 100
saturates on a model whose word attention is strong (docs/shapes.md), so it is as model-specific as the step.

    python benchmarks/calibrate.py --model src/layoutguide/weights/shapes --n 24 --seed 1 --write
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def axes(**values: tuple) -> list[dict]:
    """Every combination of the given option values, the first axis slowest."""
    grid: list[dict] = [{}]
    for option, choices in values.items():
        grid = [{**point, option: choice} for point in grid for choice in choices]
    return grid


# method -> (metric, grid). The step sizes are the published default times 0.3-100; the methods that read
# Attend-and-Excite's normalised token maps also try their softmax ``temperature``: its published 100 saturates on a
# model whose word attention is strong (docs/shapes.md), so it is as model-specific as the step. Regional attention
# (DiT models) has no step: its strength is how long the masks act, how much of the unmasked output is blended back and
# whether image tokens may read the end/padding tokens (which summarise the whole prompt).
SWEEPS = {
    "refocus": ("object_in_box", axes(temperature=(100.0, 10.0), loss_scale=(3.0, 10.0, 30.0, 100.0))),
    "boxdiff": ("object_in_box", axes(temperature=(100.0, 10.0), scale_factor=(6.0, 20.0, 60.0))),
    "layout-guidance": ("object_in_box", axes(loss_scale=(3.0, 9.0, 30.0, 90.0))),
    "attend-excite": ("found_rate", axes(temperature=(100.0, 10.0), scale_factor=(6.0, 20.0, 60.0))),
    "zestguide": ("miou_inside", axes(eta=(0.3, 1.0, 3.0, 10.0))),
    "regional": (
        "object_in_box",
        axes(end_tokens=("hidden", "shared"), mask_inject_steps=(10, 20, 28), base_ratio=(0.0, 0.1, 0.2, 0.4)),
    ),
}


def option_values(options: dict) -> str:
    """``a=1,b=hidden``: a sweep point as written in a method variant."""
    return ",".join(f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}" for k, v in options.items())


def sweep_specs(name: str) -> list:
    """One MethodSpec per point of ``name``'s grid."""
    from layoutguide.bench import MethodSpec

    return [
        MethodSpec(label=f"{name}[{option_values(point)}]", method=name, options=point) for point in SWEEPS[name][1]
    ]


def published_defaults(model_defaults: dict) -> dict:
    """The model's defaults without its own values of the swept options, so the sweep starts from the published
    ones; what it says about the architecture (which attention level a method reads on this model) stays."""
    if not model_defaults:  # no layoutguide.json: the backbone family's values apply, as at sampling
        return model_defaults
    swept = {name: {k for point in grid for k in point} for name, (_, grid) in SWEEPS.items()}
    methods = {
        name: {k: v for k, v in options.items() if k not in swept.get(name, set())}
        for name, options in model_defaults.get("methods", {}).items()
    }
    return {**model_defaults, "methods": methods}


def methods_to_sweep(asked: str | None, runnable: list[str]) -> list[str]:
    """``--methods`` checked against the sweeps and the model: by default every swept method that runs on it."""
    if asked is None:
        return [name for name in SWEEPS if name in runnable]
    names = [name.strip() for name in asked.split(",")]
    for name in names:
        if name not in SWEEPS:
            raise SystemExit(f"error: --methods: no sweep for {name!r}; sweeps: {', '.join(SWEEPS)}")
        if name not in runnable:
            raise SystemExit(f"error: --methods: {name!r} does not run on this model; drop it from --methods")
    return names


def write_choice(path: Path, name: str, options: dict) -> None:
    """Merge the chosen values of method ``name`` into the model's ``layoutguide.json`` (its other options stay)."""
    from layoutguide.layout import atomic_write_text

    defaults = json.loads(path.read_text()) if path.exists() else {}
    defaults.setdefault("methods", {}).setdefault(name, {}).update(options)
    atomic_write_text(path, json.dumps(defaults, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the shipped shapes model)")
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated, from {', '.join(SWEEPS)} (default: those that run on the model)",
    )
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
    from layoutguide.methods import runnable_methods

    folder = Path(args.model) if args.model else SHIPPED_MODEL
    pipe = load_pipeline(folder, guidance_interval=args.guidance_interval)
    pipe.model_defaults = published_defaults(pipe.model_defaults)
    header = ["| method | options | metric | score | found (colour+shape) |", "|---|---|---|---|---|"]
    for name in methods_to_sweep(args.methods, runnable_methods(pipe.denoiser)):
        metric = SWEEPS[name][0]
        specs = sweep_specs(name)
        results = run_shapes_bench(
            pipe, specs, n=args.n, seed=args.seed, out=args.out / name, use_masks=name == "zestguide"
        )
        best = max(specs, key=lambda s: results["methods"][s.label][metric])
        lines = []
        for spec in specs:
            scores = results["methods"][spec.label]
            mark = " **(chosen)**" if spec is best else ""
            values = option_values(spec.options).replace(",", ", ")
            lines.append(f"| {name} | {values} | {metric} | {scores[metric]:.3f}{mark} | {scores['found_rate']:.3f} |")
        print("\n".join(lines), flush=True)
        atomic_write_text(args.out / name / "calibration.md", "\n".join(lines) + "\n")
        if args.write:  # per method, so that methods calibrated in separate processes all land
            path = folder / MODEL_DEFAULTS_FILE
            write_choice(path, name, best.options)
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
