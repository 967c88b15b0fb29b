"""A new backbone's shapes tables against the SD shapes model's, with the backbone issues' targets judged.

Reads two ``results.json`` written by ``layoutguide bench shapes`` or ``bench relations`` (the new model's and the
reference's, same suite) and prints one markdown table: each method's score on both, its ratio to the new model's
unguided score, and whether it meets the targets of issues #20/#21 (at least ``--min-ratio`` times unguided; within
``--within`` of the reference). Methods missing from the reference get only the ratio. The verdicts are computed
here from the files, never typed into a report by hand.

    python benchmarks/backbone_targets.py bench-out/sdxl-shapes-sdxl/box-s0-n100/results.json \\
        --reference docs/results/shapes/results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def scores(path: Path, metric: str, first: int | None = None) -> dict[str, float]:
    """method label -> ``metric``; relation results are keyed ``planner + method``, reduced to the method. ``first``:
    the mean over a shapes run's first images only (its suite is prefix-stable: the first 100 layouts of an n=200
    run are an n=100 run's), so a smaller run compares with the same layouts."""
    data = json.loads(path.read_text())
    if first is not None:
        return {
            label: sum(image[metric] for image in images[:first]) / first for label, images in data["images"].items()
        }
    if "methods" in data:
        return {label: row[metric] for label, row in data["methods"].items()}
    return {label.split(" + ", 1)[1]: row[metric] for label, row in data["rows"].items()}


def target_rows(
    new: dict[str, float], reference: dict[str, float], min_ratio: float, within: float, unguided: str = "none"
) -> list[str]:
    """Markdown rows: method, new score, x unguided, reference score, difference, verdict."""
    base = new.get(unguided)
    rows = []
    for label, score in new.items():
        ratio = score / base if base else float("inf") if score > 0 else float("nan")
        ref = reference.get(label)
        verdicts = []
        if label != unguided:
            verdicts.append(f"{'meets' if ratio >= min_ratio else 'below'} {min_ratio:g}x")
            if ref is not None:
                verdicts.append(f"{'within' if score >= ref - within else 'short of'} {within:g} of reference")
        ref_cells = f"{ref:.3f} | {score - ref:+.3f}" if ref is not None else "- | -"
        ratio_cell = "-" if label == unguided else f"{ratio:.1f}x"
        rows.append(f"| {label} | {score:.3f} | {ratio_cell} | {ref_cells} | {'; '.join(verdicts) or '-'} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="the new model's results.json")
    parser.add_argument("--reference", type=Path, default=None, help="the reference model's results.json")
    parser.add_argument(
        "--reference-first", type=int, default=None, help="score the reference on its first N images (shapes runs)"
    )
    parser.add_argument("--metric", default=None, help="default: object_in_box (relation_acc for relation results)")
    parser.add_argument("--min-ratio", type=float, default=3.0)
    parser.add_argument("--within", type=float, default=0.10)
    args = parser.parse_args()
    relations = "rows" in json.loads(args.results.read_text())
    metric = args.metric or ("relation_acc" if relations else "object_in_box")
    new = scores(args.results, metric)
    reference = scores(args.reference, metric, args.reference_first) if args.reference else {}
    # a phrase-form run labels its rows "none (article)" and so on
    unguided = next((label for label in new if label == "none" or label.startswith("none (")), "none")
    print(f"| method | {metric} | x unguided | reference | difference | targets |")
    print("|---|---|---|---|---|---|")
    print("\n".join(target_rows(new, reference, args.min_ratio, args.within, unguided)))


if __name__ == "__main__":
    main()
