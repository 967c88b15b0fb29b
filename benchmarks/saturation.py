"""Two diagnostics behind docs/shapes.md's "What limits" section, on any shapes model folder.

    # word attention and CAR-style gradient size per step:
    python benchmarks/saturation.py grad --model src/layoutguide/weights/shapes
    # unguided single-object competence vs CFG scale:
    python benchmarks/saturation.py cfg --model src/layoutguide/weights/shapes
    python benchmarks/saturation.py cfg --n 64 --scales 3 --intervals all,0:900,0:850,0:800,0:600 \\
        --out docs/results/cfg-interval.md

``grad``: for one held-out single-object prompt and four denoising steps, the start token's mean attention
share, the word tokens' peak and mean attention (16x16 layers), and the norm of the gradient of "attention mass
of the noun inside a fixed box" with respect to the latent (against the latent's own norm). ``cfg``: share of
the first ``--n`` competence prompts (``layoutguide shapes competence`` uses the same prompts and seeds) whose
images show the object with the right colour and shape, the share of blank images and the share with more
objects than the prompt names, per CFG scale and guidance interval (CFG only at timesteps LOW <= t <= HIGH).
"""

from __future__ import annotations

import argparse
import math
import sys

import torch


def grad_report(pipe) -> None:
    from layoutguide.attention import AttentionRequest, AttentionStore, attention_control, grid_maps, recording
    from layoutguide.bench import shapes_suite

    layout = shapes_suite(6, 1, n_objects=(1, 2))[0].layout(with_masks=False)
    print(f"prompt: {layout.prompt!r}; tokens 2, 3 = its colour and shape")
    pipe.scheduler.set_timesteps(30)
    cond = pipe.encode_prompt([layout.prompt])
    mask = pipe.text_attention_mask([layout.prompt])
    store, request = AttentionStore(), AttentionRequest("cross", (16,), ("down", "up"))
    for step in (0, 3, 8, 15):
        t = pipe.scheduler.timesteps[step]
        x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(step)).requires_grad_(True)
        with (
            attention_control(pipe.unet, store, [request], latent_hw=(16, 16)),
            recording(store, cfg=False, step=step),
        ):
            pipe.unet(x, t, cond, encoder_attention_mask=mask)
            maps = grid_maps(store.get(request), store.layers, (16, 16))[0]  # (16, 16, 77)
        (grad,) = torch.autograd.grad(maps[2:8, 6:12, 3].sum(), x)
        print(
            f"t={int(t)}: start token {maps[..., 0].mean():.2f}, colour word peak {maps[..., 2].max():.3f}, "
            f"shape word peak {maps[..., 3].max():.3f} mean {maps[..., 3].mean():.4f}; |grad| {grad.norm():.3f} vs "
            f"|latent| {x.norm():.1f}"
        )


def cfg_report(pipe, n: int, scales: list[float], intervals: list[tuple[float, float]]) -> str:
    from layoutguide.bench import shapes_suite
    from layoutguide.shapes.evaluate import evaluate

    pipe.set_progress_bar_config(disable=True)
    layouts = [s.layout() for s in shapes_suite(n, 51, n_objects=(1, 1))]  # run_competence's single-object prompts
    rows = [
        "| CFG | guidance interval | right colour and shape | blank | more than one object |",
        "|---|---|---|---|---|",
    ]
    for scale in scales:
        for interval in intervals:
            images = []
            for start in range(0, n, 16):
                chunk = range(start, min(n, start + 16))
                images += pipe(
                    prompt=[layouts[i].prompt for i in chunk],
                    seed=list(chunk),
                    guidance_scale=scale,
                    guidance_interval=interval,
                    progress=False,
                ).images
            scores = [evaluate(image, layout) for image, layout in zip(images, layouts)]
            found = sum(s.found_rate == 1 for s in scores) / n
            blank = sum(s.n_detections == 0 for s in scores) / n
            extra = sum(s.n_detections > 1 for s in scores) / n
            span = "every step" if math.isinf(interval[1]) else f"{interval[0]:g} <= t <= {interval[1]:g}"
            rows.append(f"| {scale:g} | {span} | {found:.3f} | {blank:.3f} | {extra:.3f} |")
            print(rows[-1], flush=True)
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", choices=("grad", "cfg"))
    parser.add_argument("--model", default=None, help="model folder (default: the shipped shapes model)")
    parser.add_argument("--n", type=int, default=32, help="cfg: prompts")
    parser.add_argument("--scales", default="1,2,3,5,7.5", help="cfg: comma-separated CFG scales")
    parser.add_argument(
        "--intervals", default="all", help="cfg: comma-separated guidance intervals LOW:HIGH, or 'all' (every step)"
    )
    parser.add_argument("--out", default=None, help="cfg: also write the table (markdown) here")
    args = parser.parse_args()

    from layoutguide.loading import load_pipeline

    pipe = load_pipeline(args.model)
    with torch.no_grad() if args.report == "cfg" else torch.enable_grad():
        if args.report == "grad":
            grad_report(pipe)
        else:
            intervals = [
                (0.0, math.inf) if v == "all" else tuple(float(x) for x in v.split(":"))
                for v in args.intervals.split(",")
            ]
            table = cfg_report(pipe, args.n, [float(s) for s in args.scales.split(",")], intervals)
            if args.out:
                from layoutguide.layout import atomic_write_text

                command = "python benchmarks/saturation.py cfg " + " ".join(sys.argv[2:])
                atomic_write_text(
                    args.out,
                    f"# Unguided single-object competence vs CFG\n\n{args.n} held-out single-object prompts "
                    f"(`layoutguide shapes competence`'s first {args.n}).\n\n{table}\n\nReproduce: `{command}`\n",
                )


if __name__ == "__main__":
    main()
