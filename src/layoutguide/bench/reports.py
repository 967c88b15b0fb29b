"""The benchmarks' reports: markdown tables, ``report.md`` and the example grids (``grid.png``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ..layout import Layout
from ..viz import draw_layout, grid
from .files import png_bytes, write_bytes, write_text
from .runner import image_path

COLUMNS = [
    ("object_in_box", "object-in-box acc", "{:.3f}"),
    ("mean_iou", "mean IoU", "{:.3f}"),
    ("mean_mask_iou", "mean mask IoU", "{:.3f}"),
    ("colour_acc", "colour acc", "{:.3f}"),
    ("found_rate", "found (colour+shape)", "{:.3f}"),
    ("count_ok", "count acc", "{:.3f}"),
    ("miou_inside", "mIoU in masks", "{:.3f}"),
    ("miou_all", "mIoU all", "{:.3f}"),
    ("seconds_per_image", "s/image", "{:.3f}"),
    ("time_vs_none", "time vs none", "{:.2f}x"),
    ("peak_memory_mb", "peak mem (MB)", "{:.0f}"),
]
EXAMPLES = 8  # layouts shown in a report's grid.png

SHAPES_METRICS = (
    "Metrics (exact, from `layoutguide.shapes.evaluate`): *object-in-box* = share of regions with a detected "
    "object of the right colour and shape whose box IoU with the target is >= 0.5; *mean IoU* = mean box IoU "
    "of each region's matched right-colour-and-shape detection (0 if none); *colour acc* = share of regions "
    "matched one-to-one to a detection of their colour anywhere (textual grounding); *found* = same with "
    "colour and shape; *count acc* = share of images where every (colour, shape) group has exactly the "
    "layout's number of objects; *mIoU in masks* = ZestGuide's segmentation mIoU (classes = the layout's "
    "colour+shape kinds) counted only inside the conditioning masks, *mIoU all* over the whole image. s/image "
    "and peak memory are measured per method in this run."
)


def results_table(results: dict[str, Any]) -> str:
    """The shapes benchmark's rows as a markdown table, one column per metric."""
    head = "| method | " + " | ".join(c[1] for c in COLUMNS) + " |"
    rule = "|---" * (len(COLUMNS) + 1) + "|"
    rows = [head, rule]
    for label, summary in results["methods"].items():
        cells = []
        for key, _, fmt in COLUMNS:
            value = summary.get(key)
            cells.append("n/a" if value is None else fmt.format(value))
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def phrase_form_table(values: Mapping[str, Mapping[str, float]], forms: Sequence[str], metric: str) -> str:
    """One row per method, one column per phrase form: ``values[method label][form]``."""
    rows = [f"| method | {' | '.join(f'{metric}, {f}' for f in forms)} |", "|---" * (len(forms) + 1) + "|"]
    for label, per_form in values.items():
        cells = ["n/a" if per_form.get(f) is None else f"{per_form[f]:.3f}" for f in forms]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def phrase_form_lines(values: Mapping[str, Mapping[str, float]], forms: Sequence[str], metric: str) -> list[str]:
    """The report's phrase-form paragraph and table; nothing for a bare-form run (its report is as before)."""
    if tuple(forms) == ("bare",):
        return []
    return [
        f"Phrase forms: {', '.join(forms)} (each region's phrase rewritten with `layoutguide.phrase_forms`, e.g. "
        '"a red circle" for article; the prompt unchanged; same seeds for every form).',
        "",
        phrase_form_table(values, forms, metric),
        "",
    ]


