"""Does the model's cross-attention localise words? The premise of every attention-based layout method.

For unguided samples of held-out prompts, each phrase's cross-attention (tokens summed, heads and layers
averaged, per denoising step) is compared with the object the evaluator finds for it: the *localisation ratio*
is the phrase's mean attention inside the object's mask divided by its mean over the image (1 = no
localisation; SD's word maps are strongly localised, ratio >> 1). Reported per resolution and per step window,
with the share of the attention mass that falls on padding/end tokens.

    python benchmarks/attention_localisation.py --n 24
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--out")
    parser.add_argument(
        "--guidance-interval",
        default=None,
        help="CFG only at timesteps LOW,HIGH, or 'all' (every step); default: the model's",
    )
    args = parser.parse_args()

    from layoutguide.bench import shapes_suite
    from layoutguide.loading import load_pipeline
    from layoutguide.shapes.evaluate import evaluate
    from layoutguide.tokens import map_phrases

    pipe = load_pipeline(args.model, guidance_interval=args.guidance_interval)
    pipe.set_progress_bar_config(disable=True)
    layouts = [s.layout() for s in shapes_suite(args.n, seed=3, n_objects=(1, 2))]
    lines = [
        "| layers | steps | localisation ratio (mean) | phrases with ratio > 1.5 | phrase attention inside its "
        "object | phrase attention outside | start token | end/padding tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in (16, 8):
        ratios: dict[str, list[float]] = {"first third": [], "middle third": [], "last third": []}
        pad_share, start_share = [], []
        inside: dict[str, list[float]] = {name: [] for name in ratios}
        outside: dict[str, list[float]] = {name: [] for name in ratios}
        for layout in layouts:
            out = pipe(layout=layout, return_attention=True, attention_resolution=res, seed=0, progress=False)
            score = evaluate(out.images[0], layout)
            tokens = map_phrases(pipe.tokenizer, layout.prompt, layout.phrases)
            maps = torch.stack([a[0] for a in out.attention])  # (T, h, w, 77)
            eot = len(tokens.input_ids) - 1
            pad_share.append(float(maps[..., eot:].sum(-1).mean()))
            start_share.append(float(maps[..., 0].mean()))
            n = len(maps)
            for name, window in zip(ratios, (slice(0, n // 3), slice(n // 3, 2 * n // 3), slice(2 * n // 3, n))):
                mean = maps[window].mean(0)
                for region, idx in zip(score.regions, tokens.indices):
                    if region.detection is None:
                        continue
                    mask = score.detections[region.detection].mask
                    small = (
                        np.asarray(Image.fromarray(mask.astype(np.float32)).resize(mean.shape[1::-1], Image.BOX))
                        >= 0.5
                    )
                    if not small.any():
                        continue
                    phrase_map = mean[..., list(idx)].sum(-1).numpy()
                    ratios[name].append(float(phrase_map[small].mean() / phrase_map.mean()))
                    inside[name].append(float(phrase_map[small].mean()))
                    outside[name].append(float(phrase_map[~small].mean()) if (~small).any() else float("nan"))
        for name, values in ratios.items():
            values = np.array(values)
            lines.append(
                f"| {res}x{res} | {name} | {values.mean():.2f} | {(values > 1.5).mean():.2f} | "
                f"{np.mean(inside[name]):.4f} | "
                f"{np.nanmean(outside[name]):.4f} | {np.mean(start_share):.2f} | {np.mean(pad_share):.2f} |"
            )
    text = (
        f"Unguided samples of {args.n} held-out 1-2 object layouts. Attention columns: mean cross-attention "
        "probability "
        "(the phrase's tokens summed) inside / outside the object the evaluator found for it, and the mean share of "
        "the "
        "start token and of the end/padding tokens.\n\n" + "\n".join(lines) + "\n"
    )
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
