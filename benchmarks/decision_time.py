"""When does the model decide where its objects go? The noise levels at which a layout can still act.

Held-out scenes are noised to timestep t (their true image, so the object positions are fixed), and the model
predicts the clean image from x_t and the caption alone, without any layout: x0 = (x_t - sqrt(1 - a) eps) / sqrt(a).
The evaluator scores that prediction against the scene's true layout. Where object-in-box is already high, the
noisy latent has fixed the positions, and neither a box (GLIGEN) nor a guidance step (Attention Refocusing and
the other gradient methods) can move them any more; where it is low, the positions are still open.

Two more columns say what that means for training and sampling:

* ``eps weight`` = a / (1 - a): the epsilon-prediction loss (GLIGEN's, the trainer's) is this times the x0 error,
  so a better x0 at that noise level (say, from knowing the boxes) lowers the loss by that factor only;
* ``training share at or above t``: the share of uniformly drawn training timesteps at least this noisy;
* the sampler's timesteps that fall in each band (the model's default steps and spacing).

    python benchmarks/decision_time.py --n 64 --out docs/results/decision-time.md
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

TIMESTEPS = (300, 500, 600, 700, 750, 800, 850, 900, 950, 980)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--seed", type=int, default=6, help="benchmark suite seed of the held-out scenes")
    parser.add_argument("--out")
    args = parser.parse_args()

    from layoutguide.bench import shapes_suite
    from layoutguide.layout import atomic_write_text
    from layoutguide.loading import load_pipeline
    from layoutguide.shapes.evaluate import evaluate

    pipe = load_pipeline(args.model)
    scenes = shapes_suite(args.n, seed=args.seed)
    layouts = [s.layout() for s in scenes]
    prompts = [layout.prompt for layout in layouts]
    images = (
        torch.from_numpy(np.stack([np.asarray(s.render(), dtype=np.float32) for s in scenes])).permute(0, 3, 1, 2)
        / 127.5
        - 1
    )
    scale = pipe.vae.config.scaling_factor
    alphas = pipe.scheduler.alphas_cumprod
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z0 = pipe.vae.encode(images).latent_dist.mean * scale
        cond, text_mask = pipe.encode_prompt(prompts), pipe.text_attention_mask(prompts)
        rows = []
        for t in TIMESTEPS:
            a = alphas[t]
            noise = torch.randn(z0.shape, generator=generator)
            x_t = a.sqrt() * z0 + (1 - a).sqrt() * noise
            eps = pipe.unet(x_t, torch.full((len(z0),), t), cond, encoder_attention_mask=text_mask).sample
            x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
            predicted = pipe.decode_latents(x0)
            scores = [evaluate(image, layout) for image, layout in zip(predicted, layouts)]
            rows.append(
                {
                    "t": t,
                    "alphabar": float(a),
                    "eps_weight": float(a / (1 - a)),
                    "share_above": (pipe.scheduler.config.num_train_timesteps - t)
                    / pipe.scheduler.config.num_train_timesteps,
                    "object_in_box": float(np.mean([s.object_in_box for s in scores])),
                    "found": float(np.mean([s.found_rate for s in scores])),
                    "mean_iou": float(np.mean([s.mean_iou for s in scores])),
                    "x0_mse": float(torch.nn.functional.mse_loss(x0, z0)),
                    "eps_mse": float(torch.nn.functional.mse_loss(eps, noise)),
                }
            )
            print(rows[-1], flush=True)

    steps = int(pipe.model_defaults.get("num_inference_steps", 50))
    pipe.scheduler.set_timesteps(steps)
    sampled = [int(t) for t in pipe.scheduler.timesteps]
    lines = [
        f"Held-out scenes: {args.n} (benchmark suite seed {args.seed}, 1-4 objects), noised to t with their true "
        "images; "
        "the model predicts x0 from x_t and the caption, with no layout; the evaluator scores the prediction against "
        "the "
        "scene's layout (object-in-box: IoU >= 0.5 with the right colour and shape).",
        "",
        "| t | alphabar | eps weight a/(1-a) | training share at or above t | x0-prediction object-in-box | found | "
        "mean IoU | x0 MSE (latent) | eps MSE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['t']} | {r['alphabar']:.4f} | {r['eps_weight']:.4f} | {r['share_above']:.2f} | "
            f"{r['object_in_box']:.3f} | "
            f"{r['found']:.3f} | {r['mean_iou']:.3f} | {r['x0_mse']:.3f} | {r['eps_mse']:.4f} |"
        )
    bands = [(lo, hi) for lo, hi in zip((0,) + TIMESTEPS, TIMESTEPS + (pipe.scheduler.config.num_train_timesteps,))]
    lines += [
        "",
        f"The sampler's {steps} timesteps ({type(pipe.scheduler).__name__}, "
        f"`{pipe.scheduler.config.timestep_spacing}` spacing): " + ", ".join(str(t) for t in sampled) + ".",
        "",
        "| band of t | sampling steps in it |",
        "|---|---|",
    ]
    for lo, hi in reversed(bands):
        lines.append(f"| [{lo}, {hi}) | {sum(lo <= t < hi for t in sampled)} |")
    text = (
        "# When the model decides where objects go\n\n`python benchmarks/decision_time.py "
        + (f"--model {args.model} " if args.model else "")
        + f"--n {args.n} --seed {args.seed}`\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
