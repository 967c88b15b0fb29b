"""The offline rule-based planner: parse (:mod:`.link`), then place boxes (:mod:`.placement`) until every
relation holds."""

from __future__ import annotations

import itertools
import re

from ..layout import MAX_REGIONS, Layout, Region
from .geometry import on_canvas, problems
from .link import read_prompt
from .parse import Group, Relation
from .placement import Box, constraints, place
from .result import PlannerError, PlanResult
from .vocabulary import ENGLISH_WORDS, FOREIGN_WORDS

# the solver's knobs, tried in order: (instances in lines, squeeze) x cell-sharing direction
_ATTEMPTS = list(
    itertools.product(((False, 1.0), (False, 0.85), (False, 0.6), (False, 0.4), (True, 1.0)), (None, "x", "y"))
)


def foreign_words(prompt: str) -> list[str]:
    """The prompt's function words of another language, when they outnumber its English ones (else [])."""
    words = re.findall(r"[^\W\d_]+", prompt.lower())  # letters of any script; "d'un" -> "d", "un"
    foreign = [w for w in words if w in FOREIGN_WORDS]
    english = [w for w in words if w in ENGLISH_WORDS]
    return foreign if len(foreign) >= 2 and len(foreign) > len(english) else []


def _whole_prompt(prompt: str, notes: list[str], note: str) -> PlanResult:
    notes.append(note)
    region = Region(prompt.strip().rstrip(".!?;, ") or prompt.strip(), box=(0.15, 0.15, 0.85, 0.85))
    return PlanResult(Layout(prompt=prompt, regions=(region,)), notes, True)


def _solve(groups: list[Group], rels: list[Relation]) -> tuple[list[list[Box]], list[str], list[str]]:
    """The first layout with no problems, else the one with the fewest: boxes, solver notes, problems left."""
    cons = constraints(groups, rels)
    names = [g.phrase for g in groups]
    best: tuple[list[list[Box]], list[str], list[str]] | None = None
    for (lines, squeeze), axis in _ATTEMPTS:
        attempt_notes: list[str] = []
        boxes = place(groups, rels, cons, attempt_notes, axis, lines, squeeze)
        ignored = {note.split("ignored ", 1)[1] for note in attempt_notes if note.startswith("contradictory")}
        left = [p for p in problems(boxes, cons.checks, names) if p not in ignored]
        if best is None or len(left) < len(best[2]):
            best = (boxes, attempt_notes, left)
        if not left:
            break
    assert best is not None
    return best


class RuleBasedPlanner:
    """Offline, deterministic planner for English object lists with counts, adjectives and spatial relations.

    Relations: left of / to the left of, right of, above / over, below / under / beneath, on top of / on, next to /
    beside / near, between X and Y, and absolute positions (on the left, at the top, in the top left corner).
    Phrases are the prompt's own words ("red circle"; "green triangles" once per instance for "three green
    triangles"). Anything it does not understand is reported in ``PlanResult.notes`` with ``fallback=True``.
    """

    name = "rule"

    def plan(self, prompt: str) -> PlanResult:
        if not isinstance(prompt, str) or not prompt.strip():
            raise PlannerError("the prompt is empty; give a text prompt such as 'a cat to the left of a dog'")
        foreign = foreign_words(prompt)
        if foreign:
            listed = ", ".join(map(repr, dict.fromkeys(foreign)))
            return _whole_prompt(
                prompt,
                [],
                f"unknown phrasing: the prompt does not look like English ({listed}); the rule planner reads English "
                "only, so the whole prompt is one region (plan with an LLM planner for other languages)",
            )
        parser = read_prompt(prompt)
        notes, groups, rels = list(parser.notes), parser.groups, parser.rels
        if not groups and parser.negated and not parser.unknown:  # "a scene without birds": nothing to place
            return PlanResult(Layout(prompt=prompt), notes, False)
        if not groups:
            return _whole_prompt(prompt, notes, "unknown phrasing: no objects found; the whole prompt is one region")
        total = sum(g.count for g in groups)
        if total > MAX_REGIONS:
            counts = ", ".join(f"{g.count} x {g.phrase!r}" for g in groups[:8]) + (", ..." if len(groups) > 8 else "")
            raise PlannerError(
                f"the prompt asks for {total} objects ({counts}); a layout holds at most {MAX_REGIONS} regions "
                "(GLIGEN's limit): lower the counts or split the prompt"
            )
        boxes, place_notes, left = _solve(groups, rels)
        notes.extend(place_notes)
        notes.extend(f"could not satisfy: {p}" for p in left)
        regions = [
            Region(grp.phrase, box=on_canvas(box)) for grp, group_boxes in zip(groups, boxes) for box in group_boxes
        ]
        return PlanResult(Layout(prompt=prompt, regions=tuple(regions)), notes, parser.unknown)
