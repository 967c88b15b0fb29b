"""``bench suite``'s loop: generate -> detect -> score, one image and one score file at a time, split over shards or
``accelerate`` processes.

Every image is ``(entry, sample)`` of the suite file; its seed is ``seed * SUITE_STRIDE + sample * len(file) +
entry`` (so a shard count, ``--n`` or the process count never changes an image, and sample 0 of entry k has the
seed ``bench shapes`` gives its k-th layout). Images go to ``OUT/images/METHOD/NNNN.png`` and scores to
``OUT/scores/METHOD/NNNN.json`` (``NNNN = sample * len(file) + entry``), each written atomically: a killed run
resumes per image, and ``bench merge`` reads the score files of every shard.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from ...errors import InputError
from ...layout import Layout
from ...spec import MethodSpec
from ..detectors.base import Detector
from ..files import Report, image_ok, read_json, write_json
from ..resume import check_resume, model_fingerprint, sampling_defaults
from ..runner import generate, image_path
from ..suites import SUITE_STRIDE, Suite, check_count
from .base import ColourCheck, PublicSuite
from .report import merge_folders

SAMPLES_MAX = 64


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/8"`` -> ``(1, 8)`` (the second of eight); None for no sharding."""
    if text is None:
        return None
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise InputError(f"shard: {text!r} is not I/N (e.g. 1/4 for the first of four)") from None
    if not 1 <= i <= n:
        raise InputError(f"shard: {text!r} needs 1 <= I <= N (e.g. 1/4 for the first of four)")
    return i - 1, n


def flat_indices(n_file: int, n: int | None, samples: int) -> list[int]:
    """The images of a run, entry by entry, each entry's samples together."""
    entries = range(n_file if n is None else min(n, n_file))
    return [s * n_file + e for e in entries for s in range(samples)]


def image_suite(suite: PublicSuite, samples: int, seed: int, layouts: Sequence[Layout] | None = None) -> Suite:
    """The generation suite over every (entry, sample) of the file: image ``s * len + e`` is entry e's layout
    (``layouts[e]`` when given)."""
    n = len(suite)
    base = list(layouts) if layouts is not None else [e.layout for e in suite.entries]
    return Suite(
        suite.name,
        tuple(base[k % n] for k in range(n * samples)),
        tuple(seed * SUITE_STRIDE + k for k in range(n * samples)),
    )


def with_phrases_in_prompt(pipe: Any, suite: PublicSuite, count: int) -> tuple[list[Layout], int]:
    """The first ``count`` entries' layouts with every phrase the prompt lacks appended to it (``"prompt, phrase"``,
    LMD+'s rule, the pipeline's ``append_missing_phrases``): published prompts (COCO captions, GPT-4 object names)
    do not always contain their phrases. Returns the layouts and how many prompts changed."""
    layouts, changed = [], 0
    for k, entry in enumerate(suite.entries):
        layout = entry.layout
        if k < count and hasattr(pipe, "token_map"):
            prompt = pipe.token_map(layout.prompt, layout.phrases, on_missing="append").prompt
            if prompt != layout.prompt:
                layout, changed = layout.replace(prompt=prompt), changed + 1
        layouts.append(layout)
    return layouts, changed


def launched() -> bool:
    """Whether this process is one of several started by ``accelerate launch`` (or torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def distributed_state(device: str) -> Any:
    """accelerate's process state, set up once per process: gloo between CPU processes (``device`` cpu, or auto
    without CUDA), the GPU backend otherwise. Its ``device`` is this process's."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=device == "cpu" or (device == "auto" and not torch.cuda.is_available()))


def my_share(items: list[int], shard: tuple[int, int] | None, device: str = "auto") -> tuple[list[int], Any]:
    """This process's images: a shard's stride, an ``accelerate`` process's slice, or all; and the state (or None)."""
    if shard is not None:
        return items[shard[0] :: shard[1]], None
    if launched():
        state = distributed_state(device)
        with state.split_between_processes(items) as mine:
            return list(mine), state
    return items, None


