"""The colour check that COCO-MIG-style suites need: which named colour an instance is.

It follows COCO-MIG's evaluator (``LeyRio/MIG_Bench: eval_mig.py``, ``check_on_image`` / ``check_on_color_cv``):
pixels are converted to OpenCV's 8-bit HSV (H 0-180, S and V 0-255) and each colour is a box of HSV values
(``cv2.inRange``, both ends inclusive). MIG_Bench's seven colours and ranges are kept exactly (``BASIC_COLOURS``);
it calls an instance colour X when at least 20% of the instance's pixels fall in X's range (:func:`has_colour`).

Where this differs from MIG_Bench:

- **Pixels.** MIG_Bench segments the *ground-truth box* with SAM ViT-H and greys out the rest. Here the pixels are
  the detection's ``mask`` when the detector segments (YOLOv8-seg, the shapes evaluator), else every pixel of
  ``box``: background inside a box counts too, so a thin object in a large box may read as its background.
- **One answer.** :func:`dominant_colour` names the colour covering the most pixels. Each pixel counts for one
  colour only, the first of ``PRECEDENCE`` whose range holds it (MIG_Bench's ranges overlap: hue 6 is red and
  brown, hues 20-25 brown and yellow), so "is it red?" (:func:`has_colour`, MIG_Bench's rule) and "what colour is
  it?" can disagree on a red object with large black parts.
- **More colours.** ``EXTRA_COLOURS`` (orange, purple, pink, grey) are not MIG_Bench's: orange, purple and grey use
  the common OpenCV HSV table MIG_Bench's ranges derive from (orange brightened so it is not brown); pink is ours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from ...errors import InputError
from .base import Box

HsvRange = tuple[tuple[int, int, int], tuple[int, int, int]]  # (H, S, V) low, high; inclusive, OpenCV's 8-bit scale

# MIG_Bench eval_mig.py color_dict, verbatim (red is two hue bands either side of 0/180).
MIG_BENCH_RANGES: dict[str, tuple[HsvRange, ...]] = {
    "red": (((0, 43, 35), (6, 255, 255)), ((156, 43, 35), (180, 255, 255))),
    "blue": (((78, 43, 35), (124, 255, 255)),),
    "green": (((35, 43, 35), (77, 255, 255)),),
    "yellow": (((20, 43, 35), (34, 255, 255)),),
    "black": (((0, 0, 0), (180, 255, 35)),),
    "white": (((0, 0, 221), (180, 43, 255)),),
    "brown": (((6, 43, 35), (25, 255, 255)),),
}
EXTRA_RANGES: dict[str, tuple[HsvRange, ...]] = {
    "orange": (((6, 100, 200), (25, 255, 255)),),  # bright and saturated; darker oranges stay brown
    "purple": (((125, 43, 35), (155, 255, 255)),),
    "pink": (((140, 43, 150), (180, 170, 255)), ((0, 43, 150), (6, 170, 255))),  # light, less saturated reds
    "grey": (((0, 0, 36), (180, 42, 220)),),
}
COLOUR_RANGES = {**MIG_BENCH_RANGES, **EXTRA_RANGES}
ALIASES = {"gray": "grey", "colour": "", "color": ""}
BASIC_COLOURS: tuple[str, ...] = tuple(MIG_BENCH_RANGES)
EXTRA_COLOURS: tuple[str, ...] = tuple(EXTRA_RANGES)
# Which colour a pixel counts for when ranges overlap: the narrower, more specific range first.
PRECEDENCE: tuple[str, ...] = (
    "black",
    "white",
    "grey",
    "pink",
    "orange",
    "red",
    "yellow",
    "brown",
    "green",
    "blue",
    "purple",
)
MIG_BENCH_MIN_FRACTION = 0.2  # eval_mig.py: the colour is right when >= 20% of the instance's pixels have it
NO_COLOUR = "none"  # dominant_colour's answer when no pixel is in any of the asked colours' ranges


def opencv_hsv(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` uint8 RGB -> uint8 HSV exactly as ``cv2.cvtColor(..., COLOR_RGB2HSV)`` computes it for 8-bit
    images (H = degrees / 2 in 0-180, S and V in 0-255), without needing OpenCV: the same 12-bit fixed-point
    division tables and rounding as OpenCV's ``RGB2HSV_b``."""
    rgb = np.asarray(rgb).astype(np.int64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    diff = v - rgb.min(axis=-1)
    s = (diff * _S_DIV[v] + (1 << 11)) >> 12
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * _H_DIV[diff] + (1 << 11)) >> 12
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], axis=-1).astype(np.uint8)


