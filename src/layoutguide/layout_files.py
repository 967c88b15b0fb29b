"""Layout files in every format :class:`~layoutguide.layout.Layout` reads and writes, told apart by their content
when read (JSON of layoutguide, GLIGEN or COCO; LMD, LayoutGPT or Attention Refocusing text; a mask PNG with its
colour JSON, or both zipped), and the colour-coded mask PNG that :meth:`Layout.from_mask_png` reads back. Writes
only into the folder it is given, atomically."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InputError
from .layout import Layout, LayoutError, atomic_write_bytes
from .viz import PALETTE

# name -> (file name, what it holds); every format of layoutguide.layout
FORMATS = {
    "json": ("layout.json", "layoutguide JSON (boxes and masks)"),
    "gligen": ("layout_gligen.json", "GLIGEN phrases + normalised boxes"),
    "lmd": ("layout_lmd.txt", "LMD object list on a 512 px canvas"),
    "layoutgpt": ("layout_layoutgpt.txt", "LayoutGPT CSS lines on a 64 px canvas"),
    "refocus": ("layout_refocus.txt", "Attention Refocusing lines on a 512 px canvas"),
    "coco": ("layout_coco.json", "COCO annotations in pixels"),
    "mask": ("layout_mask.zip", "mask PNG + colour JSON (zipped)"),
}


def mask_png(layout: Layout) -> tuple[bytes, dict[str, str]]:
    """The layout as a colour-coded PNG (one colour per region, later regions on top) plus the
    ``{"(r, g, b)": phrase}`` map that :meth:`Layout.from_mask_png` reads back."""
    rgb = np.zeros((layout.height, layout.width, 3), dtype=np.uint8)
    colours: dict[str, str] = {}
    masks = layout.rasterize(layout.height, layout.width) > 0
    for i, region in enumerate(layout.regions):
        colour = PALETTE[i % len(PALETTE)] if i < len(PALETTE) else (i % 256, (37 * i) % 256, 255 - i % 256)
        rgb[masks[i]] = colour
        colours[str(tuple(colour))] = region.phrase
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue(), colours


def layout_text(layout: Layout, fmt: str) -> bytes:
    """The bytes of ``layout`` in format ``fmt`` (a key of :data:`FORMATS`)."""
    if fmt == "json":
        return (layout.to_json() + "\n").encode()
    if fmt == "gligen":
        return (json.dumps(layout.to_gligen(), indent=2) + "\n").encode()
    if fmt == "coco":
        return (json.dumps({**layout.to_coco(), "prompt": layout.prompt}, indent=2) + "\n").encode()
    if fmt in ("lmd", "layoutgpt", "refocus"):
        return (getattr(layout, f"to_{fmt}")() + "\n").encode()
    if fmt == "mask":
        png, colours = mask_png(layout)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("layout_mask.png", png)
            z.writestr("layout_mask.json", json.dumps({"prompt": layout.prompt, "colours": colours}, indent=2))
        return buffer.getvalue()
    raise InputError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")


def save_layout(layout: Layout, fmt: str, folder: str | os.PathLike) -> Path:
    """Write ``layout`` in ``fmt`` into ``folder``; returns the file."""
    path = Path(folder) / FORMATS[fmt][0] if fmt in FORMATS else Path(folder)
    data = layout_text(layout, fmt)
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def _from_json_data(data: object, prompt: str, width: int, height: int) -> Layout:
    if not isinstance(data, dict):
        raise LayoutError("layout file: expected a JSON object (layoutguide, GLIGEN or COCO)")
    if "gligen_phrases" in data:
        return Layout.from_gligen(
            data.get("prompt") or prompt,
            data["gligen_phrases"],
            data.get("gligen_boxes", []),
            width=width,
            height=height,
        )
    if "annotations" in data:
        image = (data.get("images") or [{}])[0]
        return Layout.from_coco(
            data["annotations"],
            data.get("categories", []),
            data.get("prompt") or prompt,
            int(image.get("width", width)),
            int(image.get("height", height)),
        )
    return Layout.from_dict(data)


def _from_zip(data: bytes, prompt: str) -> Layout:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        png = next((n for n in names if n.lower().endswith(".png")), None)
        meta = next((n for n in names if n.lower().endswith(".json")), None)
        if png is None or meta is None:
            raise LayoutError("mask zip: needs one PNG and one JSON of colours {'(r, g, b)': phrase}")
        info = json.loads(z.read(meta))
        colours = info.get("colours", info) if isinstance(info, dict) else info
        prompt = (info.get("prompt") if isinstance(info, dict) and "colours" in info else None) or prompt
        return Layout.from_mask_png(np.asarray(Image.open(io.BytesIO(z.read(png))).convert("RGB")), colours, prompt)


def load_layout(
    path: str | os.PathLike,
    prompt: str = "",
    *,
    colours: str | os.PathLike | None = None,
    width: int = 512,
    height: int = 512,
) -> Layout:
    """A layout from a file in any format of :data:`FORMATS`, told apart by its content. Text formats without a
    prompt of their own take ``prompt``; a mask PNG takes its ``colours`` JSON file (or comes zipped with it)."""
    raw = Path(path).read_bytes()
    name = Path(path).name.lower()
    try:
        if raw[:4] == b"PK\x03\x04":
            return _from_zip(raw, prompt)
        if raw[:8] == b"\x89PNG\r\n\x1a\n":
            if colours is None:
                raise LayoutError("mask PNG: also give its colour JSON {'(r, g, b)': phrase} (or a zip of both)")
            rgb = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
            return Layout.from_mask_png(rgb, str(colours), prompt)
        text = raw.decode("utf-8")
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError, json.JSONDecodeError) as e:
        raise LayoutError(f"layout file {name!r} cannot be read: {type(e).__name__}") from None
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise LayoutError(f"layout file {name!r} is not valid JSON: {e}") from None
        return _from_json_data(data, prompt, width, height)
    if not prompt.strip():
        raise LayoutError(f"layout file {name!r} has no prompt of its own; type the prompt first, then load it")
    if stripped.startswith("["):
        return Layout.from_lmd(stripped, prompt)
    if "{" in stripped and "px" in stripped:
        return Layout.from_layoutgpt(stripped, prompt)
    return Layout.from_refocus(stripped, prompt)