def score_path(out: Path, label: str, k: int) -> Path:
    return out / "scores" / label / f"{k:04d}.json"


def run_settings(pipe: Any, suite: PublicSuite, detector: Detector, **rest: Any) -> dict[str, Any]:
    return {
        "model": model_fingerprint(pipe),
        "suite": suite.name,
        "data": str(Path(suite.source).resolve()),
        "detector": detector.name,
        "detector_description": detector.description,
        "score_threshold": suite.score_threshold,
        "matching": getattr(suite, "matching", None),
        **rest,
    }


def run_suite(
    pipe: Any,
    suite: PublicSuite,
    methods: Sequence[MethodSpec],
    detector: Detector,
    colour: ColourCheck,
    *,
    out: str | Path,
    n: int | None = None,
    samples: int = 1,
    seed: int = 0,
    shard: tuple[int, int] | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    batch_size: int = 4,
    progress: bool = True,
    command: str | None = None,
    report: Report = print,
) -> dict[str, Any] | None:
    """Generate, detect and score this process's share; merge and report when the whole run is here (one process,
    or the main ``accelerate`` process after all have finished). Returns the results, or None for a shard or a
    non-main process (``bench merge`` reports shards)."""
    out = Path(out)
    check_count("samples", samples, 1, SAMPLES_MAX)
    if n is not None:
        check_count("n", n)
    if not methods:
        raise InputError("methods: no method given; name at least one, e.g. none,refocus")
    items = flat_indices(len(suite), n, samples)
    mine, state = my_share(items, shard, str(getattr(pipe, "_execution_device", "auto")).split(":")[0])
    settings = run_settings(
        pipe, suite, detector, n=n, samples=samples, seed=seed, steps=steps, guidance_scale=guidance_scale
    )
    records = {s.label: {"method": s.method, "options": s.options, "preset": s.preset} for s in methods}
    layouts, appended = with_phrases_in_prompt(pipe, suite, len(suite) if n is None else n)
    if state is None or state.is_main_process:
        check_resume(out, settings, records, defaults=sampling_defaults(pipe), report=report)
        notes = {"command": command, "methods": [s.label for s in methods], "prompts_with_phrases_appended": appended}
        write_json(out / "command.json", notes)
    if state is not None:
        state.wait_for_everyone()
    rank = f" [{state.process_index + 1}/{state.num_processes}]" if state is not None else ""
    images = image_suite(suite, samples, seed, layouts)
    for spec in methods:
        folder = out / "images" / spec.label
        generate(
            pipe, images, spec, folder, steps=steps, guidance_scale=guidance_scale, batch_size=batch_size,
            progress=progress, desc=f"{spec.label}{rank}", report=report, only=mine,
        )  # fmt: skip
        score_images(suite, detector, colour, out, spec.label, mine, progress=progress, rank=rank, report=report)
    if shard is not None:
        return None
    if state is not None:
        state.wait_for_everyone()
        if not state.is_main_process:
            return None
    return merge_folders([out], out, report=report)


def score_images(
    suite: PublicSuite,
    detector: Detector,
    colour: ColourCheck,
    out: Path,
    label: str,
    indices: Sequence[int],
    *,
    progress: bool,
    rank: str,
    report: Report,
) -> None:
    """Detect and score every image of ``indices`` without a whole score file; each file written atomically."""
    n = len(suite)
    todo = [k for k in indices if read_json(score_path(out, label, k), report, "scored again") is None]
    for k in tqdm(todo, desc=f"{label} detect{rank}", disable=not progress):
        path = image_path(out / "images" / label, k)
        if not image_ok(path):
            raise InputError(f"out: {path} is missing or damaged; rerun the same command to generate it again")
        entry = suite.entries[k % n]
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        detections = detector.detect(image, suite.labels(entry))
        record = {"entry": k % n, "sample": k // n, "level": entry.level}
        record |= suite.score(entry, image, detections, colour)
        write_json(score_path(out, label, k), record)
