"""The shapes world: coloured shapes on a plain canvas, with exact captions, boxes and masks.

Every scene is a pure function of its seed, so a benchmark suite is a list of seeds. Training uses seeds
``[0, TRAIN_SEEDS)``; benchmarks draw from ``BENCH_SEED_OFFSET`` upwards, which training never sees.

Captions name colours, shapes and counts but never positions ("a red circle and two blue squares"): as
with real Stable Diffusion, where things go must come from the layout methods, not from the prompt.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import numpy as np
from PIL import Image, ImageDraw

from ..layout import Layout, Region

IMAGE_SIZE = 64
BACKGROUND = (255, 255, 255)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
}
SHAPES = ("circle", "square", "triangle")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles"}
SINGULARS = {v: k for k, v in PLURALS.items()}
NUMBER_WORDS = {1: "a", 2: "two", 3: "three", 4: "four"}
WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4}
RELATIONS = ("left of", "right of", "above", "below")
# Side of a shape's (square) box in pixels at IMAGE_SIZE 64: small, medium, large.
SIZE_RANGES = {"small": (12, 16), "medium": (17, 23), "large": (24, 30)}
MIN_GAP = 2  # pixels between boxes, so objects never touch and masks stay exact
TRAIN_SEEDS = 1_000_000
BENCH_SEED_OFFSET = 10_000_000


@dataclasses.dataclass(frozen=True)
class ShapeObject:
    """One object: colour, shape and its square box in pixels ``(x0, y0, x1, y1)``, x1/y1 exclusive."""

    colour: str
    shape: str
    box: tuple[int, int, int, int]

    @property
    def phrase(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclasses.dataclass(frozen=True)
class Relation:
    """``subject`` and ``object`` are indices into the scene's objects; ``relation`` one of RELATIONS."""

    subject: int
    relation: str
    object: int


@dataclasses.dataclass(frozen=True)
class Scene:
    seed: int
    objects: tuple[ShapeObject, ...]
    size: int = IMAGE_SIZE
    relation: Relation | None = None

    @property
    def caption(self) -> str:
        return caption_for(self.objects)

    @property
    def relation_sentence(self) -> str | None:
        if self.relation is None:
            return None
        s, o = self.objects[self.relation.subject], self.objects[self.relation.object]
        return f"the {s.phrase} is {self.relation.relation} the {o.phrase}"

    def render(self) -> Image.Image:
        return render_objects(self.objects, self.size)

    def masks(self) -> list[np.ndarray]:
        return [object_mask(o, self.size) for o in self.objects]

    def layout(self, *, with_masks: bool = True, prompt: str | None = None) -> Layout:
        """The scene as a Layout: one region per object, phrase as it appears in the caption."""
        groups = _groups(self.objects)
        regions = []
        for obj in self.objects:
            n = groups[(obj.colour, obj.shape)]
            phrase = f"{obj.colour} {PLURALS[obj.shape] if n > 1 else obj.shape}"
            x0, y0, x1, y1 = obj.box
            box = (x0 / self.size, y0 / self.size, x1 / self.size, y1 / self.size)
            mask = object_mask(obj, self.size) if with_masks else None
            regions.append(Region(phrase=phrase, box=box, mask=mask))
        return Layout(prompt=prompt or self.caption, regions=tuple(regions), width=self.size, height=self.size)


def _groups(objects) -> Counter:
    return Counter((o.colour, o.shape) for o in objects)


def caption_for(objects) -> str:
    """ "a red circle and two blue squares": groups in order of first appearance, no positions."""
    groups = _groups(objects)
    parts = []
    for (colour, shape), n in groups.items():
        noun = PLURALS[shape] if n > 1 else shape
        parts.append(f"{NUMBER_WORDS[n]} {colour} {noun}")
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def parse_phrase(phrase: str) -> tuple[str, str]:
    """``"green triangles"`` -> ``("green", "triangle")``. Raises ValueError for other phrases."""
    words = phrase.lower().replace(",", " ").split()
    colours = [w for w in words if w in COLOURS]
    shapes = [SINGULARS.get(w, w) for w in words if w in SHAPES or w in SINGULARS]
    if len(colours) != 1 or len(shapes) != 1:
        raise ValueError(
            f"phrase {phrase!r} is not a shapes-world object: it needs exactly one colour "
            f"({', '.join(COLOURS)}) and one shape ({', '.join(SHAPES)})"
        )
    return colours[0], shapes[0]


def object_mask(obj: ShapeObject, size: int = IMAGE_SIZE) -> np.ndarray:
    image = Image.new("L", (size, size), 0)
    _draw(ImageDraw.Draw(image), obj, 255)
    return np.asarray(image) > 127


