"""The one generation loop of every benchmark: generate what is missing or damaged, write it, resume.

Images go to ``FOLDER/NNNN.png``, one per suite entry, each written atomically as soon as its batch is done; a
rerun generates only the entries whose image is missing or damaged (an empty or truncated PNG is said and redone).
Seeds are per entry, so an image does not depend on the batch it was generated in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from ..spec import MethodSpec
from .files import Report, image_ok, png_bytes, write_bytes
from .suites import Suite, check_count

OnImage = Callable[[int, Image.Image, float], None]  # (entry, image, seconds per image of its batch)


def image_path(folder: Path, k: int) -> Path:
    return folder / f"{k:04d}.png"


def entries_to_generate(folder: Path | None, n: int, report: Report, only: Sequence[int] | None = None) -> list[int]:
    """The entries of ``folder`` (those in ``only`` when given) without a whole image: all of them without a folder
    (results kept in memory)."""
    wanted = list(range(n)) if only is None else list(only)
    if folder is None:
        return wanted
    todo = []
    for k in wanted:
        path = image_path(folder, k)
        if not path.exists():
            todo.append(k)
        elif not image_ok(path):
            report(f"{path} is damaged (empty or truncated): generating it again")
            todo.append(k)
    return todo


def generate(
    pipe: Any,
    suite: Suite,
    spec: MethodSpec,
    folder: Path | None,
    *,
    steps: int | None = None,
    guidance_scale: float | None = None,
    batch_size: int = 8,
    progress: bool = True,
    desc: str = "",
    report: Report = print,
    on_image: OnImage | None = None,
    only: Sequence[int] | None = None,
) -> int:
    """Generate every entry of ``suite`` whose image in ``folder`` is missing or damaged, with ``spec``; write each
    image there (with ``folder`` None, hand each to ``on_image`` only). ``only``: the entries this call is for (a
    shard's or a process's share); the others are left alone. Returns how many images were generated."""
    check_count("batch_size", batch_size)
    todo = entries_to_generate(folder, len(suite), report, only)
    total = len(suite) if only is None else len(only)
    bar = tqdm(total=total, initial=total - len(todo), desc=desc or spec.label, disable=not progress)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        t0 = time.perf_counter()
        inputs: dict[str, Any] = (
            {
                "layout": [suite.layouts[k] for k in chunk],
                "method": spec.method,
                "method_options": spec.options,
                "preset": spec.preset,
            }
            if suite.guided
            else {"prompt": [suite.layouts[k].prompt for k in chunk]}
        )
        result = pipe(
            **inputs,
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            seed=[suite.seeds[k] for k in chunk],
            progress=False,
        )
        seconds = (time.perf_counter() - t0) / len(chunk)
        for k, image in zip(chunk, result.images):
            if folder is not None:
                write_bytes(image_path(folder, k), png_bytes(image))
            if on_image is not None:
                on_image(k, image, seconds)
        bar.update(len(chunk))
    bar.close()
    return len(todo)


def load_images(folder: Path, n: int) -> list[Image.Image]:
    """The ``n`` images of ``folder`` as RGB, each opened once."""
    images = []
    for k in range(n):
        with Image.open(image_path(folder, k)) as image:
            images.append(image.convert("RGB"))
    return images