def write_shapes_report(
    results: dict[str, Any],
    out: Path,
    layouts: list[Layout],
    folders: Mapping[str, Path],
    forms: Sequence[str] = ("bare",),
    per_form: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    """``report.md`` (table + how it was made) and ``grid.png`` (same seeds across methods, layouts drawn)."""
    cfg = results["config"]
    labels = list(folders)
    tiles, captions = [], []
    for k in range(min(EXAMPLES, len(layouts))):
        tiles.append(draw_layout(None, layouts[k], scale=2))
        captions.append(f"layout: {layouts[k].prompt}")
        for label in labels:
            with Image.open(image_path(folders[label], k)) as image:
                tiles.append(draw_layout(image.convert("RGB"), layouts[k], scale=2, labels=False))
            score = results["images"][label][k]
            captions.append(f"{label}: in-box {score['object_in_box']:.2f}")
    write_bytes(out / "grid.png", png_bytes(grid(tiles, columns=len(labels) + 1, captions=captions)))
    kind = "exact masks" if cfg["use_masks"] else "boxes"
    lines = [
        "# Shapes-world benchmark",
        "",
        f"{cfg['n']} layouts (suite seed {cfg['seed']}, 1-{cfg['max_objects']} objects, {kind}, scenes never used "
        f"in training), one image each, same initial noise for every method; device {cfg['device']}.",
        "",
        results_table(results),
        "",
        *phrase_form_lines(per_form or {}, forms, "object-in-box"),
        SHAPES_METRICS,
        "",
        "![examples](grid.png)",
        "",
    ]
    if cfg.get("command"):
        lines += ["Reproduce:", "", "```", cfg["command"], "```", ""]
    write_text(out / "report.md", "\n".join(lines))


RELATION_HEAD = (
    "| planner + method | relation acc | count acc | colour acc | planned layouts satisfy the relation "
    "| failed: objects | failed: attributes | failed: placement | attributes: colours wrong "
    "| attributes: shapes wrong |"
)
RELATION_LEGEND = (
    "Each failed prompt is counted once, under its first cause: *objects*, the image has more or fewer objects than "
    "the layout; *attributes*, the right number but not the layout's colours and shapes (a colour on the wrong "
    "object, a triangle drawn as a square); *placement*, the right objects in places that break the relation. "
    "Relation acc plus the three failure shares is 1. The last two columns split the attributes failures: the "
    "image's colours (or shapes), counted without their objects, differ from the layout's; a prompt can be in both, "
    "and a colour swapped between two objects counts in both."
)


def relation_table(rows: Mapping[str, dict[str, Any]], failures: Sequence[str]) -> str:
    table = [RELATION_HEAD, "|---|---|---|---|---|---|---|---|---|---|"]
    for label, r in rows.items():
        split = " | ".join(f"{r['failures'][f]:.3f}" for f in failures)
        wrong = " | ".join(f"{r['attributes_wrong'][a]:.3f}" for a in ("colour", "shape"))
        table.append(
            f"| {label} | {r['relation_acc']:.3f} | {r['count_acc']:.3f} | {r['colour_acc']:.3f} "
            f"| {r['layout_relation_acc']:.3f} | {split} | {wrong} |"
        )
    return "\n".join(table)


def write_relation_report(
    out: Path,
    results: dict[str, Any],
    table: str,
    first_prompt: str,
    forms: Sequence[str] = ("bare",),
    per_form: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    cfg, chance, command = results["config"], results["chance"], results["config"].get("command")
    baseline = (
        f"By chance, the relation holds for {chance:.3f}: each prompt's objects, the right ones, placed at random as "
        "the shapes world places them (200 placements per prompt). An unguided model scores that times its rate of "
        "drawing the right objects."
    )
    lines = [
        "# Relation benchmark (shapes world)",
        "",
        f'{cfg["n"]} prompts such as "{first_prompt}" (seed {cfg["seed"]}); planner -> layout -> generation -> exact '
        "evaluator. Relation accuracy requires every subject instance to stand in the relation to every object "
        "instance (box centres).",
        "",
        table,
        "",
        *phrase_form_lines(per_form or {}, forms, "relation acc"),
        RELATION_LEGEND,
        "",
        baseline,
        "",
        "![the first prompts, every method, planned boxes drawn](grid.png)",
        "",
    ]
    if command:
        lines += ["Reproduce:", "", "```", command, "```", ""]
    write_text(out / "report.md", "\n".join(lines))
