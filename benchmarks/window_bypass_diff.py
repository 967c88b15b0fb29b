"""How much DenseDiffusion's images change when its idle layers run on SDPA (``sdpa_outside_windows``, the default)
instead of the probabilities path with unchanged logits (as before), on the shipped shapes model.

    python benchmarks/window_bypass_diff.py --n 8

Per scene: the largest pixel difference (0-255), the mean, the share of pixels that differ, and object-in-box of
both images.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from layoutguide.guidance import GuidanceBudget
from layoutguide.loading import load_pipeline
from layoutguide.shapes.evaluate import evaluate
from layoutguide.shapes.world import make_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline(device="cpu")
    identical, before, after = 0, [], []
    print("| scene | max diff | mean diff | pixels differing | object-in-box, probabilities path | SDPA |")
    print("|---|---|---|---|---|---|")
    for k in range(args.n):
        layout = make_scene(10_000_100 + k, n_objects=(1, 4)).layout()
        a, b = (
            pipe(
                layout=layout,
                method="densediffusion",
                seed=k,
                progress=False,
                guidance_budget=GuidanceBudget(sdpa_outside_windows=bypass),
            ).images[0]
            for bypass in (False, True)
        )
        d = np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int))
        identical += int(d.max() == 0)
        before.append(evaluate(a, layout).object_in_box)
        after.append(evaluate(b, layout).object_in_box)
        print(f"| {k} | {d.max()} | {d.mean():.3f} | {(d > 0).mean():.3f} | {before[-1]:.3f} | {after[-1]:.3f} |")
    print(f"\nbyte-identical: {identical} of {args.n}; object-in-box {np.mean(before):.3f} -> {np.mean(after):.3f}")


if __name__ == "__main__":
    main()
