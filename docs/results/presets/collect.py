"""The preset comparison's tables, from the bench outputs (made by commands.sh) or from the per-image summary
committed beside this file.

    PYTHONPATH=src python docs/results/presets/collect.py bench-out/presets   # rewrite per_image.csv and runs.json
    PYTHONPATH=src python docs/results/presets/collect.py                     # tables from the committed files

With a bench folder, every ``*/results.json`` under it is read; its per-image scores go to ``per_image.csv`` (one
line per run, row and image) and each run's command, settings and seconds per image to ``runs.json``. The tables are
then made from those two files alone, so the report's numbers can be re-derived without the images.

Each table: one row per method row of a run, with 95% bootstrap intervals (images resampled, fixed generator) for
object-in-box, mean IoU and found, the number of blank images (no detection at all), and the paired difference in
object-in-box against the row's tuned counterpart (the same label without ``[preset=...]``), whose interval
resamples images, i.e. layouts and seeds, so it is the paired comparison the shared seeds allow, and object-in-box
on the row's non-blank images beside the tuned row's on the same images (does a preset place what it draws?).
Tuned rows of a seed-0 box run on the shapes model are checked image for image against the published n=200 run
(docs/results/shapes/results.json, whose first n entries are the n-entry suite).
"""

from __future__ import annotations

import csv
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
PER_IMAGE = HERE / "per_image.csv"
RUNS = HERE / "runs.json"
PUBLISHED = HERE.parent / "shapes" / "results.json"
FIELDS = ("object_in_box", "mean_iou", "found_rate", "colour_acc", "count_ok", "n_detections")
WITH_INTERVAL = ("object_in_box", "mean_iou", "found_rate")
DRAWS = 2000
PRESET = re.compile(r"\[preset=(\w+)\]")
MAIN, GLIGEN, CFG, ARTICLE = (
    "box-shapes-s0-n64",
    "box-gligen-s0-n64",
    "box-shapes-s0-n16-cfg7.5",
    "box-shapes-s0-n32-article",
)
SEED1 = "box-shapes-s1-n32"
# (what it isolates, run A, row A, run B, row B): A minus B on the entries both hold (the same layouts and seeds)
COMPARISONS = [
    (
        "refocus: CAR form (official per-box minus paper union), all else equal",
        MAIN,
        "refocus[preset=official]",
        MAIN,
        "refocus[preset=paper]",
    ),
    ("refocus: CAR form, seed 1", SEED1, "refocus[preset=official]", SEED1, "refocus[preset=paper]"),
    (
        "gligen+refocus: CAR form + L_G (official minus paper)",
        GLIGEN,
        "gligen+refocus[preset=official]",
        GLIGEN,
        "gligen+refocus[preset=paper]",
    ),
    (
        "refocus tuned: 50 steps, CFG 7.5 every step minus the model's 30, CFG 3 at t<=850",
        CFG,
        "refocus",
        MAIN,
        "refocus",
    ),
    (
        "refocus: official preset minus tuned options at 50 steps / CFG 7.5",
        MAIN,
        "refocus[preset=official]",
        CFG,
        "refocus",
    ),
    ("zestguide tuned: 50 steps, CFG 7.5 every step minus the model's sampling", CFG, "zestguide", MAIN, "zestguide"),
    (
        "zestguide: official preset minus tuned options at 50 steps / CFG 7.5",
        MAIN,
        "zestguide[preset=official]",
        CFG,
        "zestguide",
    ),
    (
        "GLIGEN alone: official (beta 0.3, 'a ', PLMS 50, CFG 7.5, negative) minus tuned",
        GLIGEN,
        "gligen[preset=official]",
        GLIGEN,
        "gligen",
    ),
    *(
        (f"{row}: article phrases minus bare", ARTICLE, f"{row} (article)", MAIN, row)
        for row in (
            "refocus",
            "refocus[preset=official]",
            "refocus[preset=paper]",
            "zestguide",
            "zestguide[preset=official]",
            "zestguide[preset=paper]",
        )
    ),
]