def _draw(draw: ImageDraw.ImageDraw, obj: ShapeObject, fill) -> None:
    x0, y0, x1, y1 = obj.box
    # PIL's coordinates are inclusive; our boxes are exclusive on the far side.
    if obj.shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif obj.shape == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(x0, y1 - 1), (x1 - 1, y1 - 1), ((x0 + x1 - 1) / 2, y0)], fill=fill)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}; expected one of {SHAPES}")


def render_objects(objects, size: int = IMAGE_SIZE) -> Image.Image:
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        _draw(draw, obj, COLOURS[obj.colour])
    return image


def _boxes_clear(box, others) -> bool:
    x0, y0, x1, y1 = box
    return all(
        x0 >= b[2] + MIN_GAP or b[0] >= x1 + MIN_GAP or y0 >= b[3] + MIN_GAP or b[1] >= y1 + MIN_GAP for b in others
    )


def place_boxes(rng: random.Random, sizes: list[int], size: int) -> list[tuple[int, int, int, int]] | None:
    """Square boxes of the given sides placed at random on a ``size`` canvas, never touching (``MIN_GAP`` apart), as
    every scene is placed; None when 50 tries for one box found no room (the caller draws again)."""
    boxes: list[tuple[int, int, int, int]] = []
    for side in sizes:
        for _ in range(50):
            x0, y0 = rng.randint(1, size - side - 1), rng.randint(1, size - side - 1)
            box = (x0, y0, x0 + side, y0 + side)
            if _boxes_clear(box, boxes):
                boxes.append(box)
                break
        else:
            return None
    return boxes


def _relation_holds(a: ShapeObject, relation: str, b: ShapeObject) -> bool:
    """Strict spatial relation between box centres, with a margin so the relation is unambiguous."""
    (ax, ay), (bx, by) = a.centre, b.centre
    dx, dy = bx - ax, by - ay
    if relation == "left of":
        return dx > 4 and abs(dx) > abs(dy)
    if relation == "right of":
        return -dx > 4 and abs(dx) > abs(dy)
    if relation == "above":
        return dy > 4 and abs(dy) > abs(dx)
    if relation == "below":
        return -dy > 4 and abs(dy) > abs(dx)
    raise ValueError(f"unknown relation {relation!r}; expected one of {RELATIONS}")


def relation_holds(a_centre, relation: str, b_centre) -> bool:
    """The evaluator's version: ``a`` is ``relation`` ``b`` by centres (x right, y down), no margin."""
    (ax, ay), (bx, by) = a_centre, b_centre
    dx, dy = bx - ax, by - ay
    return {
        "left of": dx > 0 and abs(dx) >= abs(dy),
        "right of": dx < 0 and abs(dx) >= abs(dy),
        "above": dy > 0 and abs(dy) >= abs(dx),
        "below": dy < 0 and abs(dy) >= abs(dx),
    }[relation]


def make_scene(
    seed: int,
    *,
    n_objects: int | tuple[int, int] = (1, 4),
    size: int = IMAGE_SIZE,
    with_relation: bool = False,
    p_repeat: float = 0.25,
) -> Scene:
    """A deterministic scene for ``seed``: 1-4 non-touching objects, some repeated (counts), optional relation."""
    rng = random.Random(seed)
    lo, hi = (n_objects, n_objects) if isinstance(n_objects, int) else n_objects
    if with_relation:
        lo = max(lo, 2)
    for _ in range(100):
        n = rng.randint(lo, hi)
        kinds: list[tuple[str, str]] = []
        while len(kinds) < n:
            if kinds and rng.random() < p_repeat:
                kinds.append(rng.choice(kinds))  # repeats make counts ("two green triangles")
            else:
                kinds.append((rng.choice(list(COLOURS)), rng.choice(SHAPES)))
        scale = size / IMAGE_SIZE
        sizes = []
        for _ in kinds:
            lo_px, hi_px = SIZE_RANGES[rng.choice(list(SIZE_RANGES))]
            sizes.append(max(4, round(rng.randint(lo_px, hi_px) * scale)))
        boxes = place_boxes(rng, sizes, size)
        if boxes is None:
            continue
        objects = tuple(ShapeObject(c, s, b) for (c, s), b in zip(kinds, boxes))
        relation = None
        if with_relation:
            candidates = [
                Relation(i, r, j)
                for i in range(n)
                for j in range(n)
                if i != j and objects[i].phrase != objects[j].phrase
                for r in RELATIONS
                if _relation_holds(objects[i], r, objects[j])
            ]
            if not candidates:
                continue
            relation = rng.choice(candidates)
        return Scene(seed=seed, objects=objects, size=size, relation=relation)
    raise RuntimeError(f"could not place a scene for seed {seed}")  # pragma: no cover - 100 tries never fail


def vocabulary() -> list[str]:
    """Every word a shapes-world caption, phrase or relation sentence can contain."""
    words = {"a", "an", "and", "the", "is", "of", "left", "right", "above", "below"}
    words |= set(COLOURS) | set(SHAPES) | set(PLURALS.values()) | set(WORD_NUMBERS)
    return sorted(words)
