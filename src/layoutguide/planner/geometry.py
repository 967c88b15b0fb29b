"""Box geometry for the rule planner: cells on a grid, boxes with their objects' proportions, relation checks."""

from __future__ import annotations

import math

MARGIN = 0.04  # canvas border
FILL = 0.8  # box side / cell side
WIDE_ASPECT = 2.0  # max width / height of a support ("a cat on top of a table"): a surface to stand on
MAX_SIDE = 0.7  # a lone object does not fill the canvas
SEPARATION = 0.05  # required centre distance along a relation's axis
# ... and by how much it must exceed the distance across it: generated objects drift a few pixels from their boxes,
# and a pair planned on the diagonal (two above two, in a 2x2 grid) then breaks the relation half the time
DOMINANCE = 0.05
H_KINDS = ("left of", "right of", "next to")
# Width / height of a box, by singular head noun: a box keeps its object's usual proportions, as the boxes layout
# models are trained on do (a person is tall, a bus is wide; every shapes-world box is square). Rough typical
# proportions of upright, whole objects; a noun not listed gets a square box.
ASPECTS = {
    **dict.fromkeys(
        (
            "person",
            "man",
            "woman",
            "boy",
            "girl",
            "child",
            "kid",
            "lady",
            "player",
            "soldier",
            "astronaut",
            "robot",
            "statue",
        ),
        0.45,
    ),
    **dict.fromkeys(("bottle", "candle", "vase", "lamp", "tower", "lighthouse", "rocket", "door", "penguin"), 0.45),
    **dict.fromkeys(
        ("tree", "giraffe", "chair", "flower", "plant", "cactus", "glass", "mug", "book", "window", "building"), 0.7
    ),
    **dict.fromkeys(
        (
            "dog",
            "horse",
            "cow",
            "sheep",
            "zebra",
            "elephant",
            "deer",
            "bear",
            "lion",
            "tiger",
            "pig",
            "fox",
            "umbrella",
            "laptop",
            "tv",
            "monitor",
        ),
        1.3,
    ),
    **dict.fromkeys(
        (
            "car",
            "bicycle",
            "bike",
            "motorcycle",
            "boat",
            "table",
            "desk",
            "bed",
            "banana",
            "sandwich",
            "crocodile",
            "fish",
        ),
        1.6,
    ),
    **dict.fromkeys(("bus", "truck", "train", "airplane", "plane", "bench", "couch", "sofa", "skateboard"), 2.0),
}


def arrange(area, n: int, line: str | None = None) -> list[tuple[float, float, float, float]]:
    """``n`` cells in ``area``: the columns x rows grid with the largest square-ish cells, last row centred.
    ``line="row"`` / ``"column"`` forces one row / one column."""
    x0, y0, x1, y1 = area
    w, h = x1 - x0, y1 - y0
    best: tuple[tuple[float, int, int], int, int] | None = None
    choices = {"row": [n], "column": [1]}.get(line or "", range(1, n + 1))
    for cols in choices:
        rows = math.ceil(n / cols)
        score = (round(min(w / cols, h / rows), 9), -rows * cols, -rows)
        if best is None or score > best[0]:
            best = (score, cols, rows)
    assert best is not None
    _, cols, rows = best
    cw, ch = w / cols, h / rows
    cells = []
    for k in range(n):
        r, c = divmod(k, cols)
        offset = (cols - min(cols, n - r * cols)) * cw / 2
        cells.append((x0 + offset + c * cw, y0 + r * ch, x0 + offset + (c + 1) * cw, y0 + (r + 1) * ch))
    return cells


def box_in(cell, *, aspect: float = 1.0, wide: bool = False, width_scale: float = 1.0) -> list[float]:
    """A box centred in ``cell``, with width / height ``aspect``: as large as ``FILL`` of the cell and
    ``MAX_SIDE`` allow, then ``width_scale`` of that (both sides). A ``wide`` support takes the cell's width up
    to ``WIDE_ASPECT`` times its height instead, so what stands on it has room."""
    x0, y0, x1, y1 = cell
    cw, ch = (x1 - x0) * FILL, (y1 - y0) * FILL
    if wide:
        bh = min(ch, cw / max(aspect, 1.0), MAX_SIDE)
        bw = min(cw, bh * max(aspect, WIDE_ASPECT), 0.9)
    else:
        bw = min(cw, ch * aspect, MAX_SIDE, MAX_SIDE * aspect)
        bh = bw / aspect
    bw, bh = bw * width_scale, bh * width_scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]


def centre(b) -> tuple[float, float]:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def overlap(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def relation_ok(a, kind: str, b) -> bool:
    """Box ``a`` is ``kind`` box ``b``: centres apart by more than ``SEPARATION`` along the relation's axis and
    farther than across it by ``DOMINANCE`` (the shapes evaluator's rule, with margins); "on top of" touches and
    overlaps horizontally; "x<" / "y<" (absolute positions) only order the centres."""
    (ax, ay), (bx, by) = centre(a), centre(b)
    dx, dy = bx - ax, by - ay
    if kind == "left of":
        return dx > SEPARATION and abs(dx) >= abs(dy) + DOMINANCE
    if kind == "right of":
        return -dx > SEPARATION and abs(dx) >= abs(dy) + DOMINANCE
    if kind == "above":
        return dy > SEPARATION and abs(dy) >= abs(dx) + DOMINANCE
    if kind == "below":
        return -dy > SEPARATION and abs(dy) >= abs(dx) + DOMINANCE
    if kind == "next to":
        return abs(dx) > SEPARATION and abs(dx) >= abs(dy) + DOMINANCE
    if kind == "on top of":
        return abs(a[3] - b[1]) < 1e-6 and min(a[2], b[2]) > max(a[0], b[0]) and ay < by
    if kind == "x<":
        return dx > SEPARATION
    if kind == "y<":
        return dy > SEPARATION
    raise ValueError(f"unknown relation {kind!r}")  # pragma: no cover


def problems(boxes: list[list[list[float]]], checks: list[tuple[int, str, int, str]], names: list[str]) -> list[str]:
    """Violated relations (every instance pair must satisfy them), overlapping boxes, boxes off the canvas."""
    out = []
    for a, kind, b, label in checks:
        if not all(relation_ok(p, kind, q) for p in boxes[a] for q in boxes[b]):
            out.append(label)
    flat = [(g, box) for g, group_boxes in enumerate(boxes) for box in group_boxes]
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            if overlap(flat[i][1], flat[j][1]) > 1e-9:
                out.append(f"boxes of {names[flat[i][0]]!r} and {names[flat[j][0]]!r} overlap")
    if any(min(box) < -1e-9 or max(box) > 1 + 1e-9 for _, box in flat):
        out.append("a box leaves the canvas")
    return list(dict.fromkeys(out))


def on_canvas(box) -> tuple[float, float, float, float]:
    """``box`` moved onto the canvas where it sticks out (a stack taller than the canvas), then clipped to it, so no
    box loses its area."""
    out = list(box)
    for axis in (0, 1):
        lo, hi = out[axis], out[axis + 2]
        shift = -lo if lo < 0 else min(0.0, 1 - hi)
        out[axis], out[axis + 2] = lo + shift, hi + shift
    x0, y0, x1, y1 = (min(max(round(v, 6), 0.0), 1.0) for v in out)
    return x0, y0, x1, y1


def mid(boxes, axis: int) -> float:
    return (min(b[axis] for b in boxes) + max(b[axis + 2] for b in boxes)) / 2


def shift(boxes, dx: float, dy: float) -> None:
    for b in boxes:
        b[0] += dx
        b[2] += dx
        b[1] += dy
        b[3] += dy