def extract(root: Path) -> None:
    """Per-image scores and run descriptions of every bench run under ``root`` into PER_IMAGE and RUNS; runs already
    recorded there and absent under ``root`` are kept (a later session's folder need not hold the earlier runs)."""
    found = {p.parent.name for p in root.glob("*/results.json")}
    runs = {k: v for k, v in json.loads(RUNS.read_text()).items() if k not in found} if RUNS.exists() else {}
    kept = []
    if PER_IMAGE.exists():
        with PER_IMAGE.open() as f:
            kept = [line for line in csv.reader(f)][1:]
    with PER_IMAGE.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("run", "row", "index", *FIELDS))
        writer.writerows(line for line in kept if line[0] not in found)
        for results_file in sorted(root.glob("*/results.json")):
            results = json.loads(results_file.read_text())
            run = results_file.parent.name
            if "rows" in results:  # a relation benchmark: aggregates only (it keeps no per-image scores)
                runs[run] = {**results["config"], "relation_rows": results["rows"], "chance": results["chance"]}
                continue
            config = {k: v for k, v in results["config"].items() if k != "methods"}
            config["seconds_per_image"] = {
                label: round(row["seconds_per_image"], 2) for label, row in results["methods"].items()
            }
            runs[run] = config
            for label, images in results["images"].items():
                for k, image in enumerate(images):
                    writer.writerow((run, label, k, *(round(float(image[m]), 6) for m in FIELDS)))
    RUNS.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")


def interval(values: list[float], rng: random.Random) -> tuple[float, float]:
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(DRAWS))
    return means[int(0.025 * DRAWS)], means[int(0.975 * DRAWS) - 1]


def tuned_label(label: str) -> str:
    return PRESET.sub("", label)


def read_per_image() -> dict[str, dict[str, list[dict[str, float]]]]:
    """run -> row -> per-image values, in entry order."""
    table: dict[str, dict[str, list[dict[str, float]]]] = {}
    with PER_IMAGE.open() as f:
        for line in csv.DictReader(f):
            row = table.setdefault(line["run"], {}).setdefault(line["row"], [])
            assert int(line["index"]) == len(row), f"{line['run']} {line['row']}: entries out of order"
            row.append({m: float(line[m]) for m in FIELDS})
    return table


def cell(values: list[float], rng: random.Random) -> str:
    lo, hi = interval(values, rng)
    return f"{sum(values) / len(values):.3f} [{lo:.2f}, {hi:.2f}]"


