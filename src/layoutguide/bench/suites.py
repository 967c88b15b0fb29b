"""The benchmark suites as data: which layouts (or prompts) are generated, with which seeds.

A :class:`Suite` is everything the generation loop needs to know about a benchmark: one entry per image, its
layout (or, for the unguided competence suites, only its prompt) and its seed. Scoring and reports are the
benchmark's own; generating, writing and resuming are the same for all (:mod:`layoutguide.bench.runner`).
"""

from __future__ import annotations

import dataclasses
import random

from ..errors import InputError
from ..layout import Layout
from ..phrase_forms import PHRASE_FORMS, with_phrase_form
from ..shapes.world import BENCH_SEED_OFFSET, COLOURS, NUMBER_WORDS, PLURALS, RELATIONS, SHAPES, Scene, make_scene

SUITE_STRIDE = 100_000  # suites for different seed values never share scenes
MAX_OBJECTS = max(NUMBER_WORDS)  # the shapes world's captions count up to four
RELATION_PHRASES = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}

Kind = tuple[str, str, int]  # (colour, shape, count)
RelationItem = tuple[str, Kind, str, Kind]  # (prompt, subject, relation, object)


@dataclasses.dataclass(frozen=True)
class Suite:
    """One image per entry: ``layouts[k]`` generated with seed ``seeds[k]``. ``guided`` False: only each layout's
    prompt is given (unguided competence), no regions."""

    name: str
    layouts: tuple[Layout, ...]
    seeds: tuple[int, ...]
    guided: bool = True

    def __len__(self) -> int:
        return len(self.layouts)

    def in_form(self, form: str) -> Suite:
        """The same suite with every region's phrase written in ``form`` (``"a red circle"`` for ``article``)."""
        if form == "bare":
            return self
        return dataclasses.replace(self, layouts=tuple(with_phrase_form(layout, form) for layout in self.layouts))


def check_count(name: str, value: int, low: int = 1, high: int | None = None) -> None:
    """One clear line for a count out of range (``batch_size=0``, ``max_objects=9``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InputError(f"{name} must be a whole number {span}, got {value!r}")


def check_phrase_forms(forms: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The forms to run, each once, in the order given; an unknown or empty list is a clear error."""
    forms = tuple(dict.fromkeys(f.strip() for f in forms))
    if not forms or not all(forms):
        raise InputError(f"phrase_forms: give at least one of {', '.join(PHRASE_FORMS)}")
    unknown = [f for f in forms if f not in PHRASE_FORMS]
    if unknown:
        raise InputError(f"phrase_forms: unknown form {unknown[0]!r}; use one of {', '.join(PHRASE_FORMS)}")
    return forms


def shapes_suite(
    n: int, seed: int = 0, *, n_objects: tuple[int, int] = (1, 4), with_relation: bool = False
) -> list[Scene]:
    """``n`` scenes from seeds training never saw; the same (n, seed) always gives the same suite."""
    base = BENCH_SEED_OFFSET + seed * SUITE_STRIDE
    return [make_scene(base + k, n_objects=n_objects, with_relation=with_relation) for k in range(n)]


def noise_seeds(n: int, seed: int) -> tuple[int, ...]:
    """The initial-noise seed of each entry: the same for every method of a run, so they compare image by image."""
    return tuple(seed * SUITE_STRIDE + k for k in range(n))


def shapes_layout_suite(n: int, seed: int = 0, *, max_objects: int = 4, use_masks: bool = False) -> Suite:
    """The object-in-box suite: ``n`` scenes of 1 to ``max_objects`` objects, as boxes or exact masks."""
    check_count("n", n)
    check_count("max_objects", max_objects, 1, MAX_OBJECTS)
    scenes = shapes_suite(n, seed, n_objects=(1, max_objects))
    name = "shapes-masks" if use_masks else "shapes-boxes"
    return Suite(name, tuple(s.layout(with_masks=use_masks) for s in scenes), noise_seeds(n, seed))


def competence_suite(n: int, seed: int, objects: int) -> Suite:
    """Unguided prompts of ``objects`` objects each (no layout given to the model; the layout is the answer key)."""
    check_count("n", n)
    scenes = shapes_suite(n, seed + 50 + objects, n_objects=(objects, objects))
    return Suite(f"competence-{objects}obj", tuple(s.layout() for s in scenes), noise_seeds(n, seed), guided=False)


def relation_prompts(n: int, seed: int = 0) -> list[RelationItem]:
    """``n`` seeded prompts "two green triangles to the left of a blue square": (prompt, subject, relation, object),
    subject/object as (colour, shape, count). Counts 1-2; the two kinds always differ."""
    rng = random.Random(BENCH_SEED_OFFSET + seed * SUITE_STRIDE + 7)

    def words(kind: Kind) -> str:
        return f"{NUMBER_WORDS[kind[2]]} {kind[0]} {PLURALS[kind[1]] if kind[2] > 1 else kind[1]}"

    out = []
    for _ in range(n):
        a = (rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice((1, 1, 2)))
        while True:
            b = (rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice((1, 1, 2)))
            if b[:2] != a[:2]:
                break
        relation = rng.choice(RELATIONS)
        out.append((f"{words(a)} {RELATION_PHRASES[relation]} {words(b)}", a, relation, b))
    return out


def relation_suite(planned: list[Layout], seed: int) -> Suite:
    """The relation prompts' planned layouts (one planner's), seeded as every suite is."""
    return Suite("relations", tuple(planned), noise_seeds(len(planned), seed))
