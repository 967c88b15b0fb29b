"""Parsing what chat models reply into a Layout: AR lines, LMD lists, JSON, inside code fences or among prose.

Linear time in the reply's length: every scan is bounded (names and number groups in AR lines, the bracket
matching of LMD lists, the JSON starts tried), a reply over :data:`MAX_REPLY_CHARS` is refused before parsing and
brackets nested deeper than :data:`MAX_NESTING` are refused with a clear error, never a RecursionError.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

from ..layout import Layout, LayoutError, Region
from .result import CANVAS
from .vocabulary import singular

MAX_REPLY_CHARS = 65536  # a layout reply is a few KB; more is not a layout
MAX_NESTING = 100  # brackets open this deep (nested or never closed) are not a layout: a JSON layout needs 5
_BRACKETS = re.compile(r"[\[\](){}]")
_FENCE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_AR_LINE = re.compile(
    # at a line start or after the previous entry ("cat: (..), dog: (..)" on one line)
    # every repeat is bounded, so each start costs a constant and a line of garbage costs linear time
    r"(?:^|(?<=[,;:.)\]]))[ \t]{0,40}(?:[-*•]{1,8}\s{0,8}|\d{1,6}[.)]\s{1,8})?[*_`\"']{0,8}"
    r"(?P<name>[^:\n()\[\]{}\",;]{0,120}?)[*_`\"']{0,8}\s{0,40}[:=]\s{0,40}"
    r"[\(\[](?P<nums>[^\)\]\n]{0,200})[\)\]]",
    re.M,
)
_AR_ANCHOR = re.compile(r"[:=]\s{0,40}[\(\[]")  # every AR line has one: text without it is not scanned
_BACKGROUND = re.compile(r"^[ \t*_`#-]{0,20}background(?:\s+prompt)?[*_`]*\s*:[ \t]*(?P<v>.*)$", re.I | re.M)
_NEGATIVE = re.compile(r"^[ \t*_`#-]{0,20}negative(?:\s+prompt)?[*_`]*\s*:[ \t]*(?P<v>.*)$", re.I | re.M)
_NAME_KEYS = ("phrase", "name", "label", "object", "class", "category", "text", "caption")
_BOX_KEYS = ("box", "bbox", "bounding_box", "boundingbox", "coords", "coordinates", "xyxy", "position", "rect")
_META_KEYS = {
    "background",
    "background_prompt",
    "bg_prompt",
    "negative_prompt",
    "negative",
    "width",
    "height",
    "prompt",
    "version",
}
_LIST_KEYS = ("regions", "objects", "boxes", "layout", "bboxes", "items", "detections", "annotations")
_JSON_KEYS = set(_NAME_KEYS) | set(_BOX_KEYS) | set(_LIST_KEYS)  # never object names in AR lines


def _numbers(values: Any) -> list[float] | None:
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        return None
    try:
        out = [float(v) for v in values if not isinstance(v, bool)]
    except (TypeError, ValueError):
        return None
    return out if len(out) == 4 and all(math.isfinite(v) for v in out) else None


def _box_from_dict(d: dict) -> tuple[list[float], str] | None:
    for keys, fmt in ((("x0", "y0", "x1", "y1"), "xyxy"), (("xmin", "ymin", "xmax", "ymax"), "xyxy"),
                      (("x_min", "y_min", "x_max", "y_max"), "xyxy"), (("left", "top", "right", "bottom"), "xyxy"),
                      (("x", "y", "w", "h"), "xywh"), (("x", "y", "width", "height"), "xywh")):  # fmt: skip
        if all(k in d for k in keys):
            nums = _numbers([d[k] for k in keys])
            if nums is not None:
                return nums, fmt
    return None


def _json_items(value: Any):
    """``(items, background, negative, canvas)`` from a parsed JSON value, or None when it is not a layout."""
    background = negative = None
    canvas = (CANVAS, CANVAS)
    items = None
    if isinstance(value, dict):
        lowered = {str(k).lower(): v for k, v in value.items()}
        background = next(
            (lowered[k] for k in ("background", "background_prompt", "bg_prompt") if isinstance(lowered.get(k), str)),
            None,
        )
        negative = next((lowered[k] for k in ("negative_prompt", "negative") if isinstance(lowered.get(k), str)), None)
        w, h = lowered.get("width"), lowered.get("height")
        if isinstance(w, int) and isinstance(h, int) and not isinstance(w, bool) and w > 0 and h > 0:
            canvas = (w, h)
        items = next((lowered[k] for k in _LIST_KEYS if isinstance(lowered.get(k), list)), None)
        if items is None:  # {"cat": [x0, y0, x1, y1], ...}: every key but the known fields names a box
            pairs = [[k, v] for k, v in value.items() if str(k).lower() not in _META_KEYS]
            items = pairs if pairs and all(_numbers(v) is not None for _, v in pairs) else None
    elif isinstance(value, list):
        items = value
    if not items:
        return None
    out = []
    for item in items:
        if isinstance(item, dict):
            low = {str(k).lower(): v for k, v in item.items()}
            name = next((low[k] for k in _NAME_KEYS if isinstance(low.get(k), str)), None)
            box = next(((nums, "xyxy") for k in _BOX_KEYS if (nums := _numbers(low.get(k))) is not None), None)
            if box is None:
                box = next(
                    (_box_from_dict(low[k]) for k in _BOX_KEYS if isinstance(low.get(k), dict)), None
                ) or _box_from_dict(low)
        elif isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
            name, box = item[0], ((nums, "xyxy") if (nums := _numbers(item[1])) is not None else None)
        else:
            return None
        if name is None or box is None:
            return None
        out.append((name, box[0], box[1]))
    return out, background, negative, canvas


def _json_candidates(text: str):
    decoder = json.JSONDecoder()
    tried = 0
    for m in re.finditer(r"[\[{]", text):
        tried += 1
        if tried > 500:
            return
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        found = _json_items(value)
        if found is not None:
            yield found


def _bracket_end(text: str, start: int, budget: list[int]) -> int | None:
    """The end of the bracketed expression at ``start`` (quotes respected), or None. Each character looked at is
    taken from ``budget[0]``: when it runs out the scan stops, so all scans together stay linear in the text."""
    depth, quote, i = 0, None, start
    while i < len(text):
        budget[0] -= 1
        if budget[0] < 0:
            return None
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _lmd_items(text: str):
    budget = [4 * len(text) + 1000]
    for m in re.finditer(r"\[\s*[\(\[]\s*['\"]", text):
        if budget[0] < 0:
            break
        end = _bracket_end(text, m.start(), budget)
        if end is None:
            continue
        try:
            objects = ast.literal_eval(text[m.start() : end])
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        out = []
        for item in objects:
            if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
                break
            nums = _numbers(item[1])
            if nums is None:
                raise LayoutError(f"LMD object {item!r}: expected (phrase, [x, y, w, h]) with 4 numbers")
            out.append((item[0], nums, "xywh"))
        else:
            if out:
                return out
    return None


def _ar_items(text: str):
    if not _AR_ANCHOR.search(text):
        return None
    out = []
    for m in _AR_LINE.finditer(text):
        name = m["name"].strip().strip("*_`\"' ")
        if not name or name.lower().startswith(("background", "negative")) or name.lower() in _JSON_KEYS:
            continue
        parts = [p for p in re.split(r"[,\s]+", m["nums"].strip()) if p]
        try:
            nums = [float(p.rstrip("px")) for p in parts]
        except ValueError:
            raise LayoutError(
                f"line {m.group(0).strip()!r}: expected 'name: (x0, y0, x1, y1)' with 4 numbers"
            ) from None
        if len(nums) != 4 or not all(math.isfinite(v) for v in nums):
            raise LayoutError(
                f"line {m.group(0).strip()!r}: expected 'name: (x0, y0, x1, y1)' with 4 numbers, got {len(nums)}"
            )
        out.append((name, nums, "xyxy"))
    return out or None


def _to_regions(items, canvas: tuple[int, int], notes: list[str], guess_xywh: bool = False) -> list[Region]:
    """Pixel or normalised boxes (xyxy or xywh) -> clamped normalised regions. With ``guess_xywh`` (JSON, where
    "bbox" may be COCO's [x, y, w, h]), corner boxes that are inverted but valid as x, y, w, h are read that way."""
    values = [v for _, nums, _ in items for v in nums]
    normalised = max(values) <= 1.0 and min(values) >= 0.0 and any(v != int(v) for v in values)
    # xyxy boxes that are inverted everywhere they can be but valid as x, y, w, h were written as LMD boxes
    if (
        guess_xywh
        and all(fmt == "xyxy" for _, _, fmt in items)
        and any(n[2] <= n[0] or n[3] <= n[1] for _, n, _ in items)
    ):
        if all(n[2] > 0 and n[3] > 0 for _, n, _ in items):
            items = [(name, nums, "xywh") for name, nums, _ in items]
            notes.append("boxes read as [x, y, width, height] (they are inverted as corners)")
    w, h = (1.0, 1.0) if normalised else canvas
    regions = []
    clamped = False
    for name, (a, b, c, d), fmt in items:
        box = (a / w, b / h, (a + c) / w, (b + d) / h) if fmt == "xywh" else (a / w, b / h, c / w, d / h)
        fixed = tuple(min(max(v, 0.0), 1.0) for v in box)
        clamped |= fixed != box
        regions.append(Region(name, box=fixed))
    if clamped:
        notes.append("boxes outside the canvas were clamped to it")
    return regions


def _check_size(text: str) -> None:
    """Refuse replies too long or too deeply nested to be a layout, before any parsing (linear, no recursion)."""
    if len(text) > MAX_REPLY_CHARS:
        raise LayoutError(
            f"the reply is {len(text)} characters, more than the {MAX_REPLY_CHARS} a layout needs; not parsed "
            "(expected a few lines 'name: (x0, y0, x1, y1)')"
        )
    depth = deepest = 0
    for m in _BRACKETS.finditer(text):
        depth = depth + 1 if m.group() in "([{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING:
        raise LayoutError(
            f"the reply has brackets open {deepest} deep (nested or never closed), more than the {MAX_NESTING} a "
            "layout needs; not parsed "
            "(expected a few lines 'name: (x0, y0, x1, y1)')"
        )


def parse_reply(text: str, prompt: str, canvas: int = CANVAS) -> tuple[Layout, list[str]]:
    if not isinstance(text, str) or not text.strip():
        raise LayoutError("the reply is empty; expected lines 'name: (x0, y0, x1, y1)'")
    _check_size(text)
    notes: list[str] = []
    blocks = [m.group(1) for m in _FENCE.finditer(text) if m.group(1).strip()]
    first_error: LayoutError | None = None
    for candidate in blocks + [text]:
        found = None
        for parsed in _json_candidates(candidate):
            found = parsed
            break
        if found is not None:
            items, background, negative, size = found
            guess = True
        else:
            guess = False
            background = negative = None
            size = (canvas, canvas)
            try:
                items = _lmd_items(candidate) or _ar_items(candidate)
            except LayoutError as e:
                first_error = first_error or e
                continue
        if not items:
            continue
        if background is None:
            m = _BACKGROUND.search(text)
            background = m["v"].strip().strip("`*\"'") or None if m else None
        if negative is None:
            m = _NEGATIVE.search(text)
            negative = m["v"].strip().strip("`*\"'") or None if m else None
        regions = _to_regions(items, size, notes, guess)
        layout = Layout(
            prompt=prompt,
            regions=tuple(regions),
            width=canvas,
            height=canvas,
            background=background,
            negative_prompt=negative,
        )
        return layout, notes
    if first_error is not None:
        raise first_error
    raise LayoutError(
        "no boxes found in the reply; expected one line per object 'name: (x0, y0, x1, y1)' (512 px corners), "
        'an LMD list [(\'name\', [x, y, w, h]), ...], or JSON {"regions": [{"phrase", "box"}]}'
    )


def parse_llm_reply(text: str, prompt: str, *, canvas: int = CANVAS) -> Layout:
    """Parse what chat models return into a Layout for ``prompt`` (raises LayoutError when nothing usable is found).

    Accepts AR lines ``name: (x0, y0, x1, y1)`` (or ``[...]``, bullets, numbering, bold names), LMD's
    ``[('a cat', [x, y, w, h]), ...]`` with ``Background prompt:`` / ``Negative prompt:`` lines, JSON (a dict with
    ``regions``/``objects``/``boxes`` or a list of ``{phrase|name|label, box|bbox}``), anywhere in the text, inside
    ````` code fences or among prose. Pixel coordinates are on a ``canvas`` x ``canvas`` image (JSON may give its
    own ``width``/``height``); all-fractional values in [0, 1] are taken as normalised. Boxes are clamped to the
    canvas.
    """
    return parse_reply(text, prompt, canvas)[0]


def phrases_missing(layout: Layout) -> list[str]:
    """Region phrases whose words (last word in singular or plural) do not occur in the prompt."""
    words = re.findall(r"[a-z0-9'\-]+", layout.prompt.lower())
    text = " " + " ".join(words) + " "
    missing = []
    for phrase in dict.fromkeys(layout.phrases):
        pw = re.findall(r"[a-z0-9'\-]+", phrase.lower())
        if not pw:
            missing.append(phrase)
            continue
        variants = {pw[-1], singular(pw[-1]), pw[-1] + "s", pw[-1] + "es"}
        if not any(f" {' '.join(pw[:-1] + [v])} " in text for v in variants):
            missing.append(phrase)
    return missing
