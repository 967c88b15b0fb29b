"""Layouts as pure data: a prompt plus regions (phrase + box and/or mask), validated and converted.

Canonical coordinates are **normalised xyxy**: ``box = (x0, y0, x1, y1)`` with ``0 <= x0 < x1 <= 1`` and
``0 <= y0 < y1 <= 1``, x to the right and y down, relative to the canvas. Masks are boolean ``(H, W)`` numpy
arrays covering the whole canvas. No torch in this module: it is imported by the CLI, the planner and the UI.

Formats read and written (see ``from_*`` / ``to_*``):

=================  ===========================================================================
GLIGEN             ``phrases`` + ``boxes`` in normalised xyxy (diffusers' ``gligen_*`` arguments)
LMD                ``[('a green car', [x, y, w, h]), ...]`` on a 512 px canvas + background + negative
LayoutGPT          CSS lines ``toilet {height: 16px; width: 12px; top: 14px; left: 0px; }`` on a 64 px canvas
Refocus (AR)       lines ``cat: (245, 176, 345, 336)``: xyxy corners on a 512 px canvas
COCO               annotations ``{"bbox": [x, y, w, h], "category_id"}`` in pixels + categories
mask PNG + JSON    a colour-coded PNG plus ``{"(r, g, b)": "phrase"}``
=================  ===========================================================================
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import LayoutguideError

BoxEdges = Literal["cover", "truncate"]  # how a box's far edge rounds to grid cells (Layout.rasterize)

MAX_REGIONS = 30
FORMAT_VERSION = 1


class LayoutError(LayoutguideError, ValueError):
    """Invalid layout input. The message names the region and field, and says how to fix it."""


def _where(index: int | None, phrase: str | None) -> str:
    if index is None:
        return "layout"
    return f"region {index}" + (f" ({phrase!r})" if phrase else "")


def _check_box(box: Any, where: str) -> tuple[float, float, float, float]:
    # text ("0011") and booleans iterate/convert to numbers: refuse them instead of reading [0, 0, 1, 1]
    bad_item = (
        any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)) for v in box)
        if (isinstance(box, (list, tuple, np.ndarray)))
        else True
    )
    try:
        if bad_item:
            raise TypeError
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError, OverflowError):
        raise LayoutError(f"{where}: field 'box' must be 4 numbers [x0, y0, x1, y1], got {box!r}") from None
    if len(values) != 4:
        raise LayoutError(f"{where}: field 'box' must be 4 numbers [x0, y0, x1, y1], got {len(values)} values")
    if not all(math.isfinite(v) for v in values):
        raise LayoutError(f"{where}: field 'box' contains NaN or infinity: {list(values)}")
    x0, y0, x1, y1 = values
    if min(values) < 0 or max(values) > 1:
        raise LayoutError(
            f"{where}: field 'box' {list(values)} is outside [0, 1]; boxes are normalised xyxy "
            "(divide pixel coordinates by the canvas width/height, or use Layout.from_pixels)"
        )
    if x1 <= x0 or y1 <= y0:
        raise LayoutError(
            f"{where}: field 'box' {list(values)} is inverted or has zero area; expected x0 < x1 and y0 < y1"
        )
    return values


@dataclasses.dataclass(frozen=True, eq=False)
class Region:
    """One grounded object: a ``phrase`` that occurs in the prompt, with a ``box`` and/or a ``mask``.

    ``box`` is normalised xyxy. ``mask`` is a boolean ``(H, W)`` array over the canvas. A region with only a
    mask gets its box from the mask's extent (``Region.bbox``).
    """

    phrase: str
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Region):
            return NotImplemented
        same_mask = (self.mask is None and other.mask is None) or (
            self.mask is not None and other.mask is not None and np.array_equal(self.mask, other.mask)
        )
        same_box = (self.box is None and other.box is None) or (
            self.box is not None and other.box is not None and np.allclose(self.box, other.box, atol=1e-6)
        )
        return self.phrase == other.phrase and same_box and same_mask

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """The box, or the normalised extent of the mask when only a mask is given."""
        if self.box is not None:
            return self.box
        assert self.mask is not None  # validated
        ys, xs = np.nonzero(self.mask)
        h, w = self.mask.shape
        return (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
    """A prompt with grounded regions on a ``width`` x ``height`` canvas (pixels, used for masks and exports)."""

    prompt: str
    regions: tuple[Region, ...] = ()
    width: int = 512
    height: int = 512
    background: str | None = None
    negative_prompt: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))
        validate(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Layout):
            return NotImplemented
        return (
            self.prompt == other.prompt
            and self.regions == other.regions
            and (self.width, self.height, self.background, self.negative_prompt)
            == (other.width, other.height, other.background, other.negative_prompt)
        )

    @property
    def phrases(self) -> list[str]:
        return [r.phrase for r in self.regions]

    @property
    def boxes(self) -> list[tuple[float, float, float, float]]:
        return [r.bbox for r in self.regions]

    def replace(self, **changes: Any) -> Layout:
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------------------------------- rasterising
    def rasterize(
        self,
        height: int,
        width: int,
        *,
        boxes_only: bool = False,
        soft: bool = False,
        box_edges: BoxEdges = "cover",
    ) -> np.ndarray:
        """Region masks on an ``(height, width)`` grid, float32 ``(N, height, width)`` in {0, 1}.

        Boxes cover the cells ``[floor(y0*h), ceil(y1*h)) x [floor(x0*w), ceil(x1*w))`` (``box_edges="cover"``,
        every cell the box touches), so even a tiny box covers at least one cell. ``box_edges="truncate"`` is the
        official Attention Refocusing / BoxDiff rasterisation, ``int(b*h)`` for both edges (``[floor(y0*h),
        floor(y1*h))``): the far edge rounds down, 26-43% fewer cells on typical boxes at 16x16; a box narrower than
        a cell still keeps one (the official slice would be empty). Edges within 1e-9 cell of a cell border snap to
        it, so a box made from pixel coordinates (``29/100``) does not gain a row from float error
        (``0.29 * 100 == 28.999999999999996``).
        Masks are resized by area (a cell is on when at least half of it is covered); a mask that would vanish
        keeps its single most-covered cell. ``soft=True`` returns the covered share of every cell instead
        (area downsampling, as ZestGuide compares attention with its masks), for boxes and masks alike.
        """
        if height <= 0 or width <= 0:
            raise LayoutError(f"rasterize: grid size must be positive, got ({height}, {width})")
        out = np.zeros((len(self.regions), height, width), dtype=np.float32)
        for i, region in enumerate(self.regions):
            if soft and (region.mask is None or boxes_only):
                # the box's cell coverage computed at the grid: a canvas-size mask of a 16384 px canvas is 1 GB
                x0, y0, x1, y1 = region.bbox
                out[i] = _box_coverage(
                    _cells(y0, y1, self.height), _cells(x0, x1, self.width), self.height, self.width, height, width
                )
            elif soft:
                assert region.mask is not None
                out[i] = _coverage(region.mask, height, width)
            elif region.mask is not None and not boxes_only:
                out[i] = _resize_mask(region.mask, height, width)
            else:
                x0, y0, x1, y1 = region.bbox
                r0, r1 = _cells(y0, y1, height, box_edges)
                c0, c1 = _cells(x0, x1, width, box_edges)
                out[i, r0:r1, c0:c1] = 1.0
        return out

    # ----------------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        regions = []
        for r in self.regions:
            item: dict[str, Any] = {"phrase": r.phrase}
            if r.box is not None:
                rounded = [round(float(v), 6) for v in r.box]
                # keep full precision when rounding would make a (valid) sub-1e-6 box degenerate
                item["box"] = (
                    rounded if rounded[0] < rounded[2] and rounded[1] < rounded[3] else [float(v) for v in r.box]
                )
            if r.mask is not None:
                item["mask_rle"] = _rle_encode(r.mask)
            regions.append(item)
        out: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "width": self.width,
            "height": self.height,
            "prompt": self.prompt,
        }
        if self.negative_prompt is not None:
            out["negative_prompt"] = self.negative_prompt
        if self.background is not None:
            out["background"] = self.background
        out["regions"] = regions
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        if not isinstance(data, dict):
            raise LayoutError(f"layout JSON must be an object with 'prompt' and 'regions', got {type(data).__name__}")
        if "prompt" not in data:
            raise LayoutError("layout: field 'prompt' is missing; add the full text prompt")
        unknown = set(data) - _LAYOUT_FIELDS
        if unknown:
            raise LayoutError(
                f"layout: unknown field(s) {sorted(unknown, key=str)}; allowed: {', '.join(sorted(_LAYOUT_FIELDS))}"
            )
        if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise LayoutError(
                f"layout: field 'version' is {data['version']!r}; this reader supports version {FORMAT_VERSION}"
            )
        width, height = data.get("width", 512), data.get("height", 512)
        for name, value in (("width", width), ("height", height)):
            _check_canvas_side(name, value)
        raw_regions = data.get("regions", [])
        if not isinstance(raw_regions, list):
            raise LayoutError("layout: field 'regions' must be a list of {phrase, box} objects")
        regions = []
        for i, item in enumerate(raw_regions):
            if not isinstance(item, dict):
                raise LayoutError(f"region {i}: must be an object with 'phrase' and 'box', got {item!r}")
            unknown = set(item) - {"phrase", "box", "mask_rle"}
            if unknown:
                raise LayoutError(
                    f"region {i}: unknown field(s) {sorted(unknown, key=str)}; allowed: phrase, box, mask_rle"
                )
            mask = _rle_decode(item["mask_rle"], (height, width), i) if "mask_rle" in item else None
            regions.append(Region(phrase=item.get("phrase", ""), box=item.get("box"), mask=mask))
        return cls(
            prompt=data["prompt"],
            regions=tuple(regions),
            width=width,
            height=height,
            background=data.get("background"),
            negative_prompt=data.get("negative_prompt"),
        )

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> Layout:
        """Load from a JSON file path or a JSON string. A ``Path`` (any ``os.PathLike``) is always a file, and so is
        a string naming an existing file (even one whose name starts with ``{``); other strings starting with ``{``
        are JSON text."""
        text = str(source)
        if isinstance(source, os.PathLike) or not text.lstrip().startswith("{") or _is_file(text):
            path = Path(source)
            try:
                text = path.read_text()
            except FileNotFoundError:
                raise LayoutError(f"layout file {str(path)!r} does not exist") from None
            except (OSError, UnicodeDecodeError) as e:
                raise LayoutError(
                    f"layout file {str(path)[:200]!r} cannot be read as text: {type(e).__name__}"
                ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise LayoutError(f"layout JSON is not valid JSON: {e}") from None
        except RecursionError:
            raise LayoutError(
                "layout JSON is nested too deeply to be a layout; give {prompt, regions} objects"
            ) from None
        return cls.from_dict(data)

    # ----------------------------------------------------------------------------------------- formats
    @classmethod
    def from_pixels(
        cls, prompt: str, objects: Iterable[tuple[str, Sequence[float]]], width: int, height: int, **kw
    ) -> Layout:
        """From ``(phrase, (x0, y0, x1, y1))`` pixel corners on a ``width`` x ``height`` canvas."""
        regions = tuple(
            Region(phrase, box=(x0 / width, y0 / height, x1 / width, y1 / height))
            for phrase, (x0, y0, x1, y1) in objects
        )
        return cls(prompt=prompt, regions=regions, width=width, height=height, **kw)

    @classmethod
    def from_gligen(cls, prompt: str, phrases: Sequence[str], boxes: Sequence[Sequence[float]], **kw) -> Layout:
        if len(phrases) != len(boxes):
            raise LayoutError(f"GLIGEN input: {len(phrases)} phrases but {len(boxes)} boxes; give one box per phrase")
        return cls(prompt=prompt, regions=tuple(Region(p, box=_as_box(b)) for p, b in zip(phrases, boxes)), **kw)

    def to_gligen(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "gligen_phrases": self.phrases, "gligen_boxes": [list(b) for b in self.boxes]}

    @classmethod
    def from_lmd(
        cls, text_or_objects: str | Sequence, prompt: str | None = None, *, canvas: int = 512, clamp: bool = True
    ) -> Layout:
        """LMD's ``[('a green car', [x, y, w, h]), ...]`` (+ ``Background prompt:`` / ``Negative prompt:`` lines)."""
        background = negative = None
        if isinstance(text_or_objects, str):
            text = text_or_objects
            # rsplit: the markers come last, so a phrase that mentions them does not cut the object list
            if "Negative prompt:" in text:
                text, negative = text.rsplit("Negative prompt:", 1)
                negative = negative.strip() or None
            if "Background prompt:" in text:
                text, background = text.rsplit("Background prompt:", 1)
                background = background.strip() or None
            text = text.strip()
            try:
                objects = ast.literal_eval(text) if text else []
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
                raise LayoutError(
                    f"LMD layout: the object list is not a Python literal list of (phrase, [x, y, w, h]): {e}"
                ) from None
        else:
            objects = text_or_objects
        if not isinstance(objects, (list, tuple)):
            raise LayoutError(f"LMD layout: expected a list of (phrase, [x, y, w, h]), got {type(objects).__name__}")
        regions = []
        for i, item in enumerate(objects):
            try:
                phrase, coords = item
                if not isinstance(phrase, str) or isinstance(coords, (str, bytes)):
                    raise TypeError
                x, y, w, h = (float(v) for v in coords)
            except (TypeError, ValueError, OverflowError):
                raise LayoutError(
                    f"region {i}: LMD objects are (phrase, [x, y, w, h]) with numbers, got {item!r}"
                ) from None
            box = (x / canvas, y / canvas, (x + w) / canvas, (y + h) / canvas)
            regions.append(Region(phrase, box=_clamp(box) if clamp else box))
        if prompt is None:
            prompt = ", ".join(r.phrase for r in regions) or (background or "")
        return cls(
            prompt=prompt,
            regions=tuple(regions),
            width=canvas,
            height=canvas,
            background=background,
            negative_prompt=negative,
        )

    def to_lmd(self, *, canvas: int = 512) -> str:
        objects = []
        for r in self.regions:
            x0, y0, x1, y1 = _pixel_box(r.bbox, canvas, canvas)
            objects.append((r.phrase, [x0, y0, x1 - x0, y1 - y0]))
        lines = [
            repr(objects),
            f"Background prompt: {self.background or ''}",
            f"Negative prompt: {self.negative_prompt or ''}",
        ]
        return "\n".join(lines)

    # unambiguous (linear-time) patterns: the old lazy/\s* mixes backtracked for seconds on long blank lines
    _CSS = re.compile(r"(?P<name>[^{]*)\{(?P<body>[^}]*)\}\s*\Z")

    @classmethod
    def from_layoutgpt(cls, text: str, prompt: str, *, canvas: int = 64) -> Layout:
        """LayoutGPT CSS lines: ``name {height: Hpx; width: Wpx; top: Tpx; left: Lpx; }``."""
        regions = []
        for i, line in enumerate(ln for ln in text.splitlines() if ln.strip()):
            m = cls._CSS.match(line.strip())
            if not m:
                raise LayoutError(
                    f"region {i}: not a LayoutGPT CSS line 'name {{height: Hpx; width: Wpx; top: Tpx; left: Lpx; }}': "
                    f"{line!r}"
                )
            props = dict(
                (k.strip(), v.strip()) for k, v in (p.split(":", 1) for p in m["body"].split(";") if ":" in p)
            )
            try:
                h, w, t, left = (float(props[k].removesuffix("px")) for k in ("height", "width", "top", "left"))
            except (KeyError, ValueError):
                raise LayoutError(
                    f"region {i}: LayoutGPT line needs numeric height, width, top and left in px: {line!r}"
                ) from None
            box = (left / canvas, t / canvas, min(left + w, canvas) / canvas, min(t + h, canvas) / canvas)
            regions.append(Region(m["name"].strip(), box=_clamp(box)))
        return cls(prompt=prompt, regions=tuple(regions))

    def to_layoutgpt(self, *, canvas: int = 64) -> str:
        lines = []
        for i, r in enumerate(self.regions):
            _check_line_phrase(i, r.phrase, "{", "LayoutGPT")
            x0, y0, x1, y1 = _pixel_box(r.bbox, canvas, canvas)
            lines.append(f"{r.phrase} {{height: {y1 - y0}px; width: {x1 - x0}px; top: {y0}px; left: {x0}px; }}")
        return "\n".join(lines)

    _AR_LINE = re.compile(r"(?P<name>[^:]*):\s*[\(\[](?P<nums>[-\d.eE+,\s]*)[\)\]](?:\s*,)?\Z")

    @classmethod
    def from_refocus(cls, text: str, prompt: str, *, canvas: int = 512, clamp: bool = True) -> Layout:
        """Attention Refocusing's GPT-4 lines ``cat: (245, 176, 345, 336)`` (xyxy corners on ``canvas`` px)."""
        regions = []
        for i, line in enumerate(ln for ln in text.splitlines() if ln.strip()):
            m = cls._AR_LINE.match(line.strip())
            nums = [n for n in (m["nums"].replace(",", " ").split() if m else [])]
            try:
                if not m or len(nums) != 4:
                    raise ValueError
                box = tuple(float(n) / canvas for n in nums)
            except ValueError:  # also '1e', '-', '.' that the character class lets through
                raise LayoutError(
                    f"region {i}: expected 'name: (x0, y0, x1, y1)' with 4 numbers, got {line!r}"
                ) from None
            regions.append(Region(m["name"].strip(), box=_clamp(box) if clamp else _as_box(box)))
        return cls(prompt=prompt, regions=tuple(regions), width=canvas, height=canvas)

    def to_refocus(self, *, canvas: int = 512) -> str:
        lines = []
        for i, r in enumerate(self.regions):
            _check_line_phrase(i, r.phrase, ":", "Attention Refocusing")
            lines.append(f"{r.phrase}: ({', '.join(str(v) for v in _pixel_box(r.bbox, canvas, canvas))})")
        return "\n".join(lines)

    @classmethod
    def from_coco(
        cls,
        annotations: Sequence[dict],
        categories: Sequence[dict] | dict[int, str],
        prompt: str,
        width: int,
        height: int,
    ) -> Layout:
        """COCO ``annotations`` (``bbox`` = ``[x, y, w, h]`` pixels, ``category_id``) of one image."""
        names = categories if isinstance(categories, dict) else {c["id"]: c["name"] for c in categories}
        regions = []
        for i, ann in enumerate(annotations):
            if "bbox" not in ann or "category_id" not in ann:
                raise LayoutError(
                    f"region {i}: COCO annotation needs 'bbox' and 'category_id', got keys {sorted(ann)}"
                )
            if ann["category_id"] not in names:
                raise LayoutError(f"region {i}: category_id {ann['category_id']} is not among the categories given")
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
            except (TypeError, ValueError, OverflowError):
                raise LayoutError(
                    f"region {i}: COCO 'bbox' must be [x, y, w, h] in pixels, got {ann['bbox']!r}"
                ) from None
            regions.append(
                Region(
                    names[ann["category_id"]], box=_clamp((x / width, y / height, (x + w) / width, (y + h) / height))
                )
            )
        return cls(prompt=prompt, regions=tuple(regions), width=width, height=height)

    def to_coco(self, *, image_id: int = 0) -> dict[str, Any]:
        categories = {p: i + 1 for i, p in enumerate(dict.fromkeys(self.phrases))}
        annotations = []
        for k, r in enumerate(self.regions):
            x0, y0, x1, y1 = _pixel_box(r.bbox, self.width, self.height, ndigits=3)
            bbox = [x0, y0, round(x1 - x0, 3), round(y1 - y0, 3)]
            annotations.append({"id": k + 1, "image_id": image_id, "category_id": categories[r.phrase], "bbox": bbox})
        return {
            "images": [{"id": image_id, "width": self.width, "height": self.height}],
            "annotations": annotations,
            "categories": [{"id": i, "name": p} for p, i in categories.items()],
        }

    @classmethod
    def from_mask_png(
        cls, png: str | os.PathLike | np.ndarray, colours: dict[str, str] | str | os.PathLike, prompt: str
    ) -> Layout:
        """A colour-coded segmentation image plus ``{"(r, g, b)": "phrase"}`` (a dict, JSON text or a JSON file)."""
        from PIL import Image

        rgb = np.asarray(Image.open(png).convert("RGB")) if not isinstance(png, np.ndarray) else png
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise LayoutError(f"mask PNG must be an RGB image, got array of shape {rgb.shape}")
        if not isinstance(colours, dict):
            text = str(colours)
            try:
                colours = json.loads(text if text.lstrip().startswith("{") else Path(text).read_text())
            except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
                raise LayoutError(
                    f'mask colours must be a {{"(r, g, b)": phrase}} dict, JSON text or JSON file: {e}'
                ) from None
            if not isinstance(colours, dict):
                raise LayoutError(
                    f'mask colours must be a JSON object {{"(r, g, b)": phrase}}, got {type(colours).__name__}'
                )
        regions = []
        for i, (key, phrase) in enumerate(colours.items()):
            try:
                colour = tuple(int(v) for v in ast.literal_eval(key))
                if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
                    raise ValueError
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, OverflowError):
                raise LayoutError(
                    f"region {i} ({phrase!r}): colour key {str(key)[:80]!r} is not '(r, g, b)' "
                    "with 0 <= r, g, b <= 255"
                ) from None
            mask = np.all(rgb == np.array(colour, dtype=rgb.dtype), axis=-1)
            regions.append(Region(phrase, mask=mask))
        h, w = rgb.shape[:2]
        return cls(prompt=prompt, regions=tuple(regions), width=w, height=h)


# --------------------------------------------------------------------------------------------- validation
MAX_CANVAS = 16384


def _check_canvas_side(name: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise LayoutError(f"layout: field '{name}' must be a positive integer (pixels), got {value!r}")
    if value > MAX_CANVAS:  # masks are held at canvas size: refuse before allocating gigabytes
        raise LayoutError(
            f"layout: field '{name}' is {value} px; the canvas may be at most {MAX_CANVAS} px (use the image's size)"
        )


def validate(layout: Layout) -> None:
    """Raise LayoutError naming the region and field for any invalid input."""
    if not isinstance(layout.prompt, str) or not layout.prompt.strip():
        raise LayoutError("layout: field 'prompt' is empty; give the full text prompt")
    for name in ("width", "height"):
        _check_canvas_side(name, getattr(layout, name))
    for name in ("background", "negative_prompt"):
        value = getattr(layout, name)
        if value is not None and not isinstance(value, str):
            raise LayoutError(f"layout: field '{name}' must be text or None, got {type(value).__name__}")
    if len(layout.regions) > MAX_REGIONS:
        raise LayoutError(
            f"layout: {len(layout.regions)} regions, more than the maximum of {MAX_REGIONS} "
            "(GLIGEN's limit); merge or drop regions"
        )
    for i, region in enumerate(layout.regions):
        if not isinstance(region, Region):
            raise LayoutError(f"region {i}: expected a Region, got {type(region).__name__}")
        phrase = region.phrase
        if not isinstance(phrase, str) or not phrase.strip():
            raise LayoutError(f"region {i}: field 'phrase' is empty; give the words of the prompt this region grounds")
        where = _where(i, phrase)
        if region.box is None and region.mask is None:
            raise LayoutError(f"{where}: needs a 'box' [x0, y0, x1, y1] (normalised) or a 'mask'")
        if region.box is not None:
            object.__setattr__(region, "box", _check_box(region.box, where))
        if region.mask is not None:
            object.__setattr__(region, "mask", _checked_mask(region.mask, layout, where))


def _checked_mask(mask: Any, layout: Layout, where: str) -> np.ndarray:
    """The region's mask as a non-empty boolean array of the canvas's shape, or a LayoutError naming it."""
    mask = np.asarray(mask)
    if mask.shape != (layout.height, layout.width):
        raise LayoutError(
            f"{where}: field 'mask' has shape {mask.shape}, expected (height, width) = "
            f"({layout.height}, {layout.width}) of the canvas; resize the mask or set width/height"
        )
    if mask.dtype != bool:
        if not np.all(np.isin(mask, (0, 1))):
            raise LayoutError(f"{where}: field 'mask' must be binary (0/1 or bool)")
        mask = mask.astype(bool)
    if not mask.any():
        raise LayoutError(f"{where}: field 'mask' is empty (no pixel set); drop the region or draw its mask")
    return mask


_LAYOUT_FIELDS = {"version", "width", "height", "prompt", "negative_prompt", "background", "regions"}


def _cells(lo: float, hi: float, size: int, edges: BoxEdges = "cover") -> tuple[int, int]:
    """Grid cells ``[start, stop)`` of ``[lo, hi)`` (normalised) on ``size`` cells: every cell touched (``cover``) or
    the official code's ``int(hi * size)`` far edge (``truncate``); at least one, in range."""
    start = min(int(math.floor(lo * size + 1e-9)), size - 1)
    far = math.floor(hi * size + 1e-9) if edges == "truncate" else math.ceil(hi * size - 1e-9)
    stop = min(max(int(far), start + 1), size)
    return start, stop


def _pixel_box(box, width: int, height: int, ndigits: int | None = None) -> tuple:
    """Normalised xyxy to rounded pixel corners, keeping at least one unit (1 px, or ``10**-ndigits`` px) of extent
    inside the canvas, so a valid sub-pixel box exports to something that parses back into a valid box."""
    unit = 1 if ndigits is None else 10.0**-ndigits
    x0, y0 = min(round(box[0] * width, ndigits), width - unit), min(round(box[1] * height, ndigits), height - unit)
    x1, y1 = max(round(box[2] * width, ndigits), x0 + unit), max(round(box[3] * height, ndigits), y0 + unit)
    return x0, y0, x1, y1


def _check_line_phrase(index: int, phrase: str, forbidden: str, fmt: str) -> None:
    if forbidden in phrase or len(phrase.splitlines()) != 1:
        raise LayoutError(
            f"{_where(index, phrase)}: field 'phrase' cannot be written as a {fmt} line (contains {forbidden!r} "
            "or a line break); rename the region or use JSON"
        )


def _clamp(box) -> tuple[float, float, float, float]:
    """Clamp to the canvas (LLMs and LMD overflow it); degenerate results still fail validation."""
    return _as_box([min(max(float(v), 0.0), 1.0) for v in box])


def _as_box(values: Any) -> tuple[float, float, float, float]:
    """For the type checker: a box's values as a tuple; Region's validation checks there are 4 numbers."""
    return tuple(values)


def _coverage(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Share of each cell of an ``(height, width)`` grid covered by ``mask`` (box filter)."""
    from PIL import Image

    return np.asarray(
        Image.fromarray(mask.astype(np.float32)).resize((width, height), Image.Resampling.BOX), dtype=np.float32
    ).clip(0, 1)


def _box_weights(start: int, stop: int, in_size: int, out_size: int) -> list[np.ndarray]:
    """Per output cell, the normalised weights PIL's BOX resize gives the pixels ``[start, stop)`` of ``in_size``
    (a pixel counts when its centre falls inside the cell; float64, in PIL's order)."""
    scale = in_size / out_size
    support = 0.5 * max(scale, 1.0)
    inv = 1.0 / max(scale, 1.0)
    weights = []
    for cell in range(out_size):
        centre = (cell + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), in_size)
        pixels = np.arange(lo, hi)
        offsets = (pixels - centre + 0.5) * inv
        w = ((offsets > -0.5) & (offsets <= 0.5)).astype(np.float64)
        total = w.sum()
        w = w / total if total else w
        weights.append(w[(pixels >= start) & (pixels < stop)])
    return weights


def _box_coverage(
    rows: tuple[int, int], cols: tuple[int, int], canvas_h: int, canvas_w: int, height: int, width: int
) -> np.ndarray:
    """The box filter of a pixel box's canvas mask (``_coverage``), computed at the ``(height, width)`` grid: PIL's two
    passes on a rectangle, summed in its order, so values match bit for bit without a canvas-size array."""
    col_share = np.array([np.add.accumulate(w)[-1] if w.size else 0.0 for w in _box_weights(*cols, canvas_w, width)])
    col_share = col_share.astype(np.float32).astype(np.float64)  # the horizontal pass writes float32
    out = np.zeros((height, width), dtype=np.float32)
    for r, weights in enumerate(_box_weights(*rows, canvas_h, height)):
        acc = np.zeros(width, dtype=np.float64)
        for w in weights:
            acc += col_share * w
        out[r] = acc
    return out.clip(0, 1)


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    coverage = _coverage(mask, height, width)
    out = (coverage >= 0.5).astype(np.float32)
    if not out.any():
        out[np.unravel_index(np.argmax(coverage), coverage.shape)] = 1.0
    return out


def _rle_encode(mask: np.ndarray) -> list[int]:
    """Run lengths of the row-major flattened mask, starting with a run of False."""
    flat = mask.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat[0] else runs


def _rle_decode(runs: Sequence[int], shape: tuple[int, int], index: int) -> np.ndarray:
    if (
        not isinstance(runs, list)
        or any(not isinstance(r, int) or isinstance(r, bool) or r < 0 for r in runs)
        or sum(runs) != shape[0] * shape[1]
    ):
        raise LayoutError(
            f"region {index}: field 'mask_rle' must be run lengths summing to width*height = {shape[0] * shape[1]}"
        )
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape(shape)


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long or with a NUL byte is JSON text, not a file
        return False


def _current_umask() -> int:
    """The process umask (os.umask only reads it by setting it, so it is put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write through a temporary file in the same folder and rename it: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp makes 0600; a plain open() would honour the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
