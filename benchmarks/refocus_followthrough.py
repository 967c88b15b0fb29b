"""Where does Attention Refocusing lose an object: does the attention not move, or does the image not follow it?

For each region of ``--n`` benchmark layouts, the phrase's cross-attention (16x16 layers, tokens summed) of the
CFG forward at the end of the guided steps and at the last step is compared with its box (*attention in box*:
the map's peak cell lies in the box), and the image is scored by the exact evaluator (*object in box*). The
cross-table separates two failure modes: the guidance did not move the attention (the optimisation), and the
attention sat in the box but the object did not (the model's denoiser does not follow its own attention).

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
    args = parser.parse_args()

    from tqdm.auto import tqdm

    from layoutguide.bench import shapes_suite
    from layoutguide.layout import atomic_write_text
    from layoutguide.loading import load_pipeline
    from layoutguide.methods.refocus import SCHEDULES, reference_plan
    from layoutguide.shapes.evaluate import evaluate
    from layoutguide.tokens import map_phrases

    pipe = load_pipeline(args.model)
    pipe.set_progress_bar_config(disable=True)
    steps = pipe.model_defaults.get("num_inference_steps", 30)
    last_guided = max(i for i in range(steps) if reference_plan(i, steps, SCHEDULES["official"]))
    layouts = [s.layout(with_masks=False) for s in shapes_suite(args.n, seed=args.seed)]
    lines = [
        f"{args.n} benchmark layouts (suite seed {args.seed}), one image each; attention at step {last_guided} (refocus's last guided "
        f"step of {steps}) and at the last step; regions counted once each.",
        "",
        "| method | regions | attention peak in box (guided end) | (last step) | object in box | object in box, given attention in box (last step) | object in box, given attention outside | given attention in box: object found anywhere | its box IoU (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method in args.methods.split(","):
        at_end, at_last, placed, found, iou = [], [], [], [], []
        for k, layout in enumerate(tqdm(layouts, desc=method)):
            out = pipe(layout=layout, method=None if method == "none" else method, return_attention=True, attention_resolution=16, seed=k, progress=False)
            score = evaluate(out.images[0], layout)
            tokens = map_phrases(pipe.tokenizer, layout.prompt, layout.phrases)
            boxes = layout.rasterize(16, 16, boxes_only=True)  # (R, 16, 16)
            for r, idx in enumerate(tokens.indices):
                for step, sink in ((last_guided, at_end), (len(out.attention) - 1, at_last)):
                    phrase = out.attention[step][0][..., list(idx)].sum(-1).numpy()  # (16, 16)
                    sink.append(bool(boxes[r].ravel()[phrase.argmax()] > 0.5))
                placed.append(score.regions[r].in_box)
                found.append(score.regions[r].found)
                iou.append(score.regions[r].iou)
        at_end, at_last, placed, found, iou = map(np.array, (at_end, at_last, placed, found, iou))
        given_in = placed[at_last].mean() if at_last.any() else float("nan")
        given_out = placed[~at_last].mean() if (~at_last).any() else float("nan")
        followed = at_last & found
        lines.append(
            f"| {method} | {len(placed)} | {at_end.mean():.3f} | {at_last.mean():.3f} | {placed.mean():.3f} | {given_in:.3f} | {given_out:.3f} | "
            f"{found[at_last].mean() if at_last.any() else float('nan'):.3f} | {np.median(iou[followed]) if followed.any() else float('nan'):.2f} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        atomic_write_text(args.out, f"# Does the image follow the attention?\n\n`python benchmarks/refocus_followthrough.py --n {args.n}`\n\n{text}\n")


if __name__ == "__main__":
    main()
