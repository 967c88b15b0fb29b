"""Relation benchmark: prompt with a relation -> planner -> layout -> generation -> exact evaluator.

    layoutguide bench relations --planners rule --methods none,refocus --n 48 --out bench-out/relations

Images go to ``OUT/images/PLANNER/METHOD/NNNN.png`` (phrase forms other than bare: ``OUT/images/PLANNER/FORM/
METHOD``); ``results.json``, ``report.md`` and ``grid.png`` beside them. Resumes as the shapes benchmark does; the
planned layouts enter ``run.json``, so a planner that now places other boxes is not scored against old images.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import InputError
from ..layout import Layout
from ..planner import get_planner
from ..shapes.evaluate import detect, evaluate
from ..shapes.world import IMAGE_SIZE, SIZE_RANGES, parse_phrase, place_boxes, relation_holds
from ..spec import MethodSpec
from ..viz import draw_layout, grid
from .files import Report, png_bytes, write_bytes, write_json
from .reports import relation_table, write_relation_report
from .resume import check_resume, model_fingerprint
from .runner import generate, load_images
from .shapes_bench import check_methods, method_record, row_folder, row_label
from .suites import RelationItem, check_count, check_phrase_forms, relation_prompts, relation_suite

RELATION_FAILURES = ("objects", "attributes", "placement")
RELATION_EXAMPLES = 8  # prompts shown in the report's grid.png
EXAMPLE_TILE = (192, 192)  # pixels per tile: planned layouts are on a 512 canvas, the shapes model draws 64


def box_centre(box: Sequence[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def chance_relation_rate(items: Sequence[RelationItem], *, trials: int = 200, seed: int = 0) -> float:
    """How often the relation holds by chance: each prompt's objects (the right kinds and counts) placed at random
    as the shapes world places them (sizes from ``SIZE_RANGES``, never touching), every subject/object pair checked
    as the evaluator checks it (box centres); the mean over prompts of the share of ``trials`` placements that pass.
    What an image with the right objects and no sense of the relation scores."""
    rng = random.Random(seed)
    rates = []
    for _, subject, relation, obj in items:
        hits = placed = 0
        while placed < trials:
            sizes = [rng.randint(*SIZE_RANGES[rng.choice(list(SIZE_RANGES))]) for _ in range(subject[2] + obj[2])]
            boxes = place_boxes(rng, sizes, IMAGE_SIZE)
            if boxes is None:  # no room for this draw: the world draws again too
                continue
            placed += 1
            hits += all(
                relation_holds(box_centre(a), relation, box_centre(b))
                for a in boxes[: subject[2]]
                for b in boxes[subject[2] :]
            )
        rates.append(hits / trials)
    return sum(rates) / len(rates)


def relation_score(image: Image.Image, layout: Layout, subject: tuple, relation: str, obj: tuple) -> dict[str, Any]:
    """Score a planned generation: every subject instance must stand in ``relation`` to every object instance.

    ``failure`` says why a relation failed, first cause first: ``objects`` (the image has more or fewer objects
    than the layout), ``attributes`` (the right number, but not the layout's colours and shapes: a colour bound
    to the wrong object, a triangle drawn as a square), ``placement`` (the right objects, in the wrong places);
    None when the relation holds. For an attributes failure, ``wrong`` says which of the image's colours and shapes,
    counted without their objects, differ from the layout's: ``("colour",)``, ``("shape",)`` or both.
    """
    detections = detect(image)
    kinds = [parse_phrase(r.phrase) for r in layout.regions]
    subj = [i for i, k in enumerate(kinds) if k == subject[:2]]
    objs = [i for i, k in enumerate(kinds) if k == obj[:2]]
    if not subj or not objs:
        return {
            "relation_ok": False,
            "count_ok": False,
            "colour_acc": 0.0,
            "planned": False,
            "failure": "objects",
            "wrong": (),
        }
    pairs = [evaluate(image, layout, (s, relation, o), detections=detections) for s in subj for o in objs]
    first = pairs[0]
    ok = all(p.relation_ok for p in pairs)
    drawn = [(d.colour, d.shape) for d in detections]
    if ok:
        failure = None
    elif len(drawn) != len(kinds):
        failure = "objects"
    elif sorted(drawn) != sorted(kinds):
        failure = "attributes"
    else:
        failure = "placement"
    wrong: tuple[str, ...] = ()
    if failure == "attributes":  # a swap of colours between objects has the right colours and shapes: both listed then
        wrong = tuple(
            a for i, a in enumerate(("colour", "shape")) if sorted(k[i] for k in kinds) != sorted(k[i] for k in drawn)
        ) or ("colour", "shape")
    return {
        "relation_ok": ok,
        "count_ok": first.count_ok,
        "colour_acc": first.colour_acc,
        "object_in_box": first.object_in_box,
        "planned": True,
        "failure": failure,
        "wrong": wrong,
    }


def layout_relation(layout: Layout, subject: tuple, relation: str, obj: tuple) -> Iterator[bool]:
    """Whether the planned boxes themselves satisfy the relation, per (subject, object) instance pair."""
    kinds: list[tuple[str, str] | None] = []
    for r in layout.regions:
        try:
            kinds.append(parse_phrase(r.phrase))
        except ValueError:
            kinds.append(None)
    for i, ki in enumerate(kinds):
        for j, kj in enumerate(kinds):
            if ki == subject[:2] and kj == obj[:2]:
                yield relation_holds(box_centre(layout.regions[i].bbox), relation, box_centre(layout.regions[j].bbox))


def _all_true(values: Iterator[bool]) -> bool:
    listed = list(values)
    return bool(listed) and all(listed)


def _row(scores: list[dict[str, Any]], layout_ok: list[bool], n: int) -> dict[str, Any]:
    return {
        "relation_acc": sum(x["relation_ok"] for x in scores) / n,
        "count_acc": sum(x["count_ok"] for x in scores) / n,
        "colour_acc": sum(x["colour_acc"] for x in scores) / n,
        "layout_relation_acc": sum(layout_ok) / n,
        "failures": {f: sum(x["failure"] == f for x in scores) / n for f in RELATION_FAILURES},
        "attributes_wrong": {a: sum(a in x["wrong"] for x in scores) / n for a in ("colour", "shape")},
    }


def _layouts_digest(layouts: list[Layout]) -> str:
    return hashlib.sha256(json.dumps([x.to_dict() for x in layouts], sort_keys=True).encode()).hexdigest()[:16]


def run_relation_bench(
    pipe: Any,
    planners: Sequence[str],
    methods: Sequence[MethodSpec],
    *,
    n: int = 100,
    seed: int = 0,
    out: str | Path = "bench-out/relations",
    batch_size: int = 8,
    phrase_forms: Sequence[str] = ("bare",),
    progress: bool = True,
    command: str | None = None,
    report: Report = print,
) -> dict[str, Any]:
    """Prompt with a relation -> planner -> layout -> generation -> evaluator: relation, count and colour accuracy."""
    out = Path(out)
    check_methods(methods)
    check_count("n", n)
    check_count("batch_size", batch_size)
    forms = check_phrase_forms(list(phrase_forms))
    if not planners:
        raise InputError("planners: no planner given; name at least one, e.g. rule")
    items = relation_prompts(n, seed)
    planned = {name: [get_planner(name).plan(prompt).layout for prompt, *_ in items] for name in planners}
    records = {
        row_label(f"{p} + {m.label}", form): method_record(m, form)
        for form in forms
        for p in planners
        for m in methods
    }
    # images are kept per planner and method: a planner that now places other boxes must not reuse them
    digests = {f"layouts[{name}]": _layouts_digest(layouts) for name, layouts in planned.items()}
    check_resume(out, {"model": model_fingerprint(pipe), "n": n, "seed": seed, **digests}, records, report=report)
    rows: dict[str, dict[str, Any]] = {}
    per_form: dict[str, dict[str, float]] = {}
    examples: dict[str, list[tuple[Image.Image, str]]] = {}  # label -> (image with its layout drawn, verdict)
    for planner_name in planners:
        layouts = planned[planner_name]
        suite = relation_suite(layouts, seed)
        layout_ok = [_all_true(layout_relation(lay, s, r, o)) for lay, (_, s, r, o) in zip(layouts, items)]
        for form in forms:
            for spec in methods:
                label = row_label(f"{planner_name} + {spec.label}", form)
                folder = row_folder(out / "images" / planner_name, spec.label, form)
                generate(
                    pipe,
                    suite.in_form(form),
                    spec,
                    folder,
                    batch_size=batch_size,
                    progress=progress,
                    desc=label,
                    report=report,
                )
                images = load_images(folder, n)
                scores = [relation_score(im, layouts[k], *item[1:]) for k, (im, item) in enumerate(zip(images, items))]
                examples[label] = [
                    (
                        draw_layout(image.resize(EXAMPLE_TILE, Image.Resampling.NEAREST), layouts[k], labels=False),
                        "ok" if x["relation_ok"] else f"failed: {x['failure']}",
                    )
                    for k, (image, x) in enumerate(zip(images[:RELATION_EXAMPLES], scores))
                ]
                rows[label] = _row(scores, layout_ok, n)
                per_form.setdefault(f"{planner_name} + {spec.label}", {})[form] = rows[label]["relation_acc"]
    chance = chance_relation_rate(items, seed=seed)
    tiles, captions = [], []
    for k in range(min(n, RELATION_EXAMPLES)):
        tiles.append(draw_layout(Image.new("RGB", EXAMPLE_TILE, "white"), planned[planners[0]][k]))
        captions.append(f"{planners[0]} layout: {items[k][0]}")
        for label, shown in examples.items():
            tiles.append(shown[k][0])
            captions.append(f"{shown[k][1]}: {label}")  # the verdict first: long labels wrap
    write_bytes(out / "grid.png", png_bytes(grid(tiles, columns=len(examples) + 1, captions=captions)))
    config: dict[str, Any] = {
        "n": n,
        "seed": seed,
        "planners": list(planners),
        "methods": [m.label for m in methods],
        "command": command,
    }
    if forms != ("bare",):
        config["phrase_forms"] = list(forms)
    results: dict[str, Any] = {"config": config, "rows": rows, "chance": chance, "prompts": [p for p, *_ in items]}
    write_json(out / "results.json", results)
    table = relation_table(rows, RELATION_FAILURES)
    write_relation_report(out, results, table, items[0][0], forms, per_form)
    results["table"] = table
    return results