def _division_table(numerator: int) -> np.ndarray:
    """OpenCV's ``sdiv_table`` / ``hdiv_table``: round(numerator / i) for i in 0..255, 0 at i = 0."""
    i = np.arange(256, dtype=np.float64)
    return np.where(i > 0, np.round(numerator / np.where(i > 0, i, 1.0)), 0).astype(np.int64)


_S_DIV = _division_table(255 << 12)
_H_DIV = _division_table(round((180 << 12) / 6.0))


def canonical(name: str) -> str:
    """``"Gray"`` -> ``"grey"``; an unknown colour is one line naming the known ones."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in COLOUR_RANGES:
        raise InputError(f"colour: unknown {name!r}; choose one of {', '.join(COLOUR_RANGES)} (or 'gray')")
    return key


def in_colour(hsv: np.ndarray, name: str) -> np.ndarray:
    """Which pixels of ``hsv`` (OpenCV 8-bit) lie in ``name``'s range: MIG_Bench's ``cv2.inRange``, inclusive."""
    out = np.zeros(hsv.shape[:-1], dtype=bool)
    for low, high in COLOUR_RANGES[canonical(name)]:
        out |= np.all((hsv >= np.array(low)) & (hsv <= np.array(high)), axis=-1)
    return out


def instance_pixels(image: Image.Image, box: Box, mask: np.ndarray | None = None) -> np.ndarray:
    """The ``(N, 3)`` RGB pixels of one instance: those of ``mask`` (a boolean array of the image's size) when
    given, else every pixel of ``box`` (relative xyxy, far edge exclusive; at least one pixel)."""
    rgb = np.asarray(image.convert("RGB"))
    height, width = rgb.shape[:2]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (height, width):
            raise InputError(f"mask: shape {mask.shape} is not the image's ({height}, {width}); pass the detection's")
        return rgb[mask]
    if len(box) != 4 or not all(np.isfinite(v) for v in box):
        raise InputError(f"box: {box!r} is not four finite numbers x0, y0, x1, y1 (relative to the image)")
    x0, x1 = (int(round(min(max(v, 0.0), 1.0) * width)) for v in (box[0], box[2]))
    y0, y1 = (int(round(min(max(v, 0.0), 1.0) * height)) for v in (box[1], box[3]))
    x0, y0 = min(x0, width - 1), min(y0, height - 1)
    return rgb[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].reshape(-1, 3)


def colour_fractions(
    image: Image.Image, box: Box, mask: np.ndarray | None = None, names: Sequence[str] = BASIC_COLOURS
) -> dict[str, float]:
    """For each colour of ``names``, the fraction of the instance's pixels inside its range (ranges overlap, so the
    fractions may add up to more than 1): MIG_Bench's measure. An empty mask gives 0 for every colour."""
    pixels = instance_pixels(image, box, mask)
    keys = [canonical(n) for n in names]
    if len(pixels) == 0:
        return dict.fromkeys(keys, 0.0)
    hsv = opencv_hsv(pixels)
    return {k: float(in_colour(hsv, k).mean()) for k in keys}


def has_colour(
    image: Image.Image,
    box: Box,
    colour: str,
    mask: np.ndarray | None = None,
    min_fraction: float = MIG_BENCH_MIN_FRACTION,
) -> bool:
    """MIG_Bench's rule: the instance is ``colour`` when at least ``min_fraction`` of its pixels are in range."""
    return colour_fractions(image, box, mask, [colour])[canonical(colour)] >= min_fraction


def dominant_colour(
    image: Image.Image, box: Box, mask: np.ndarray | None = None, names: Sequence[str] = BASIC_COLOURS
) -> str:
    """The colour of ``names`` covering the most of the instance's pixels, each pixel counted once (for the first
    colour of ``PRECEDENCE`` among ``names`` whose range holds it); ``"none"`` when no pixel is in any range.
    Ties go to the colour listed first in ``names``."""
    keys = list(dict.fromkeys(canonical(n) for n in names))
    if not keys:
        raise InputError("names: no colour given; pass at least one of " + ", ".join(COLOUR_RANGES))
    pixels = instance_pixels(image, box, mask)
    if len(pixels) == 0:
        return NO_COLOUR
    hsv = opencv_hsv(pixels)
    unclaimed = np.ones(len(hsv), dtype=bool)
    counts = dict.fromkeys(keys, 0)
    for name in (c for c in PRECEDENCE if c in counts):
        claimed = unclaimed & in_colour(hsv, name)
        counts[name] = int(claimed.sum())
        unclaimed &= ~claimed
    best = max(keys, key=lambda k: counts[k])  # max keeps the first of equal counts: names' order
    return best if counts[best] > 0 else NO_COLOUR
