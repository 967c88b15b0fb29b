"""Layouts <-> the box editor's value (``{"image", "boxes": [{xmin, ymin, xmax, ymax, label, color}]}``) and the
mask editor's layers, and the per-box check shown next to each box while the person types.

The editor shows the model's canvas enlarged to about ``DISPLAY`` px (the shapes model is 64 px, too small to draw
on); boxes are stored normalised, so the display size never enters a layout.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..layout import Layout, LayoutError, Region
from ..tokens import PhraseNotFoundError, map_phrases
from ..viz import PALETTE

DISPLAY = 512  # px of the longer side of the editor's canvas


def display_size(width: int, height: int, display: int = DISPLAY) -> tuple[int, int]:
    """The editor canvas (w, h) for a ``width`` x ``height`` layout: same aspect, longer side ``display``."""
    scale = display / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def blank_canvas(width: int, height: int, display: int = DISPLAY) -> np.ndarray:
    """A white RGB canvas of the layout's aspect at display size."""
    w, h = display_size(width, height, display)
    return np.full((h, w, 3), 255, dtype=np.uint8)


def colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def annotation_from_layout(layout: Layout, display: int = DISPLAY) -> dict[str, Any]:
    """The box editor's value for ``layout`` (mask regions show as their extent)."""
    image = blank_canvas(layout.width, layout.height, display)
    h, w = image.shape[:2]
    boxes = []
    for i, region in enumerate(layout.regions):
        x0, y0, x1, y1 = region.bbox
        boxes.append(
            {
                "xmin": round(x0 * w),
                "ymin": round(y0 * h),
                "xmax": round(x1 * w),
                "ymax": round(y1 * h),
                "label": region.phrase,
                "color": colour(i),
            }
        )
    return {"image": image, "boxes": boxes}


def _image_size(value: dict[str, Any]) -> tuple[int, int]:
    image = value.get("image")
    if isinstance(image, np.ndarray):
        return image.shape[1], image.shape[0]
    if isinstance(image, Image.Image):
        return image.size
    raise LayoutError("layout: the canvas has no image; press 'New canvas'")


def regions_from_annotation(value: dict[str, Any] | None) -> list[Region]:
    """The editor's boxes as regions (normalised, clipped to the canvas), unvalidated phrases included."""
    if not value or not value.get("boxes"):
        return []
    w, h = _image_size(value)
    regions = []
    for box in value["boxes"]:
        x0, x1 = sorted((float(box["xmin"]) / w, float(box["xmax"]) / w))
        y0, y1 = sorted((float(box["ymin"]) / h, float(box["ymax"]) / h))
        clipped = tuple(min(max(v, 0.0), 1.0) for v in (x0, y0, x1, y1))
        region = Region.__new__(Region)  # unvalidated: the check below reports each problem next to its box
        object.__setattr__(region, "phrase", str(box.get("label") or "").strip())
        object.__setattr__(region, "box", clipped)
        object.__setattr__(region, "mask", None)
        regions.append(region)
    return regions


def regions_from_layers(layers: Sequence[np.ndarray], phrases: Sequence[str], width: int, height: int) -> list[Region]:
    """One masked region per painted layer of the mask editor (RGBA arrays), layer ``k`` grounding ``phrases[k]``;
    unpainted layers are skipped, masks are resized to the layout canvas."""
    regions = []
    for phrase, layer in zip(phrases, layers):
        rgba = np.asarray(layer)
        painted = rgba[..., 3] > 0 if rgba.ndim == 3 and rgba.shape[2] == 4 else rgba.any(axis=-1)
        if not painted.any():
            continue
        mask = (
            np.asarray(
                Image.fromarray(painted.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)
            )
            > 0
        )
        if mask.any():
            regions.append(Region(phrase.strip(), mask=mask))
    return regions


def _renumber(message: str, index: int) -> str:
    """The library checks one region at a time here, so its text says 'region 0': put the box's own number."""
    return re.sub(r"^region 0\b", f"region {index}", message)


@dataclasses.dataclass
class Check:
    """The result of checking a drawn layout: one message (or None) per box, and one for the layout itself."""

    regions: list[str | None]
    layout: str | None = None

    @property
    def ok(self) -> bool:
        return self.layout is None and not any(self.regions)


def check_layout(prompt: str, regions: Sequence[Region], width: int, height: int, tokenizer=None) -> Check:
    """Each region checked with the library's own validation (phrase, box) and, with ``tokenizer``, its phrase
    looked up in the prompt (``map_phrases``); the messages are the library's, numbered by box."""
    messages: list[str | None] = []
    for i, region in enumerate(regions):
        message = None
        try:
            Layout(prompt or "x", (Region(region.phrase, box=region.box, mask=region.mask),), width, height)
            if tokenizer is not None and prompt.strip():
                map_phrases(tokenizer, prompt, [region.phrase])
        except (LayoutError, PhraseNotFoundError) as e:
            message = _renumber(str(e), i)
        messages.append(message)
    overall = None
    try:
        Layout(prompt, (), width, height)
    except LayoutError as e:
        overall = str(e)
    return Check(messages, overall)


def layout_from_regions(prompt: str, regions: Sequence[Region], width: int, height: int) -> Layout:
    """The validated layout (raises the library's LayoutError naming the region and field)."""
    return Layout(prompt, tuple(Region(r.phrase, box=r.box, mask=r.mask) for r in regions), width=width, height=height)
