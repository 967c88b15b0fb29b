"""Benchmarks on the shapes world: a fixed seeded suite of layouts, every method on the same seeds, the exact
evaluator, one report.

    layoutguide bench shapes --methods none,refocus --n 200 --seed 0 --out bench-out/shapes

Writes ``OUT/images/METHOD/NNNN.png`` (one file per scene, written atomically), ``OUT/results.json`` (per
image scores, per method aggregates, timings), ``OUT/report.md`` and ``OUT/grid.png``. A rerun with the
same arguments skips the images already there (resume after an interruption); timings of earlier runs are
kept in ``OUT/timings.jsonl``. ``OUT/run.json`` records what made the images (model fingerprint and defaults, suite,
sampling settings, each method's options): resuming into a folder made with other settings is refused, so
a report never mixes images of two models or two step sizes. Seconds per image and peak memory are measured per method in the same run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from .errors import LayoutguideError
from .layout import Layout, atomic_write_bytes, atomic_write_text
from .shapes.evaluate import aggregate, evaluate
from .shapes.world import BENCH_SEED_OFFSET, Scene, make_scene
from .spec import MethodSpec, option_value, split_methods  # noqa: F401  (re-exported: the bench's entries)
from .viz import draw_layout, grid

SUITE_STRIDE = 100_000  # suites for different --seed values never share scenes


def shapes_suite(
    n: int, seed: int = 0, *, n_objects: tuple[int, int] = (1, 4), with_relation: bool = False
) -> list[Scene]:
    """``n`` scenes from seeds training never saw; the same (n, seed) always gives the same suite."""
    base = BENCH_SEED_OFFSET + seed * SUITE_STRIDE
    return [make_scene(base + k, n_objects=n_objects, with_relation=with_relation) for k in range(n)]


def _release_free_memory() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``), so that RSS growth measures new allocations."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measurement is then an underestimate after heavier methods
        pass


class PeakMemory:
    """Peak memory during a block: CUDA's allocator peak, or on CPU the resident-set peak above the start
    (sampled every 20 ms, after returning freed heap pages to the OS)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes = 0

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # not Linux: fall back to the process high-water mark
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            _release_free_memory()  # otherwise memory freed by the previous method hides this one's growth
            self._start = self._rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.02):
            self.peak_bytes = max(self.peak_bytes, self._rss() - self._start)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._start
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, self._rss() - self._start)
        return False


class BenchResumeError(LayoutguideError, ValueError):
    """The output folder holds images made with other settings."""


