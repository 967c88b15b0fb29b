"""Unguided competence of an SDXL-architecture shapes run, sampled by the trainer's own sampler from the run's EMA
weights (before LayoutPipeline loads SDXL folders; then `layoutguide shapes competence --model EXPORT` replaces it).

    python benchmarks/sdxl_shapes_competence.py --run runs/shapes-sdxl --n 64
    python benchmarks/sdxl_shapes_competence.py --run runs/shapes-sdxl --n 64 --out docs/results/sdxl/competence.md

    # before the UNet trains: the autoencoder's reconstructions, against the shipped SD shapes model's autoencoder
    python benchmarks/sdxl_shapes_competence.py --run runs/shapes-sdxl --autoencoder --n 64

Same prompts, answer keys, metrics and per-image seeds as `layoutguide shapes competence` (bench.run_competence);
sampling as the shipped model samples (DDIM 30 steps, CFG 3 at t <= 850, end/padding tokens masked), with SDXL's
zero unconditional conditioning. ``--guidance-interval all`` guides every step.

``--autoencoder`` encodes and decodes ``--n`` held-out scenes of 1-4 objects (the benchmark suite's, seed
``--seed``) with the run's current autoencoder and with the shipped model's, and scores the reconstructions with the
evaluator against the scenes' own layouts: what the autoencoder stage has reached, and the ceiling it sets.
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
    parser.add_argument("--autoencoder", action="store_true", help="Score the autoencoder's reconstructions instead.")
    args = parser.parse_args(argv)
    if args.autoencoder:
        return autoencoder_report(args.run, args.n, args.seed)

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


def autoencoder_report(run: Path, n: int, seed: int) -> int:
    import numpy as np
    import torch
    from diffusers import AutoencoderKL
    from PIL import Image

    from layoutguide.bench import shapes_suite
    from layoutguide.loading import resolve_model
    from layoutguide.shapes.evaluate import evaluate
    from layoutguide.shapes.train import open_trainer

    trainer = open_trainer(run, device="cpu")
    shipped = AutoencoderKL.from_pretrained(Path(resolve_model("shapes")) / "vae")
    scenes = shapes_suite(n, seed)
    x = torch.from_numpy(np.stack([np.asarray(s.render(), dtype=np.float32) for s in scenes])).permute(0, 3, 1, 2)
    x = x / 127.5 - 1.0
    print(f"run {run}: autoencoder step {trainer.state['vae_step']} of {trainer.config.vae_steps}; {n} scenes")
    print("| autoencoder | found (colour+shape) | all found | box IoU | L1 (0-255) |")
    print("|---|---|---|---|---|")
    for name, vae in ((f"run, step {trainer.state['vae_step']}", trainer.vae), ("shipped shapes (SD)", shipped)):
        with torch.no_grad():
            recon = torch.cat([vae.decode(vae.encode(c).latent_dist.mean).sample for c in x.split(16)]).clamp(-1, 1)
        arrays = ((recon + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        scores = [evaluate(Image.fromarray(a), s.layout()) for a, s in zip(arrays, scenes)]
        found = np.mean([sc.found_rate for sc in scores])
        every = np.mean([sc.found_rate == 1.0 for sc in scores])
        iou = np.mean([sc.mean_iou for sc in scores])
        l1 = float((recon - x).abs().mean()) * 127.5
        print(f"| {name} | {found:.3f} | {every:.3f} | {iou:.3f} | {l1:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
