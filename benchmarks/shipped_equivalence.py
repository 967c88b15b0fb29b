"""Do the shipped models still give the same images? Generate with every layout method at the model's defaults and
save the images (and the returned attention maps) to one ``.npz``; run it under two source trees and compare.

    PYTHONPATH=OLD/src python benchmarks/shipped_equivalence.py --out old.npz
    PYTHONPATH=NEW/src python benchmarks/shipped_equivalence.py --out new.npz
    python benchmarks/shipped_equivalence.py --compare old.npz new.npz

Layouts are shapes-world scenes of 1-3 objects (seeds 10_000_700 + k), one image each at the model's default steps
and guidance; the compare step prints, per entry, whether the arrays are equal bit for bit and the largest
difference otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

METHODS = {
    "shapes": [
        "none",
        "refocus",
        "boxdiff",
        "layout-guidance",
        "attend-excite",
        "zestguide",
        "zestguide+pww",
        "pww",
        "densediffusion",
    ],
    "shapes-gligen": [
        "gligen",
        "reground+refocus",
        "gligen+layout-guidance",
        "gligen+pww+refocus[refocus.tokens=last]",
    ],
}


def generate(out: Path, n_layouts: int, steps: int | None, only: set[str] | None = None) -> None:
    from layoutguide.loading import load_pipeline
    from layoutguide.shapes.world import make_scene

    arrays: dict[str, np.ndarray] = {}
    for model, methods in METHODS.items():
        pipe = load_pipeline(model, device="cpu")
        layouts = [make_scene(10_000_700 + k, n_objects=(1, 3)).layout() for k in range(n_layouts)]
        for k, layout in enumerate(layouts):
            for method in methods:
                if only and method not in only:
                    continue
                result = pipe(
                    layout=layout,
                    method=None if method == "none" else method,
                    seed=k,
                    num_inference_steps=steps,
                    output_type="np",
                    return_attention=method == "none",
                    progress=False,
                )
                arrays[f"{model}/{method}/{k}/image"] = result.images[0]
                if result.attention is not None:
                    arrays[f"{model}/{method}/{k}/attention"] = np.stack([a[0].numpy() for a in result.attention])
                print(f"{model} {method} layout {k}", flush=True)
    np.savez_compressed(out, **arrays)


def compare(a: Path, b: Path) -> int:
    old, new = np.load(a), np.load(b)
    differing = 0
    for key in sorted(set(old.files) | set(new.files)):
        if key not in old.files or key not in new.files:
            print(f"{key}: only in {'new' if key in new.files else 'old'}")
            differing += 1
            continue
        x, y = old[key], new[key]
        if x.shape == y.shape and np.array_equal(x, y):
            print(f"{key}: identical")
        else:
            differing += 1
            gap = np.abs(x - y).max() if x.shape == y.shape else f"shape {x.shape} vs {y.shape}"
            print(f"{key}: DIFFERENT (max abs diff {gap})")
    print(f"{len(set(old.files) | set(new.files)) - differing} identical, {differing} different")
    return 1 if differing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--layouts", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="default: the model's")
    parser.add_argument("--methods", help="comma-separated subset of the methods (default: all)")
    parser.add_argument("--compare", nargs=2, type=Path)
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    if args.out is None:
        parser.error("give --out FILE.npz or --compare OLD NEW")
    generate(args.out, args.layouts, args.steps, set(args.methods.split(",")) if args.methods else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
