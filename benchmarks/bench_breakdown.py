"""What a shapes box benchmark holds fixed, varied after the fact: object-in-box by object count and by box size.

A ``bench shapes`` run mixes layouts of 1-4 objects and boxes of every size into one figure. This rebuilds the run's
suite from its ``results.json`` (same n, seed, object count and masks) and splits each method's regions by how many
objects their layout has and by their box's share of the image (small < 6%, medium 6-12%, large > 12%: about a
third of the suite's regions each), so a report can say where a method gains and where it does not. Every group
counts regions; the benchmark's headline averages images, so it differs from "all regions" (a one-object image
weighs as much as a four-object one) but not from an object-count column. No images are generated: the per-region
verdicts are in the results file.

    python benchmarks/bench_breakdown.py bench-out/sdxl-shapes-sdxl/box-s0-n100/results.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

SIZE_BUCKETS = ((0.06, "small"), (0.12, "medium"), (float("inf"), "large"))


def size_bucket(box: tuple[float, float, float, float]) -> str:
    area = (box[2] - box[0]) * (box[3] - box[1])
    return next(name for limit, name in SIZE_BUCKETS if area < limit)


def breakdown(results: dict, layouts: list) -> dict[str, dict[str, tuple[int, int]]]:
    """method -> group ("2 objects", "small box") -> (regions in box, regions)."""
    table: dict[str, dict[str, list[int]]] = {}
    for label, images in results["images"].items():
        groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for image, layout in zip(images, layouts, strict=False):
            count = f"{len(layout.regions)} object{'s' if len(layout.regions) > 1 else ''}"
            for verdict, region in zip(image["regions"], layout.regions, strict=True):
                for group in ("all regions", count, f"{size_bucket(region.box)} box"):
                    groups[group][0] += bool(verdict["in_box"])
                    groups[group][1] += 1
        table[label] = dict(groups)
    return {label: {g: (v[0], v[1]) for g, v in groups.items()} for label, groups in table.items()}


def markdown(table: dict[str, dict[str, tuple[int, int]]]) -> str:
    order = (
        ["all regions"]
        + [f"{k} object{'s' if k > 1 else ''}" for k in range(1, 5)]
        + [f"{name} box" for _, name in SIZE_BUCKETS]
    )
    columns = [g for g in order if any(g in groups for groups in table.values())]
    first = next(iter(table.values()))
    lines = [
        "| method | " + " | ".join(f"{g} (n={first[g][1]})" for g in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for label, groups in table.items():
        cells = [f"{groups[g][0] / groups[g][1]:.3f}" if g in groups else "-" for g in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a `layoutguide bench shapes` results.json")
    args = parser.parse_args()
    from layoutguide.bench.suites import shapes_layout_suite

    results = json.loads(args.results.read_text())
    config = results["config"]
    suite = shapes_layout_suite(
        config["n"], config["seed"], max_objects=config.get("max_objects", 4), use_masks=config.get("use_masks", False)
    )
    print(f"object-in-box by layout size and box area (`{args.results}`, regions per group in the header)\n")
    print(markdown(breakdown(results, list(suite.layouts))))


if __name__ == "__main__":
    main()
