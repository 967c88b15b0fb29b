"""Object-in-box benchmark on the shapes world: a fixed seeded suite of layouts, every method on the same seeds, the
exact evaluator, one report.

    layoutguide bench shapes --methods none,refocus --n 200 --seed 0 --out bench-out/shapes

Writes ``OUT/images/METHOD/NNNN.png`` (one file per scene, written atomically), ``OUT/results.json`` (per
image scores, per method aggregates, timings), ``OUT/report.md`` and ``OUT/grid.png``. A rerun with the
same arguments skips the images already there (resume after an interruption) and redoes damaged ones; timings of
earlier runs are kept in ``OUT/timings.jsonl``. ``OUT/run.json`` records what made the images (model fingerprint
and defaults, suite, sampling settings, each method's options and phrase form): resuming into a folder made with
other settings is refused, so a report never mixes images of two models or two step sizes. Seconds per image and
peak memory are measured per method in the same run.

With ``phrase_forms`` other than ``("bare",)``, each region's phrase is rewritten (``"a red circle"``) before
generation, the prompt unchanged; each form is its own rows (``refocus (article)``) and folders
(``OUT/images/article/refocus``) on the same seeds, and the report adds object-in-box per form.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..shapes.evaluate import aggregate, evaluate
from ..spec import MethodSpec
from .files import Report, append_jsonl, read_json, read_jsonl, write_json
from .memory import PeakMemory
from .reports import write_shapes_report
from .resume import check_resume, check_sampling, run_settings, sampling_defaults
from .runner import generate, load_images
from .suites import check_count, check_phrase_forms, shapes_layout_suite, shapes_suite


def row_label(label: str, form: str) -> str:
    """A row of the report: the method's label, with its phrase form unless bare."""
    return label if form == "bare" else f"{label} ({form})"


def row_folder(images: Path, label: str, form: str) -> Path:
    """Bare-form rows keep the folder they always had, so runs made before phrase forms resume."""
    return images / label if form == "bare" else images / form / label


def method_record(spec: MethodSpec, form: str) -> dict[str, Any]:
    """What ``run.json`` holds for a row (the phrase form only when not bare and the preset only when one is given:
    older runs resume unchanged)."""
    record: dict[str, Any] = {"method": spec.method, "options": spec.options}
    if spec.preset is not None:
        record["preset"] = spec.preset
    if form != "bare":
        record["phrase_form"] = form
    return record


def check_methods(methods: Sequence[MethodSpec]) -> None:
    if not methods:
        raise InputError("methods: no method given; name at least one, e.g. none,refocus")


def read_timings(path: Path, report: Report) -> dict[tuple[str, int], float]:
    records = read_jsonl(path, report, ("method", "index", "seconds"))
    return {(r["method"], r["index"]): r["seconds"] for r in records}


def run_shapes_bench(
    pipe: Any,
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
    phrase_forms: Sequence[str] = ("bare",),
    progress: bool = True,
    command: str | None = None,
    report: Report = print,
) -> dict[str, Any]:
    """Generate, evaluate and report. Returns the results dictionary written to ``results.json``. ``report``
    receives one line per damaged file found and redone."""
    out = Path(out)
    check_methods(methods)
    check_sampling(steps, guidance_scale)
    forms = check_phrase_forms(list(phrase_forms))
    suite = shapes_layout_suite(n, seed, max_objects=max_objects, use_masks=use_masks)
    check_count("batch_size", batch_size)
    settings = {
        **run_settings(pipe, n, seed, steps, guidance_scale),
        "use_masks": use_masks,
        "max_objects": max_objects,
    }
    rows = [(form, spec) for form in forms for spec in methods]
    records = {row_label(s.label, f): method_record(s, f) for f, s in rows}
    check_resume(out, settings, records, defaults=sampling_defaults(pipe), report=report)
    timings_file = out / "timings.jsonl"
    timings = read_timings(timings_file, report)
    device = pipe._execution_device
    memory: dict[str, int] = {}
    for form, spec in rows:
        label = row_label(spec.label, form)

        def log_time(k: int, _image: Any, seconds: float, label: str = label) -> None:
            timings[(label, k)] = seconds
            append_jsonl(timings_file, {"method": label, "index": k, "seconds": seconds})

        with PeakMemory(device) as peak:
            done = generate(
                pipe,
                suite.in_form(form),
                spec,
                row_folder(out / "images", spec.label, form),
                steps=steps,
                guidance_scale=guidance_scale,
                batch_size=batch_size,
                progress=progress,
                desc=label,
                report=report,
                on_image=log_time,
            )
        if done:
            memory[label] = peak.peak_bytes

    # Evaluate every image (cheap, exact) against the bare layouts (the same boxes) and aggregate.
    previous = read_json(out / "results.json", report, "written anew from the images") or {}
    config: dict[str, Any] = {
        **{k: v for k, v in settings.items() if k != "model"},  # the run's settings, in the same order
        "methods": [dataclasses.asdict(m) for m in methods],
        "device": str(device),
        "command": command,
    }
    if forms != ("bare",):
        config["phrase_forms"] = list(forms)
    results: dict[str, Any] = {"config": config, "methods": {}, "images": {}}
    folders = {}
    per_form: dict[str, dict[str, float]] = {}
    for form, spec in rows:
        label = row_label(spec.label, form)
        folders[label] = row_folder(out / "images", spec.label, form)
        images = load_images(folders[label], n)
        scores = [evaluate(image, suite.layouts[k]) for k, image in enumerate(images)]
        summary: dict[str, Any] = dict(aggregate(scores))
        secs = [timings[(label, k)] for k in range(n) if (label, k) in timings]
        summary["seconds_per_image"] = sum(secs) / len(secs) if secs else float("nan")
        old_methods = previous.get("methods") if isinstance(previous.get("methods"), dict) else {}
        old_peak = (old_methods.get(label) or {}).get("peak_memory_mb") if isinstance(old_methods, dict) else None
        summary["peak_memory_mb"] = memory[label] / 2**20 if label in memory else old_peak
        results["methods"][label] = summary
        results["images"][label] = [s.to_dict() for s in scores]
        per_form.setdefault(spec.label, {})[form] = summary["object_in_box"]
    base = results["methods"].get("none")
    for summary in results["methods"].values():
        summary["time_vs_none"] = (
            summary["seconds_per_image"] / base["seconds_per_image"] if base and base["seconds_per_image"] else None
        )
    write_json(out / "results.json", results)
    write_shapes_report(results, out, list(suite.layouts), folders, forms, per_form)
    return results


__all__ = ["run_shapes_bench", "shapes_suite", "row_label"]
