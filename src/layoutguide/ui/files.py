"""The download bundle of a run: the images, the layout, and a run file with the ``layoutguide generate`` command
that reproduces them. Writes only into the folder it is given, atomically. (Layout files in every format:
:mod:`layoutguide.layout_files`.)"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ..layout import atomic_write_bytes, atomic_write_text
from .jobs import GenerationRequest


def save_bundle(
    folder: str | os.PathLike,
    images: Sequence[Image.Image],
    request: GenerationRequest,
    *,
    model: str | None = None,
) -> Path:
    """A zip in ``folder`` with the images, ``layout.json`` and ``run.sh``: the ``layoutguide generate`` command that
    writes the same images (``image.png``, or ``image_0.png`` ... for several)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = ["image.png"] if len(images) == 1 else [f"image_{j}.png" for j in range(len(images))]
    command = request.command("layout.json", "image.png", model=model)
    run_file = f"#!/bin/sh\n# reproduces {', '.join(names)} from layout.json\n{command}\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, image in zip(names, images):
            png = io.BytesIO()
            image.save(png, format="PNG")
            z.writestr(name, png.getvalue())
        z.writestr("layout.json", request.layout.to_json() + "\n")
        z.writestr("run.sh", run_file)
    path = folder / "layoutguide_run.zip"
    atomic_write_bytes(path, buffer.getvalue())
    atomic_write_text(folder / "run.sh", run_file)
    return path
