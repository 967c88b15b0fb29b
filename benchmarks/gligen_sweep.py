"""GLIGEN vs ReGround on a shapes GLIGEN model: methods table, scheduled-sampling (beta) sweep for both wirings,
the trade-off plot of colour accuracy (textual grounding) against object-in-box accuracy (spatial grounding),
description omission (colour accuracy with grounding minus without, paired over layouts, per suite seed) and
ReGround's colour accuracy at equal object-in-box accuracy (interpolated along each wiring's beta curve).

    python benchmarks/gligen_sweep.py --model src/layoutguide/weights/shapes-gligen --n 48 --out docs/results/gligen
    python benchmarks/gligen_sweep.py --model M --n 100 --seeds 0,1 --methods none,gligen,reground \
        --betas 0.1,0.3,1 --out docs/results/reground-omission
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw


def plot(points: dict[str, list[tuple[float, float, float]]], path: Path) -> None:
    """Colour accuracy (y) vs object-in-box accuracy (x), one polyline per wiring, beta written at each point."""
    w, h, m = 520, 420, 60
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    xs = [p[1] for ps in points.values() for p in ps]
    ys = [p[2] for ps in points.values() for p in ps]
    x0, x1 = min(xs) - 0.02, max(xs) + 0.02
    y0, y1 = min(ys) - 0.02, max(ys) + 0.02

    def fx(v):
        return m + (v - x0) / (x1 - x0) * (w - 2 * m)

    def fy(v):
        return h - m - (v - y0) / (y1 - y0) * (h - 2 * m)

    d.rectangle((m, m, w - m, h - m), outline=(0, 0, 0))
    d.text((w // 2 - 70, h - m + 25), "object-in-box accuracy", fill=(0, 0, 0))
    d.text((5, m - 25), "colour accuracy", fill=(0, 0, 0))
    for v in (x0, x1):
        d.text((fx(v) - 10, h - m + 5), f"{v:.2f}", fill=(0, 0, 0))
    for v in (y0, y1):
        d.text((m - 40, fy(v) - 5), f"{v:.2f}", fill=(0, 0, 0))
    colours = {"gligen (sequential)": (200, 40, 40), "reground (parallel)": (40, 80, 220)}
    for k, (name, ps) in enumerate(points.items()):
        c = colours.get(name, (0, 0, 0))
        coords = [(fx(x), fy(y)) for _, x, y in sorted(ps)]
        d.line(coords, fill=c, width=2)
        for (beta, _x, _y), (px, py) in zip(sorted(ps), coords):
            d.ellipse((px - 3, py - 3, px + 3, py + 3), fill=c)
            d.text((px + 5, py - 12), f"b={beta:g}", fill=c)
        d.text((m + 10, m + 10 + 15 * k), name, fill=c)
    img.save(path)


def paired_difference(with_: list[float], without: list[float], *, draws: int = 2000) -> tuple[float, float, float]:
    """Mean of ``with_ - without`` over paired images and its 95% bootstrap interval (images resampled; a fixed
    generator, so the report is reproducible)."""
    diffs = [a - b for a, b in zip(with_, without, strict=True)]
    rng = random.Random(0)
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(draws))
    return sum(diffs) / len(diffs), means[int(0.025 * draws)], means[int(0.975 * draws) - 1]


def curve_at(points: list[tuple[float, float]], x: float) -> float | None:
    """y at ``x`` on the polyline through ``(x, y)`` points taken in order of x (points at one x averaged); None
    outside the points' x range, where a wiring has no setting with that box accuracy."""
    by_x: dict[float, list[float]] = {}
    for px, py in points:
        by_x.setdefault(px, []).append(py)
    curve = sorted((px, sum(ys) / len(ys)) for px, ys in by_x.items())
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return curve[0][1] if curve and x == curve[0][0] else None


def folder(out: Path, kind: str, seed: int, seeds: list[int]) -> Path:
    """``methods`` / ``sweep`` for a one-seed run (the layout docs/results/gligen has), else one per seed."""
    return out / kind if len(seeds) == 1 else out / f"{kind}-seed{seed}"


