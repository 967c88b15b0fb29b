"""Wall time of each method against plain sampling, side by side in one process (ratios, not absolutes).

    python benchmarks/overhead.py --steps 20 --repeats 3                 # tiny random-weight pipeline
    python benchmarks/overhead.py --model shipped --steps 30 --repeats 3  # the shipped shapes model

Each configuration runs ``repeats`` times after one warm-up call; the median is reported. Writes a Markdown
table to stdout (and to --out if given).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", default="tiny", help="'tiny' (random weights, built in code), 'shipped', or a folder"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument(
        "--methods",
        default="none,refocus,refocus[car],refocus[sar],boxdiff,layout-guidance,attend-excite,zestguide,pww,densediffusion,zestguide+pww",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--guidance-interval",
        default=None,
        help="CFG only at timesteps LOW,HIGH, or 'all' (every step); default: the model's",
    )
    args = parser.parse_args()

    from layoutguide.bench import shapes_suite
    from layoutguide.loading import load_pipeline
    from layoutguide.testing import tiny_pipeline

    if args.model == "tiny":
        pipe = tiny_pipeline()
    else:
        pipe = load_pipeline(None if args.model == "shipped" else args.model, guidance_interval=args.guidance_interval)
    layouts = [s.layout() for s in shapes_suite(args.batch, seed=5, n_objects=(2, 2))]
    variants = {"refocus[car]": ("refocus", {"sar": False}), "refocus[sar]": ("refocus", {"car": False})}
    rows = []
    base = None
    for label in args.methods.split(","):
        method, options = variants.get(label, (None if label == "none" else label, {}))

        def call(method=method, options=options):
            return pipe(
                layout=layouts,
                method=method,
                method_options=options,
                num_inference_steps=args.steps,
                guidance_scale=3.0,
                seed=0,
                progress=False,
            )

        call()  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = call()
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        base = base or median
        iterations = sum(len(g.get("losses", [])) for g in out.guidance)
        rows.append(f"| {label} | {median:.3f} | {median / base:.2f}x | {iterations} |")
    header = [
        f"Model: {args.model}; {args.steps} steps, batch {args.batch}, median of {args.repeats}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads.",
        "",
        "| method | seconds per call | vs none | guidance iterations |",
        "|---|---|---|---|",
    ]
    text = "\n".join(header + rows) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