def model_fingerprint(pipe) -> str:
    """A short hash of the pipeline's weights (the first values of every tensor) and its per-model defaults."""
    digest = hashlib.sha256(json.dumps(getattr(pipe, "model_defaults", {}), sort_keys=True).encode())
    for name in ("unet", "text_encoder", "vae"):
        module = getattr(pipe, name, None)
        for key, tensor in module.state_dict().items() if module is not None else ():
            digest.update(key.encode())
            digest.update(tensor.detach().flatten()[:64].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def check_resume(out: Path, settings: dict[str, Any], methods: dict[str, Any]) -> None:
    """Record the run's settings in ``out/run.json``, or refuse to resume a run made with other settings."""
    path = out / "run.json"
    record = json.loads(path.read_text()) if path.exists() else {"settings": settings, "methods": {}}
    for key, value in settings.items():
        if key in record["settings"] and record["settings"][key] != value:
            raise BenchResumeError(
                f"{out} holds a benchmark run with {key}={record['settings'][key]!r}, this one has {key}={value!r}; "
                "pass another --out, or delete the folder to start over"
            )
        record["settings"].setdefault(key, value)  # a planner added to a run: its layouts are recorded too
    for label, options in methods.items():
        if label in record["methods"] and record["methods"][label] != options:
            raise BenchResumeError(
                f"{out} holds images of method {label!r} made with options {record['methods'][label]}, this run asks for "
                f"{options}; pass another --out, or delete {out / 'images'} to start over"
            )
        record["methods"][label] = options
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def run_shapes_bench(
    pipe,
    methods: Sequence[MethodSpec],
    *,
    n: int = 200,
    seed: int = 0,
    out: str | Path = "bench-out/shapes",
    steps: int | None = None,
    guidance_scale: float | None = None,
    batch_size: int = 8,
    use_masks: bool = False,
    max_objects: int = 4,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Generate, evaluate and report. Returns the results dictionary written to ``results.json``."""
    out = Path(out)
    scenes = shapes_suite(n, seed, n_objects=(1, max_objects))
    layouts = [s.layout(with_masks=use_masks) for s in scenes]
    timings_file = out / "timings.jsonl"
    timings: dict[tuple[str, int], float] = {}
    if timings_file.exists():
        for line in timings_file.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                timings[(rec["method"], rec["index"])] = rec["seconds"]
    device = pipe._execution_device
    settings = {
        "model": model_fingerprint(pipe),
        "n": n,
        "seed": seed,
        "steps": steps,
        "guidance_scale": guidance_scale,
        "use_masks": use_masks,
        "max_objects": max_objects,
    }
    check_resume(out, settings, {m.label: {"method": m.method, "options": m.options} for m in methods})
    pipe.set_progress_bar_config(disable=True)
    memory: dict[str, int] = {}
    for spec in methods:
        folder = out / "images" / spec.label
        todo = [k for k in range(n) if not (folder / f"{k:04d}.png").exists()]
        bar = tqdm(total=n, initial=n - len(todo), desc=spec.label, disable=not progress)
        with PeakMemory(device) as peak:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                t0 = time.perf_counter()
                result = pipe(
                    layout=[layouts[k] for k in chunk],
                    method=spec.method,
                    method_options=spec.options,
                    num_inference_steps=steps,
                    guidance_scale=guidance_scale,
                    seed=[seed * SUITE_STRIDE + k for k in chunk],
                    progress=False,
                )
                seconds = (time.perf_counter() - t0) / len(chunk)
                for k, image in zip(chunk, result.images):
                    atomic_write_bytes(folder / f"{k:04d}.png", _png_bytes(image))
                    timings[(spec.label, k)] = seconds
                    with open(timings_file, "a") as f:
                        f.write(json.dumps({"method": spec.label, "index": k, "seconds": seconds}) + "\n")
                bar.update(len(chunk))
        bar.close()
        if todo:
            memory[spec.label] = peak.peak_bytes

    # Evaluate every image (cheap, exact) and aggregate.
    previous = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    results: dict[str, Any] = {
        "config": {
            "n": n,
            "seed": seed,
            "steps": steps,
            "guidance_scale": guidance_scale,
            "use_masks": use_masks,
            "max_objects": max_objects,
            "methods": [dataclasses.asdict(m) for m in methods],
            "device": str(device),
            "command": command,
        },
        "methods": {},
        "images": {},
    }
    for spec in methods:
        folder = out / "images" / spec.label
        scores = [evaluate(Image.open(folder / f"{k:04d}.png").convert("RGB"), layouts[k]) for k in range(n)]
        summary = aggregate(scores)
        secs = [timings[(spec.label, k)] for k in range(n) if (spec.label, k) in timings]
        summary["seconds_per_image"] = sum(secs) / len(secs) if secs else float("nan")
        old_peak = previous.get("methods", {}).get(spec.label, {}).get("peak_memory_mb")
        summary["peak_memory_mb"] = memory[spec.label] / 2**20 if spec.label in memory else old_peak
        results["methods"][spec.label] = summary
        results["images"][spec.label] = [s.to_dict() for s in scores]
    base = results["methods"].get("none")
    for label, summary in results["methods"].items():
        summary["time_vs_none"] = (
            summary["seconds_per_image"] / base["seconds_per_image"] if base and base["seconds_per_image"] else None
        )
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    write_report(results, out, scenes, layouts, [m.label for m in methods])
    return results


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


def results_table(results: dict[str, Any]) -> str:
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


def write_report(
    results: dict[str, Any],
    out: Path,
    scenes: list[Scene],
    layouts: list[Layout],
    labels: list[str],
    examples: int = 8,
) -> None:
    """``report.md`` (table + how it was made) and ``grid.png`` (same seeds across methods, layouts drawn)."""
    cfg = results["config"]
    tiles, captions = [], []
    for k in range(min(examples, len(scenes))):
        tiles.append(draw_layout(None, layouts[k], scale=2))
        captions.append(f"layout: {layouts[k].prompt}")
        for label in labels:
            image = Image.open(out / "images" / label / f"{k:04d}.png").convert("RGB")
            tiles.append(draw_layout(image, layouts[k], scale=2, labels=False))
            score = results["images"][label][k]
            captions.append(f"{label}: in-box {score['object_in_box']:.2f}")
    atomic_write_bytes(out / "grid.png", _png_bytes(grid(tiles, columns=len(labels) + 1, captions=captions)))
    lines = [
        "# Shapes-world benchmark",
        "",
        f"{cfg['n']} layouts (suite seed {cfg['seed']}, 1-{cfg['max_objects']} objects, {'exact masks' if cfg['use_masks'] else 'boxes'}, scenes never used in training), one image each, "
        f"same initial noise for every method; device {cfg['device']}.",
        "",
        results_table(results),
        "",
        "Metrics (exact, from `layoutguide.shapes.evaluate`): *object-in-box* = share of regions with a detected object of "
        "the right colour and shape whose box IoU with the target is >= 0.5; *mean IoU* = mean box IoU of each region's "
        "matched right-colour-and-shape detection (0 if none); *colour acc* = share of regions matched one-to-one to a "
        "detection of their colour anywhere (textual grounding); *found* = same with colour and shape; *count acc* = share "
        "of images where every (colour, shape) group has exactly the layout's number of objects; *mIoU in masks* = ZestGuide's "
        "segmentation mIoU (classes = the layout's colour+shape kinds) counted only inside the conditioning masks, *mIoU all* "
        "over the whole image. s/image and peak memory "
        "are measured per method in this run.",
        "",
        "![examples](grid.png)",
        "",
    ]
    if cfg.get("command"):
        lines += ["Reproduce:", "", "```", cfg["command"], "```", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))


# --------------------------------------------------------------------------------------------- relations
RELATION_PHRASES = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}


def relation_prompts(n: int, seed: int = 0) -> list[tuple[str, tuple[str, str, int], str, tuple[str, str, int]]]:
    """``n`` seeded prompts "two green triangles to the left of a blue square": (prompt, subject, relation, object),
    subject/object as (colour, shape, count). Counts 1-2; the two kinds always differ."""
    import random

    from .shapes.world import COLOURS, NUMBER_WORDS, PLURALS, RELATIONS, SHAPES

    rng = random.Random(BENCH_SEED_OFFSET + seed * SUITE_STRIDE + 7)
    out = []
    for _ in range(n):
        a = (rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice((1, 1, 2)))
        while True:
            b = (rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice((1, 1, 2)))
            if b[:2] != a[:2]:
                break
        relation = rng.choice(RELATIONS)
        words = lambda k: f"{NUMBER_WORDS[k[2]]} {k[0]} {PLURALS[k[1]] if k[2] > 1 else k[1]}"
        out.append((f"{words(a)} {RELATION_PHRASES[relation]} {words(b)}", a, relation, b))
    return out


RELATION_FAILURES = ("objects", "attributes", "placement")
RELATION_EXAMPLES = 8  # prompts shown in the report's grid.png
EXAMPLE_TILE = (192, 192)  # pixels per tile: planned layouts are on a 512 canvas, the shapes model draws 64


def _box_centre(box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def chance_relation_rate(items: Sequence[tuple], *, trials: int = 200, seed: int = 0) -> float:
    """How often the relation holds by chance: each prompt's objects (the right kinds and counts) placed at random
    as the shapes world places them (sizes from ``SIZE_RANGES``, never touching), every subject/object pair checked
    as the evaluator checks it (box centres); the mean over prompts of the share of ``trials`` placements that pass.
    What an image with the right objects and no sense of the relation scores."""
    import random

    from .shapes.world import IMAGE_SIZE, SIZE_RANGES, _place, relation_holds

    rng = random.Random(seed)
    rates = []
    for _, subject, relation, obj in items:
        hits = placed = 0
        while placed < trials:
            sizes = [rng.randint(*SIZE_RANGES[rng.choice(list(SIZE_RANGES))]) for _ in range(subject[2] + obj[2])]
            boxes = _place(rng, sizes, IMAGE_SIZE)
            if boxes is None:  # no room for this draw: the world draws again too
                continue
            placed += 1
            hits += all(
                relation_holds(_box_centre(a), relation, _box_centre(b))
                for a in boxes[: subject[2]]
                for b in boxes[subject[2] :]
            )
        rates.append(hits / trials)
    return sum(rates) / len(rates)


def _relation_ok(image, layout: Layout, subject: tuple, relation: str, obj: tuple) -> dict[str, Any]:
    """Score a planned generation: every subject instance must stand in ``relation`` to every object instance.

    ``failure`` says why a relation failed, first cause first: ``objects`` (the image has more or fewer objects
    than the layout), ``attributes`` (the right number, but not the layout's colours and shapes: a colour bound
    to the wrong object, a triangle drawn as a square), ``placement`` (the right objects, in the wrong places);
    None when the relation holds. For an attributes failure, ``wrong`` says which of the image's colours and shapes,
    counted without their objects, differ from the layout's: ``("colour",)``, ``("shape",)`` or both.
    """
    from .shapes.evaluate import detect
    from .shapes.world import parse_phrase

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
    wrong = ()
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


def run_relation_bench(
    pipe,
    planners: Sequence[str],
    methods: Sequence[MethodSpec],
    *,
    n: int = 100,
    seed: int = 0,
    out: str | Path = "bench-out/relations",
    batch_size: int = 8,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Prompt with a relation -> planner -> layout -> generation -> evaluator: relation, count and colour accuracy."""
    from .planner import get_planner

    out = Path(out)
    items = relation_prompts(n, seed)
    methods_run = {f"{p} + {m.label}": {"method": m.method, "options": m.options} for p in planners for m in methods}
    planned = {name: [get_planner(name).plan(prompt).layout for prompt, *_ in items] for name in planners}
    # images are kept per planner and method: a planner that now places other boxes must not reuse them
    digests = {
        f"layouts[{name}]": hashlib.sha256(json.dumps([l.to_dict() for l in ls], sort_keys=True).encode()).hexdigest()[
            :16
        ]
        for name, ls in planned.items()
    }
    check_resume(out, {"model": model_fingerprint(pipe), "n": n, "seed": seed, **digests}, methods_run)
    pipe.set_progress_bar_config(disable=True)
    rows: dict[str, dict[str, Any]] = {}
    examples: dict[
        str, list[tuple[Image.Image, str]]
    ] = {}  # label -> (image with its layout drawn, verdict) per example prompt
    for planner_name in planners:
        layouts = planned[planner_name]
        layout_ok = [_all_nonempty(_layout_relation(l, s, r, o)) for l, (_, s, r, o) in zip(layouts, items)]
        for spec in methods:
            label = f"{planner_name} + {spec.label}"
            folder = out / "images" / planner_name / spec.label
            todo = [k for k in range(n) if not (folder / f"{k:04d}.png").exists()]
            for start in tqdm(range(0, len(todo), batch_size), desc=label, disable=not progress):
                chunk = todo[start : start + batch_size]
                result = pipe(
                    layout=[layouts[k] for k in chunk],
                    method=spec.method,
                    method_options=spec.options,
                    seed=[seed * SUITE_STRIDE + k for k in chunk],
                    progress=False,
                )
                for k, image in zip(chunk, result.images):
                    atomic_write_bytes(folder / f"{k:04d}.png", _png_bytes(image))
            images = [Image.open(folder / f"{k:04d}.png").convert("RGB") for k in range(n)]
            scores = [
                _relation_ok(image, layouts[k], s, r, o) for k, (image, (_, s, r, o)) in enumerate(zip(images, items))
            ]
            examples[label] = [
                (
                    draw_layout(image.resize(EXAMPLE_TILE, Image.NEAREST), layouts[k], labels=False),
                    "ok" if x["relation_ok"] else f"failed: {x['failure']}",
                )
                for k, (image, x) in enumerate(zip(images[:RELATION_EXAMPLES], scores))
            ]
            rows[label] = {
                "relation_acc": sum(x["relation_ok"] for x in scores) / n,
                "count_acc": sum(x["count_ok"] for x in scores) / n,
                "colour_acc": sum(x["colour_acc"] for x in scores) / n,
                "layout_relation_acc": sum(layout_ok) / n,
                "failures": {f: sum(x["failure"] == f for x in scores) / n for f in RELATION_FAILURES},
                "attributes_wrong": {a: sum(a in x["wrong"] for x in scores) / n for a in ("colour", "shape")},
            }
    chance = chance_relation_rate(items, seed=seed)
    tiles, captions = [], []
    for k in range(min(n, RELATION_EXAMPLES)):
        tiles.append(draw_layout(Image.new("RGB", EXAMPLE_TILE, "white"), planned[planners[0]][k]))
        captions.append(f"{planners[0]} layout: {items[k][0]}")
        for label, shown in examples.items():
            tiles.append(shown[k][0])
            captions.append(f"{shown[k][1]}: {label}")  # the verdict first: long labels wrap
    atomic_write_bytes(out / "grid.png", _png_bytes(grid(tiles, columns=len(examples) + 1, captions=captions)))
    results = {
        "config": {
            "n": n,
            "seed": seed,
            "planners": list(planners),
            "methods": [m.label for m in methods],
            "command": command,
        },
        "rows": rows,
        "chance": chance,
        "prompts": [p for p, *_ in items],
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    table = [
        "| planner + method | relation acc | count acc | colour acc | planned layouts satisfy the relation | failed: objects | failed: attributes | failed: placement | attributes: colours wrong | attributes: shapes wrong |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        split = " | ".join(f"{r['failures'][f]:.3f}" for f in RELATION_FAILURES)
        wrong = " | ".join(f"{r['attributes_wrong'][a]:.3f}" for a in ("colour", "shape"))
        table.append(
            f"| {label} | {r['relation_acc']:.3f} | {r['count_acc']:.3f} | {r['colour_acc']:.3f} | {r['layout_relation_acc']:.3f} | {split} | {wrong} |"
        )
    legend = (
        "Each failed prompt is counted once, under its first cause: *objects*, the image has more or fewer objects than the layout; "
        "*attributes*, the right number but not the layout's colours and shapes (a colour on the wrong object, a triangle drawn as a square); "
        "*placement*, the right objects in places that break the relation. Relation acc plus the three failure shares is 1. "
        "The last two columns split the attributes failures: the image's colours (or shapes), counted without their objects, differ "
        "from the layout's; a prompt can be in both, and a colour swapped between two objects counts in both."
    )
    baseline = (
        f"By chance, the relation holds for {chance:.3f}: each prompt's objects, the right ones, placed at random as the shapes "
        "world places them (200 placements per prompt). An unguided model scores that times its rate of drawing the right objects."
    )
    text = "\n".join(
        [
            "# Relation benchmark (shapes world)",
            "",
            f'{n} prompts such as "{items[0][0]}" (seed {seed}); planner -> layout -> generation -> exact evaluator. Relation accuracy requires every subject instance to stand in the relation to every object instance (box centres).',
            "",
            *table,
            "",
            legend,
            "",
            baseline,
            "",
            "![the first prompts, every method, planned boxes drawn](grid.png)",
            "",
        ]
        + (["Reproduce:", "", "```", command, "```", ""] if command else [])
    )
    atomic_write_text(out / "report.md", text)
    results["table"] = "\n".join(table)
    return results


def _all_nonempty(values) -> bool:
    values = list(values)
    return bool(values) and all(values)


def _layout_relation(layout: Layout, subject: tuple, relation: str, obj: tuple):
    """Whether the planned boxes themselves satisfy the relation, per (subject, object) instance pair."""
    from .shapes.world import parse_phrase, relation_holds

    kinds = []
    for r in layout.regions:
        try:
            kinds.append(parse_phrase(r.phrase))
        except ValueError:
            kinds.append(None)
    for i, ki in enumerate(kinds):
        for j, kj in enumerate(kinds):
            if ki == subject[:2] and kj == obj[:2]:
                yield relation_holds(
                    _box_centre(layout.regions[i].bbox), relation, _box_centre(layout.regions[j].bbox)
                )


# --------------------------------------------------------------------------------------------- competence
def run_competence(
    pipe, *, n: int = 200, seed: int = 0, out: str | Path | None = None, batch_size: int = 16, progress: bool = True
) -> dict[str, Any]:
    """Unguided competence of a shapes model on held-out prompts: single-object prompts with the right colour and
    shape, two-object prompts with both colours (and both colour+shape) present."""
    results: dict[str, Any] = {"n": n, "seed": seed}
    pipe.set_progress_bar_config(disable=True)
    for k in (1, 2):
        scenes = shapes_suite(n, seed + 50 + k, n_objects=(k, k))
        layouts = [s.layout() for s in scenes]
        scores = []
        for start in tqdm(range(0, n, batch_size), desc=f"{k}-object prompts", disable=not progress):
            chunk = list(range(start, min(n, start + batch_size)))
            result = pipe(
                prompt=[layouts[i].prompt for i in chunk],
                seed=[seed * SUITE_STRIDE + i for i in chunk],
                progress=False,
            )
            for i, image in zip(chunk, result.images):
                if out is not None:
                    atomic_write_bytes(Path(out) / f"{k}obj" / f"{i:04d}.png", _png_bytes(image))
                scores.append(evaluate(image, layouts[i]))
        results[f"{k}obj_all_found"] = (
            sum(s.found_rate == 1.0 for s in scores) / n
        )  # every object, right colour and shape
        results[f"{k}obj_all_colours"] = sum(s.colour_acc == 1.0 for s in scores) / n
        results[f"{k}obj_count_ok"] = sum(s.count_ok for s in scores) / n
        results[f"{k}obj_background_tint"] = sum(s.background_tint for s in scores) / n
    if out is not None:
        atomic_write_text(Path(out) / "competence.json", json.dumps(results, indent=1) + "\n")
    return results