def run_table(run: str, rows: dict[str, list[dict[str, float]]], config: dict) -> list[str]:
    rng = random.Random(0)
    lines = [
        f"### {run}",
        "",
        f"`{config.get('command')}`",
        "",
        "| row | n | object-in-box [95% CI] | mean IoU [95% CI] | found [95% CI] | colour acc | count acc | blank "
        "| object-in-box minus tuned [95% CI] | object-in-box on its non-blank images / tuned there | s/image |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, images in rows.items():
        cells = [cell([im[m] for im in images], rng) for m in WITH_INTERVAL]
        means = [f"{sum(im[m] for im in images) / len(images):.3f}" for m in ("colour_acc", "count_ok")]
        blank = sum(im["n_detections"] == 0 for im in images)
        base = rows.get(tuned_label(label))
        drawn = [k for k, im in enumerate(images) if im["n_detections"] > 0]
        if base is None or base is images:
            difference = non_blank = "-"
        else:
            on_drawn = [sum(rows_[k]["object_in_box"] for k in drawn) / max(len(drawn), 1) for rows_ in (images, base)]
            non_blank = f"{on_drawn[0]:.3f} / {on_drawn[1]:.3f} ({len(drawn)})"
            diffs = [a["object_in_box"] - b["object_in_box"] for a, b in zip(images, base, strict=True)]
            lo, hi = interval(diffs, rng)
            difference = f"{sum(diffs) / len(diffs):+.3f} [{lo:+.2f}, {hi:+.2f}]"
        seconds = config.get("seconds_per_image", {}).get(label, float("nan"))
        lines.append(
            f"| `{label}` | {len(images)} | {' | '.join(cells)} | {' | '.join(means)} | {blank} | {difference} "
            f"| {non_blank} | {seconds:.1f} |"
        )
    return lines


def same_scores(ours: list[dict[str, float]], theirs: list[dict[str, float]]) -> int:
    """How many entries, paired in order, score the same object-in-box and mean IoU (to float rounding)."""
    return sum(
        abs(a["object_in_box"] - b["object_in_box"]) < 1e-6 and abs(a["mean_iou"] - b["mean_iou"]) < 1e-5
        for a, b in zip(ours, theirs)
    )


def published_checks(table: dict[str, dict[str, list[dict[str, float]]]], runs: dict) -> list[str]:
    """Tuned rows of seed-0 box runs on the shapes model against the published n=200 run, image for image."""
    published = json.loads(PUBLISHED.read_text())["images"]
    checks = []
    for run, rows in table.items():
        config = runs[run]
        if "gligen" in run or config["seed"] != 0 or config["use_masks"] or config.get("phrase_forms"):
            continue
        for label, images in rows.items():
            if label in published:
                theirs = published[label][: len(images)]
                same = same_scores(images, theirs)
                checks.append(f"- {run} `{label}`: {same}/{len(images)} images score as in the published n=200 run")
    return checks


def prefix_checks(table: dict[str, dict[str, list[dict[str, float]]]]) -> list[str]:
    """The n=200 runs remake the n=64 runs' images (same suite seed, model and batch): their first 64 entries of
    each shared row must score the same."""
    checks = []
    for run, rows in table.items():
        small = table.get(run.replace("-n200", "-n64")) if run.endswith("-n200") else None
        for label, images in rows.items() if small else ():
            if label in small:
                theirs = small[label]
                same = same_scores(images, theirs)
                checks.append(f"- {run} `{label}`: its first {len(theirs)} entries score as the n=64 run's: {same}")
    return checks


def comparisons(table: dict[str, dict[str, list[dict[str, float]]]]) -> list[str]:
    """COMPARISONS whose rows were run: paired differences on the shared entries, with 95% bootstrap intervals."""
    rng = random.Random(0)
    lines = [
        "| comparison (A minus B) | n | object-in-box | found | mean IoU | blank A / B |",
        "|---|---|---|---|---|---|",
    ]
    for what, run_a, row_a, run_b, row_b in COMPARISONS:
        a, b = table.get(run_a, {}).get(row_a), table.get(run_b, {}).get(row_b)
        if a is None or b is None:
            continue
        n = min(len(a), len(b))
        cells = []
        for m in ("object_in_box", "found_rate", "mean_iou"):
            diffs = [x[m] - y[m] for x, y in zip(a[:n], b[:n])]
            lo, hi = interval(diffs, rng)
            cells.append(f"{sum(diffs) / n:+.3f} [{lo:+.2f}, {hi:+.2f}]")
        blanks = f"{sum(x['n_detections'] == 0 for x in a[:n])} / {sum(y['n_detections'] == 0 for y in b[:n])}"
        lines.append(f"| {what} | {n} | {' | '.join(cells)} | {blanks} |")
    return lines


def relation_table(run: str, config: dict) -> list[str]:
    """A relation benchmark's rows (relation, count and colour accuracy, failure causes) as the run reported them."""
    lines = [
        f"### {run}",
        "",
        f"`{config.get('command')}`",
        "",
        "| row | n | relation acc | count acc | colour acc | failed: objects / attributes / placement | chance |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in config["relation_rows"].items():
        failed = " / ".join(f"{row['failures'][k]:.3f}" for k in ("objects", "attributes", "placement"))
        lines.append(
            f"| `{label}` | {config['n']} | {row['relation_acc']:.3f} | {row['count_acc']:.3f} | "
            f"{row['colour_acc']:.3f} | {failed} | {config['chance']:.3f} |"
        )
    return lines


def main(argv: list[str]) -> None:
    if argv:
        extract(Path(argv[0]))
    table = read_per_image()
    runs = json.loads(RUNS.read_text())
    for run, rows in table.items():
        print("\n".join(run_table(run, rows, runs[run])))
        print()
    for run, config in runs.items():
        if "relation_rows" in config:
            print("\n".join(relation_table(run, config)))
            print()
    print("\n".join(comparisons(table)))
    print()
    print("\n".join(published_checks(table, runs) + prefix_checks(table)))


if __name__ == "__main__":
    main(sys.argv[1:])
