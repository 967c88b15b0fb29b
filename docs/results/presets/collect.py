"""Collect the preset runs (bench-out/presets/*/results.json, made by commands.sh) into one table; check that the tuned
rows reproduce, image for image, the published n=200 run's first entries (docs/results/shapes/results.json: the
n-entry suite is the n=200 suite's first n entries).

    PYTHONPATH=src python docs/results/presets/collect.py bench-out/presets > docs/results/presets/tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = ("object_in_box", "mean_iou", "colour_acc", "found_rate", "count_ok", "miou_inside")
PUBLISHED = Path(__file__).parents[1] / "shapes" / "results.json"


def main(root: Path) -> None:
    published = json.loads(PUBLISHED.read_text())
    print("| run | model | n | method | " + " | ".join(METRICS) + " |")
    print("|---|---|---|---|" + "---|" * len(METRICS))
    checks = []
    for results_file in sorted(root.glob("*/results.json")):
        results = json.loads(results_file.read_text())
        config = results["config"]
        model = "shapes-gligen" if "gligen" in results_file.parent.name else "shapes"
        for label, row in results["methods"].items():
            values = " | ".join(f"{row[m]:.3f}" for m in METRICS)
            print(f"| {results_file.parent.name} | {model} | {config['n']} | `{label}` | {values} |")
            same_suite = model == "shapes" and config["seed"] == 0 and not config["use_masks"]
            if same_suite and label in published["images"]:
                ours = results["images"][label]
                theirs = published["images"][label][: len(ours)]
                same = sum(
                    a["object_in_box"] == b["object_in_box"] and a["mean_iou"] == b["mean_iou"]
                    for a, b in zip(ours, theirs)
                )
                checks.append(
                    f"{results_file.parent.name} `{label}`: {same}/{len(ours)} images score as in the published run"
                )
    print()
    for line in checks:
        print(f"- {line}")
    for label in ("refocus", "zestguide"):
        row = published["methods"][label]
        values = ", ".join(f"{m} {row[m]:.3f}" for m in METRICS)
        print(f"- published n=200 tuned `{label}` (docs/results/shapes): {values}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench-out/presets"))