def colour_breakdown(images: list[dict]) -> tuple[float, float]:
    """Where lost colour went: detections per region (objects missing or merged when low) and the share of
    detections whose colour the layout does not name (objects drawn in another colour: omission proper)."""
    regions = sum(len(img["regions"]) for img in images)
    detections = [(d["colour"], {r["colour"] for r in img["regions"]}) for img in images for d in img["detections"]]
    foreign = sum(colour not in named for colour, named in detections)
    return len(detections) / max(1, regions), foreign / max(1, len(detections))


def omission_lines(tables: dict[int, dict], methods: list[str]) -> list[str]:
    """Colour accuracy with grounding minus without (``none``), paired over the same layouts and noise, per seed
    and pooled: description omission when clearly below 0; with :func:`colour_breakdown` for both."""
    grounded = [m for m in methods if m != "none" and "+" not in m]
    lines = [
        "| method | seed | images | colour acc none | colour acc method | difference | 95% interval "
        "| detections/region none, method | unnamed-colour detections none, method |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label in grounded:
        pooled: dict[str, list] = {"with": [], "without": [], "images": [], "none_images": []}
        rows = [(str(seed), table["images"][label], table["images"]["none"]) for seed, table in tables.items()]
        for _, images, none_images in rows:
            pooled["images"] += images
            pooled["none_images"] += none_images
        if len(tables) > 1:
            rows.append(("all", pooled["images"], pooled["none_images"]))
        for seed, images, none_images in rows:
            with_ = [img["colour_acc"] for img in images]
            without = [img["colour_acc"] for img in none_images]
            diff, lo, hi = paired_difference(with_, without)
            (det_n, foreign_n), (det_m, foreign_m) = colour_breakdown(none_images), colour_breakdown(images)
            lines.append(
                f"| {label} | {seed} | {len(with_)} | {sum(without) / len(without):.3f} | "
                f"{sum(with_) / len(with_):.3f} | {diff:+.3f} | [{lo:+.3f}, {hi:+.3f}] "
                f"| {det_n:.2f}, {det_m:.2f} | {foreign_n:.3f}, {foreign_m:.3f} |"
            )
    return lines


def equal_box_lines(points: dict[str, list[tuple[float, float, float]]]) -> list[str]:
    """Each setting's colour accuracy beside the other wiring's at the same object-in-box accuracy."""
    lines = [
        "| setting | object-in-box | colour acc | other wiring's colour acc at that box acc | difference |",
        "|---|---|---|---|---|",
    ]
    for name, other in (
        ("gligen (sequential)", "reground (parallel)"),
        ("reground (parallel)", "gligen (sequential)"),
    ):
        other_curve = [(x, y) for _, x, y in points[other]]
        for beta, x, y in sorted(points[name]):
            at = curve_at(other_curve, x)
            shown = "outside its range" if at is None else f"{at:.3f}"
            diff = "" if at is None else f"{y - at:+.3f}"
            lines.append(f"| {name.split()[0]}[beta={beta:g}] | {x:.3f} | {y:.3f} | {shown} | {diff} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="src/layoutguide/weights/shapes-gligen")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--seeds", default="0", help="suite seeds (layouts and noise), comma-separated")
    parser.add_argument(
        "--sweep-seeds", default=None, help="suite seeds of the beta sweep (default: the first; 'none': no sweep)"
    )
    parser.add_argument("--methods", default="none,gligen,reground,gligen+refocus,reground+refocus")
    parser.add_argument("--betas", default="0.1,0.3,0.5,1.0")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    parser.add_argument("--title", default="GLIGEN and ReGround on the shapes GLIGEN model")
    parser.add_argument("--out", type=Path, default=Path("docs/results/gligen"))
    args = parser.parse_args()

    from layoutguide.bench import MethodSpec, results_table, run_shapes_bench
    from layoutguide.layout import atomic_write_text
    from layoutguide.loading import load_pipeline

    seeds = [int(s) for s in args.seeds.split(",")]
    if args.sweep_seeds == "none":
        sweep_seeds: list[int] = []
    else:
        sweep_seeds = [int(s) for s in args.sweep_seeds.split(",")] if args.sweep_seeds else seeds[:1]
    names = args.methods.split(",")
    pipe = load_pipeline(args.model)
    command = (
        f"python benchmarks/gligen_sweep.py --model {args.model} --n {args.n} --seeds {args.seeds} "
        f"--methods {args.methods} --betas {args.betas}"
        + (f" --steps {args.steps}" if args.steps else "")
        + (f" --sweep-seeds {args.sweep_seeds}" if args.sweep_seeds else "")
        + f" --out {args.out}"
    )
    tables = {
        seed: run_shapes_bench(
            pipe,
            [MethodSpec.parse(m) for m in names],
            n=args.n,
            seed=seed,
            out=folder(args.out, "methods", seed, seeds),
            steps=args.steps,
            progress=False,
            command=command,
        )
        for seed in seeds
    }
    betas = [float(b) for b in args.betas.split(",")]
    wirings = {"gligen": "gligen (sequential)", "reground": "reground (parallel)"}
    sections = []
    all_points = {}
    for seed in sweep_seeds:
        # the methods table already holds each wiring at this model's default beta: not sampled twice
        reused = {
            name: pipe.method_with_defaults(name).options.beta for name in wirings if name in names and seed in tables
        }
        specs = [
            MethodSpec(f"{name}[beta={b:g}]", name, {"beta": b})
            for name in wirings
            for b in betas
            if reused.get(name) != b
        ]
        sweep = run_shapes_bench(
            pipe,
            specs,
            n=args.n,
            seed=seed,
            out=folder(args.out, "sweep", seed, sweep_seeds),
            steps=args.steps,
            progress=False,
        )
        points: dict[str, list[tuple[float, float, float]]] = {key: [] for key in wirings.values()}
        for spec in specs:
            s = sweep["methods"][spec.label]
            points[wirings[spec.method]].append((spec.options["beta"], s["object_in_box"], s["colour_acc"]))
        for name, beta in reused.items():
            if beta in betas:
                s = tables[seed]["methods"][name]
                points[wirings[name]].append((beta, s["object_in_box"], s["colour_acc"]))
        all_points[seed] = points
        plot(points, args.out / ("tradeoff.png" if len(sweep_seeds) == 1 else f"tradeoff-seed{seed}.png"))
        reused_note = ", ".join(f"{name}[beta={beta:g}] is `{name}` above" for name, beta in reused.items())
        sections += [
            f"## Scheduled-sampling sweep, suite seed {seed} (beta = share of steps with grounding)",
            "",
            results_table(sweep),
            "",
            f"Not sampled again: {reused_note}." if reused_note else "",
            "",
            f"### Colour accuracy at equal object-in-box accuracy (seed {seed})",
            "",
            *equal_box_lines(points),
            "",
            f"![trade-off]({'tradeoff.png' if len(sweep_seeds) == 1 else f'tradeoff-seed{seed}.png'})",
            "",
        ]
    steps = f"{args.steps} sampling steps" if args.steps else "the model's sampling steps"
    text = [f"# {args.title}", "", f"{args.n} layouts per suite seed, seeds {args.seeds}, {steps}.", ""]
    for seed, table in tables.items():
        text += [f"## Methods, suite seed {seed}", "", results_table(table), ""]
    if "none" in names:
        text += ["## Description omission (colour accuracy with grounding minus `none`)", ""]
        text += omission_lines(tables, names) + [""]
    text += sections + [f"Reproduce: `{command}`", ""]
    atomic_write_text(args.out / "report.md", "\n".join(text))
    atomic_write_text(args.out / "points.json", json.dumps(all_points, indent=1))
    print("\n".join(text))


if __name__ == "__main__":
    main()
