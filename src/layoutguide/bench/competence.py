"""Unguided competence of a shapes model: does it draw the objects its prompt names, with no layout at all?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from ..shapes.evaluate import evaluate
from ..spec import MethodSpec
from .files import Report, write_json
from .resume import check_resume, check_sampling, run_settings, sampling_defaults
from .runner import OnImage, generate, image_path
from .suites import MAX_OBJECTS, check_count, competence_suite

UNGUIDED = MethodSpec("none", None)


def keep(images: dict[int, Image.Image]) -> OnImage:
    """An ``on_image`` that keeps each generated image in ``images``."""

    def on_image(k: int, image: Image.Image, _seconds: float) -> None:
        images[k] = image

    return on_image


def run_competence(
    pipe: Any,
    *,
    n: int = 200,
    seed: int = 0,
    out: str | Path | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    kinds: tuple[int, ...] = (1, 2),
    batch_size: int = 16,
    progress: bool = True,
    report: Report = print,
) -> dict[str, Any]:
    """Unguided competence of a shapes model on held-out prompts: single-object prompts with the right colour and
    shape, two-object prompts with both colours (and both colour+shape) present. With ``out``, images and
    ``competence.json`` are written there and a rerun resumes. ``steps`` and ``guidance_scale``: None for the model's
    (its ``layoutguide.json``); the guidance interval is the pipeline's (``load_pipeline(guidance_interval=...)``).
    ``kinds``: which prompt kinds, by object count (a sampling sweep may want the single-object ones only)."""
    check_count("n", n)
    check_count("batch_size", batch_size)
    for k in kinds:
        check_count("kinds", k, 1, MAX_OBJECTS)
    check_sampling(steps, guidance_scale)
    defaults = sampling_defaults(pipe)
    if out is not None:
        settings = run_settings(pipe, n, seed, steps, guidance_scale)
        check_resume(Path(out), settings, {}, defaults=defaults, report=report)
    results: dict[str, Any] = {
        "n": n,
        "seed": seed,
        "steps": defaults["steps"] if steps is None else steps,
        "guidance_scale": defaults["guidance_scale"] if guidance_scale is None else guidance_scale,
        "guidance_interval": (getattr(pipe, "model_defaults", {}) or {}).get("guidance_interval"),
    }
    for k in kinds:
        suite = competence_suite(n, seed, k)
        folder = Path(out) / f"{k}obj" if out is not None else None
        images: dict[int, Image.Image] = {}
        generate(
            pipe,
            suite,
            UNGUIDED,
            folder,
            steps=steps,
            guidance_scale=guidance_scale,
            batch_size=batch_size,
            progress=progress,
            desc=f"{k}-object prompts",
            report=report,
            on_image=keep(images),
        )
        if folder is not None:  # entries generated before this run are read back
            for i in range(n):
                if i not in images:
                    with Image.open(image_path(folder, i)) as image:
                        images[i] = image.convert("RGB")
        scores = [evaluate(images[i], suite.layouts[i]) for i in range(n)]
        results[f"{k}obj_all_found"] = sum(s.found_rate == 1.0 for s in scores) / n  # every object, right colour+shape
        results[f"{k}obj_all_colours"] = sum(s.colour_acc == 1.0 for s in scores) / n
        results[f"{k}obj_count_ok"] = sum(s.count_ok for s in scores) / n
        results[f"{k}obj_background_tint"] = sum(s.background_tint for s in scores) / n
    if out is not None:
        write_json(Path(out) / "competence.json", results)
    return results
