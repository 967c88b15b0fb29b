"""Unguided competence of an SDXL-architecture shapes run, sampled by the trainer's own sampler from the run's EMA
weights (before LayoutPipeline loads SDXL folders; then `layoutguide shapes competence --model EXPORT` replaces it).

    python benchmarks/sdxl_shapes_competence.py --run runs/shapes-sdxl --n 64
    python benchmarks/sdxl_shapes_competence.py --run runs/shapes-sdxl --n 64 --out docs/results/sdxl/competence.md

Same prompts, answer keys, metrics and per-image seeds as `layoutguide shapes competence` (bench.run_competence);
sampling as the shipped model samples (DDIM 30 steps, CFG 3 at t <= 850, end/padding tokens masked), with SDXL's
zero unconditional conditioning. ``--guidance-interval all`` guides every step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="Run folder of an SDXL-architecture shapes run.")
    parser.add_argument("--n", type=int, default=64, help="Prompts per kind (single object, two objects).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--guidance-interval", default=None, help="LOW,HIGH or 'all' (default: 0,850).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the numbers as a markdown file.")
    args = parser.parse_args(argv)

    from layoutguide.bench import run_competence
    from layoutguide.layout import atomic_write_text
    from layoutguide.loading import parse_guidance_interval
    from layoutguide.shapes.sdxl_train import EMASampler, SDXLTrainer
    from layoutguide.shapes.train import open_trainer

    trainer = open_trainer(args.run, device="cpu")
    if not isinstance(trainer, SDXLTrainer):
        print(f"--run: {args.run} is not an SDXL-architecture run (arch {trainer.config.arch!r})", file=sys.stderr)
        return 2
    defaults = {}
    if args.guidance_interval is not None:
        defaults["guidance_interval"] = parse_guidance_interval(args.guidance_interval)
    results = run_competence(EMASampler(trainer, defaults), n=args.n, seed=args.seed, report=print)
    results["unet_step"] = trainer.state["unet_step"]
    results["vae_step"] = trainer.state["vae_step"]
    print(json.dumps(results, indent=1))
    if args.out is not None:
        command = "python benchmarks/sdxl_shapes_competence.py " + " ".join(argv if argv is not None else sys.argv[1:])
        lines = [
            f"# Unguided competence, SDXL-architecture shapes run at UNet step {results['unet_step']:,}",
            "",
            f"`{command}`",
            "",
            "| prompts | all objects right colour and shape | all colours present | exact counts "
            "| tinted background |",
            "|---|---|---|---|---|",
        ]
        for k, name in ((1, "single object"), (2, "two objects")):
            cells = [results[f"{k}obj_{m}"] for m in ("all_found", "all_colours", "count_ok", "background_tint")]
            lines.append(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
