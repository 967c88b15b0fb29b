"""Issue #19's accuracy check of the budget options: object-in-box of each option beside its method's default, image
for image, on the shapes box benchmark (tables for docs/results/cost.md, section "Accuracy of the budget options").

    PYTHONPATH=src python docs/results/cost-accuracy/collect.py bench-out/m19 bench-out/presets   # rewrite the files
    PYTHONPATH=src python docs/results/cost-accuracy/collect.py         # tables from per_image.csv and runs.json

The bench folders are made by docs/results/cost-accuracy/commands.sh (``benchmarks/overhead.py --repeats 0
--accuracy N``: one ``bench shapes`` folder per configuration, named after it, ``refocus@it3`` -> ``refocus_it3``,
under ``s0/`` (suite seed 0, shipped SD shapes model), ``g0/`` (seed 0, shipped GLIGEN shapes model) and ``s1/``
(seed 1)). The default of gligen+refocus is the tuned row of the n=200 preset run on the GLIGEN model (issue #16,
docs/results/presets/commands.sh, ``box-gligen-s0-n200`` under the second folder), made at the batch of its option's
run (16). Every ``*/results.json`` under the first folder goes to ``per_image.csv`` (run, row, entry and scores) and
each run's command, settings and seconds per image to ``runs.json``; the tables are then made from those two files
alone. Today's values of refocus and layout-guidance at seed 0 are the published n=200 run's per-image scores
(docs/results/shapes/results.json), read as run ``published``; a run's default row reproduces them image for image
where it was checked (cost.md).

Each comparison is an option minus its default on the entries both runs hold (the same layouts and initial noise):
the mean paired difference and its 95% bootstrap interval (entries resampled, 10,000 draws, fixed generator), and
how many entries score higher, the same and lower. The predicted SD-1.5 time ratio is ``1 + updates x r / 50``
(cost.md, "Setting 2, measured": r is the update / plain CFG step ratio of run B's median, updates the method's plan
at 50 steps under the option, without early stop, counted by ``benchmarks/cost_parts.py``'s ``schedule``).
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
PER_IMAGE = HERE / "per_image.csv"
RUNS = HERE / "runs.json"
PUBLISHED = HERE.parent / "shapes" / "results.json"
FIELDS = ("object_in_box", "mean_iou", "found_rate", "colour_acc")
DRAWS = 10_000
TOLERANCE = 0.02  # issue #19: object-in-box within 0.02 of today's value

# run B's median update / plain CFG step at SD-1.5 size (cost.md, "Setting 2, measured"); gligen+refocus was not
# timed on the gated architecture: refocus's ratio stands in for it (its plan is refocus's: the same updates)
UPDATE_RATIO = {"refocus": 0.56, "layout-guidance": 0.63, "attend-excite": 0.68, "gligen+refocus": 0.56}
# the updates each plan asks for (no early stop): at SD-1.5's 50 steps (family defaults) and on the shipped shapes
# model at its 30 steps (its tuned defaults; gligen+refocus: the GLIGEN shapes model); ``--count`` recounts them
UPDATES = {
    ("refocus", ""): (49, 35),
    ("refocus", "it3"): (40, 29),
    ("refocus", "it4"): (43, 31),
    ("refocus", "t700"): (39, 25),
    ("layout-guidance", ""): (50, 30),
    ("layout-guidance", "t900"): (25, 10),
    ("layout-guidance", "it3"): (30, 18),
    ("layout-guidance", "it4"): (40, 24),
    ("layout-guidance", "t850"): (35, 20),
    ("attend-excite", ""): (85, 75),
    ("attend-excite", "t800"): (30, 25),
    ("attend-excite", "it3"): (31, 21),
    ("gligen+refocus", ""): (49, 35),
    ("gligen+refocus", "it3"): (40, 29),
    ("gligen+refocus", "t700"): (39, 25),
    ("gligen+refocus", "t700/it2"): (22, 14),
}

# (run of the option, its row folder, run of the default, the default's row folder, method, option)
COMPARISONS = [
    ("s0", "refocus_it3", "published", "refocus", "refocus", "it3"),
    ("s0", "refocus_it4", "published", "refocus", "refocus", "it4"),
    ("s0", "refocus_t700", "published", "refocus", "refocus", "t700"),
    ("s0", "layout-guidance_t900", "published", "layout-guidance", "layout-guidance", "t900"),
    ("s0", "layout-guidance_it3", "published", "layout-guidance", "layout-guidance", "it3"),
    ("s0", "layout-guidance_it4", "published", "layout-guidance", "layout-guidance", "it4"),
    ("s0", "layout-guidance_t850", "published", "layout-guidance", "layout-guidance", "t850"),
    ("s0", "attend-excite_t800", "s0", "attend-excite", "attend-excite", "t800"),
    ("s0", "attend-excite_it3", "s0", "attend-excite", "attend-excite", "it3"),
    ("g0", "gligen+refocus_it3", "g0", "gligen+refocus", "gligen+refocus", "it3"),
    ("g0", "gligen+refocus_t700", "g0", "gligen+refocus", "gligen+refocus", "t700"),
    ("g0", "gligen+refocus_t700_it2", "g0", "gligen+refocus", "gligen+refocus", "t700/it2"),
    ("s1", "refocus_it3", "s1", "refocus", "refocus", "it3"),
    ("s1", "refocus_t700", "s1", "refocus", "refocus", "t700"),
    ("s1", "layout-guidance_t900", "s1", "layout-guidance", "layout-guidance", "t900"),
    ("s1", "layout-guidance_it3", "s1", "layout-guidance", "layout-guidance", "it3"),
    ("s1", "attend-excite_t800", "s1", "attend-excite", "attend-excite", "t800"),
    ("s1", "layout-guidance_it4", "s1", "layout-guidance", "layout-guidance", "it4"),
    ("s1", "layout-guidance_t850", "s1", "layout-guidance", "layout-guidance", "t850"),
    ("g1", "gligen+refocus_t700", "g1", "gligen+refocus", "gligen+refocus", "t700"),
    ("g1", "gligen+refocus_t700_it2", "g1", "gligen+refocus", "gligen+refocus", "t700/it2"),
]
# the same option over both suites (seed 0's 200 entries and seed 1's 100, each against its own default)
POOLED = [
    ("refocus", "t700", [("s0", "refocus_t700", "published", "refocus"), ("s1", "refocus_t700", "s1", "refocus")]),
    (
        "layout-guidance",
        "it3",
        [
            ("s0", "layout-guidance_it3", "published", "layout-guidance"),
            ("s1", "layout-guidance_it3", "s1", "layout-guidance"),
        ],
    ),
    *(
        (
            "layout-guidance",
            option,
            [
                ("s0", f"layout-guidance_{option}", "published", "layout-guidance"),
                ("s1", f"layout-guidance_{option}", "s1", "layout-guidance"),
            ],
        )
        for option in ("it4", "t850")
    ),
    *(
        (
            "gligen+refocus",
            option,
            [
                ("g0", f"gligen+refocus_{option.replace('/', '_')}", "g0", "gligen+refocus"),
                ("g1", f"gligen+refocus_{option.replace('/', '_')}", "g1", "gligen+refocus"),
            ],
        )
        for option in ("t700", "t700/it2")
    ),
]
RUN_NAMES = {
    "published": "SD shapes, seed 0 (published run)",
    "s0": "SD shapes, seed 0",
    "g0": "GLIGEN shapes, seed 0",
    "s1": "SD shapes, seed 1",
    "g1": "GLIGEN shapes, seed 1",
}


def scan(root: Path, presets: Path | None) -> None:
    """Per-image scores and run settings of every results.json under ``root``, the published run and (``presets``)
    the tuned gligen+refocus row of the n=200 preset run."""
    rows, runs = [], {}
    # (run, row or None for the row's label, results.json, the labels taken from it)
    sources = [("published", None, PUBLISHED, {"refocus", "layout-guidance", "zestguide", "none"})]
    sources += [(p.parent.parent.name, p.parent.name, p, None) for p in sorted(root.glob("*/*/results.json"))]
    if presets is not None:
        sources.append(("g0", None, presets / "box-gligen-s0-n200" / "results.json", {"gligen+refocus"}))
    for run, folder, path, labels in sources:
        if not path.is_file():  # a run not finished yet
            continue
        data = json.loads(path.read_text())
        for label, images in data["images"].items():
            row = folder or label
            if labels is not None and label not in labels:
                continue
            for index, image in enumerate(images):
                rows.append([run, row, index] + [image[f] for f in FIELDS])
            aggregate = data["methods"][label]
            runs[f"{run}/{row}"] = {
                "command": data["config"].get("command"),
                "n": len(images),
                "seed": data["config"]["seed"],
                "object_in_box": aggregate["object_in_box"],
                "seconds_per_image": aggregate.get("seconds_per_image"),
            }
    with PER_IMAGE.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "row", "entry", *FIELDS])
        writer.writerows(rows)
    RUNS.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")


def load() -> dict[tuple[str, str], dict[int, float]]:
    scores: dict[tuple[str, str], dict[int, float]] = {}
    with PER_IMAGE.open() as handle:
        for line in csv.DictReader(handle):
            scores.setdefault((line["run"], line["row"]), {})[int(line["entry"])] = float(line["object_in_box"])
    return scores


def paired(option: dict[Any, float], default: dict[Any, float]) -> tuple[int, float, float, float, str]:
    entries = sorted(set(option) & set(default))
    diffs = [option[i] - default[i] for i in entries]
    n = len(diffs)
    rng = random.Random(0)
    draws = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(DRAWS))
    moved = f"{sum(d > 1e-6 for d in diffs)} / {sum(abs(d) <= 1e-6 for d in diffs)} / {sum(d < -1e-6 for d in diffs)}"
    return n, sum(diffs) / n, draws[int(0.025 * DRAWS)], draws[int(0.975 * DRAWS) - 1], moved


def predicted(method: str, option: str) -> str:
    if (method, option) not in UPDATES:
        return "-"
    updates = UPDATES[method, option][0]
    return f"{1 + updates * UPDATE_RATIO[method] / 50:.2f}x ({updates})"


def shipped_updates(method: str, option: str) -> str:
    return str(UPDATES[method, option][1]) if (method, option) in UPDATES else "-"


def table() -> str:
    scores = load()
    lines = [
        "| model, suite seed | method | option | predicted SD-1.5 time vs plain (updates / 50): default -> option | "
        "updates on the shipped model (/ 30 steps) | n | object-in-box: default | option | option minus default "
        "[95% CI] | entries up / same / down | within 0.02? |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run, row, base_run, base_row, method, option in COMPARISONS:
        if (run, row) not in scores or (base_run, base_row) not in scores:
            continue
        opt, base = scores[run, row], scores[base_run, base_row]
        n, mean, low, high, moved = paired(opt, base)
        entries = sorted(set(opt) & set(base))
        base_mean = sum(base[i] for i in entries) / n
        # the mean difference against the target; "by the interval" when its whole interval is within it too
        within = "no" if mean < -TOLERANCE else ("yes, by the interval" if low >= -TOLERANCE else "yes (mean)")
        lines.append(
            f"| {RUN_NAMES[run]} | {method} | {option} | {predicted(method, '')} -> {predicted(method, option)} | "
            f"{shipped_updates(method, '')} -> {shipped_updates(method, option)} | {n} | {base_mean:.3f} | "
            f"{base_mean + mean:.3f} | {mean:+.3f} [{low:+.3f}, {high:+.3f}] | {moved} | {within} |"
        )
    for method, option, pairs in POOLED:
        if any((r, w) not in scores or (br, bw) not in scores for r, w, br, bw in pairs):
            continue
        # entries of different suites are different layouts: key them by suite to pool
        opt = {(r, i): v for r, w, _, _ in pairs for i, v in scores[r, w].items()}
        base = {(r, i): scores[br, bw][i] for r, w, br, bw in pairs for i in scores[r, w]}
        n, mean, low, high, moved = paired(opt, base)
        base_mean = sum(base.values()) / n
        within = "no" if mean < -TOLERANCE else ("yes, by the interval" if low >= -TOLERANCE else "yes (mean)")
        model = "GLIGEN" if method.startswith("gligen") else "SD"
        lines.append(
            f"| {model} shapes, seeds 0 and 1 pooled | {method} | {option} | {predicted(method, '')} -> "
            f"{predicted(method, option)} | {shipped_updates(method, '')} -> {shipped_updates(method, option)} | "
            f"{n} | {base_mean:.3f} | {base_mean + mean:.3f} | {mean:+.3f} [{low:+.3f}, {high:+.3f}] | {moved} | "
            f"{within} |"
        )
    return "\n".join(lines) + "\n"


def count() -> None:
    """Recount UPDATES with the pipeline's own plans (SD-1.5 on the meta device; gligen+refocus on the tiny
    gated pipeline, whose family defaults are GLIGEN's: the plan depends on the steps, not the weights), and print
    the updates each configuration plans on the shipped shapes models at their 30 steps (upper bounds: early stop
    can end a step's updates sooner)."""
    import torch

    sys.path.insert(0, str(HERE.parents[2] / "benchmarks"))
    from cost_parts import schedule  # type: ignore[import-not-found]
    from overhead import BUDGETS  # type: ignore[import-not-found]

    from layoutguide.bench import shapes_suite
    from layoutguide.guidance import GuidanceBudget
    from layoutguide.loading import load_pipeline
    from layoutguide.testing import sd15_random_pipeline, sd_scheduler, tiny_pipeline

    with torch.device("meta"):
        sd = sd15_random_pipeline()
    gated = tiny_pipeline(gated=True)
    for pipe in (sd, gated):
        pipe.scheduler = sd_scheduler()
    shapes, shapes_gligen = load_pipeline("shapes", device="cpu"), load_pipeline("shapes-gligen", device="cpu")
    layouts = [s.layout() for s in shapes_suite(1, seed=5, n_objects=(2, 2))]
    for (method, option), listed in UPDATES.items():
        gligen = method.startswith("gligen")
        fields = {k: v for part in option.split("/") if part for k, v in BUDGETS[part].items()}
        budget = GuidanceBudget(**fields)
        updates = sum(schedule(gated if gligen else sd, method, 50, budget, layouts, 64))
        small = shapes_gligen if gligen else shapes
        plan = schedule(small, method, 30, budget, layouts, small.unet.config.sample_size)
        print(
            f"{method} {option or 'default'}: SD-1.5, 50 steps: {updates} updates; shipped model, 30 steps: "
            f"{sum(plan)} updates on {sum(u > 0 for u in plan)} steps (listed: {listed})"
        )


def main() -> None:
    if sys.argv[1:] == ["--count"]:
        count()
        return
    if sys.argv[1:]:
        scan(Path(sys.argv[1]), Path(sys.argv[2]) if sys.argv[2:] else None)
    print(table())


if __name__ == "__main__":
    main()
