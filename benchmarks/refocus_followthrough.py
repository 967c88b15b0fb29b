"""Where does Attention Refocusing lose an object: does the attention not move, or does the image not follow it?

For each region of ``--n`` benchmark layouts, the phrase's cross-attention (16x16 layers, tokens summed) of the
CFG forward at the end of the guided steps and at the last step is compared with its box (*attention in box*:
the map's peak cell lies in the box), and the image is scored by the exact evaluator (*object in box*). The
cross-table separates two failure modes: the guidance did not move the attention (the optimisation), and the
attention sat in the box but the object did not (the model's denoiser does not follow its own attention).

A second table splits the misses among drawn objects (found with the right colour and shape, box IoU < 0.5) by
cause: *size* (the detected box, moved onto the target's centre, still has IoU < 0.5: the object is too small or
too large for its box, whatever its position) or *offset* (recentred it would be in the box: only its position is
off); with the median ratio of the detected box's area to the target's.

    python benchmarks/refocus_followthrough.py --n 48 --out docs/results/refocus-followthrough.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="none,refocus,layout-guidance")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--guidance-interval",
        default=None,
        help="CFG only at timesteps LOW,HIGH, or 'all' (every step); default: the model's",
    )
    args = parser.parse_args()

    from tqdm.auto import tqdm

    from layoutguide.bench import shapes_suite
    from layoutguide.layout import atomic_write_text
    from layoutguide.loading import load_pipeline
    from layoutguide.methods.refocus import SCHEDULES, reference_plan
    from layoutguide.shapes.evaluate import box_iou, evaluate
    from layoutguide.tokens import map_phrases

    pipe = load_pipeline(args.model, guidance_interval=args.guidance_interval)
    pipe.set_progress_bar_config(disable=True)
    steps = pipe.model_defaults.get("num_inference_steps", 30)
    last_guided = max(i for i in range(steps) if reference_plan(i, steps, SCHEDULES["official"]))
    layouts = [s.layout(with_masks=False) for s in shapes_suite(args.n, seed=args.seed)]
    lines = [
        f"{args.n} benchmark layouts (suite seed {args.seed}), one image each; attention at step {last_guided} "
        "(refocus's last guided "
        f"step of {steps}) and at the last step; regions counted once each.",
        "",
        "| method | regions | attention peak in box (guided end) | (last step) | object in box | object in box, "
        "given attention in box (last step) | object in box, given attention outside | given attention in box: "
        "object found anywhere | its box IoU (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    misses = [
        "| method | drawn objects not in their box | size: recentred IoU < 0.5 | of those, smaller than the box | "
        "offset only | area ratio, detected / target (median) |",
        "|---|---|---|---|---|---|",
    ]
    for method in args.methods.split(","):
        at_end, at_last, placed, found, iou = [], [], [], [], []
        recentred, area_ratio = [], []
        for k, layout in enumerate(tqdm(layouts, desc=method)):
            out = pipe(
                layout=layout,
                method=None if method == "none" else method,
                return_attention=True,
                attention_resolution=16,
                seed=k,
                progress=False,
            )
            score = evaluate(out.images[0], layout)
            tokens = map_phrases(pipe.tokenizer, layout.prompt, layout.phrases)
            boxes = layout.rasterize(16, 16, boxes_only=True)  # (R, 16, 16)
            for r, idx in enumerate(tokens.indices):
                for step, sink in ((last_guided, at_end), (len(out.attention) - 1, at_last)):
                    phrase = out.attention[step][0][..., list(idx)].sum(-1).numpy()  # (16, 16)
                    sink.append(bool(boxes[r].ravel()[phrase.argmax()] > 0.5))
                region = score.regions[r]
                placed.append(region.in_box)
                found.append(region.found)
                iou.append(region.iou)
                if region.found and not region.in_box:
                    detected, target = score.detections[region.detection].box, layout.regions[r].bbox
                    recentred.append(box_iou(_centred_on(detected, target), target))
                    area_ratio.append(_area(detected) / _area(target))
        at_end, at_last, placed, found, iou = map(np.array, (at_end, at_last, placed, found, iou))
        given_in = placed[at_last].mean() if at_last.any() else float("nan")
        given_out = placed[~at_last].mean() if (~at_last).any() else float("nan")
        followed = at_last & found
        lines.append(
            f"| {method} | {len(placed)} | {at_end.mean():.3f} | {at_last.mean():.3f} | {placed.mean():.3f} | "
            f"{given_in:.3f} | {given_out:.3f} | "
            f"{found[at_last].mean() if at_last.any() else float('nan'):.3f} | "
            f"{np.median(iou[followed]) if followed.any() else float('nan'):.2f} |"
        )
        print(lines[-1], flush=True)
        recentred, area_ratio = np.array(recentred), np.array(area_ratio)
        size = recentred < 0.5
        misses.append(
            f"| {method} | {len(recentred)} | {size.mean():.3f} | "
            f"{(area_ratio[size] < 1).mean() if size.any() else float('nan'):.3f} | "
            f"{(~size).mean():.3f} | {np.median(area_ratio) if len(area_ratio) else float('nan'):.2f} |"
        )
    text = "\n".join(lines + ["", "Drawn objects that miss their box (found, box IoU < 0.5), by cause:", ""] + misses)
    print(text)
    if args.out:
        atomic_write_text(
            args.out,
            "# Does the image follow the attention?\n\n`python benchmarks/refocus_followthrough.py --n "
            f"{args.n}`\n\n{text}\n",
        )


def _area(box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _centred_on(box, target):
    """``box`` moved (same size) so that its centre is ``target``'s."""
    dx = (target[0] + target[2] - box[0] - box[2]) / 2
    dy = (target[1] + target[3] - box[1] - box[3]) / 2
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


if __name__ == "__main__":
    main()
