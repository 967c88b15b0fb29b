"""What every planner returns and raises: :class:`PlanResult`, :class:`PlannerError`, the :class:`Planner` protocol."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from ..errors import LayoutguideError
from ..layout import Layout

CANVAS = 512  # the LLM template's canvas in pixels (AR and LMD both use 512x512)


class PlannerError(LayoutguideError, ValueError):
    """Planning failed: an unusable prompt, an unreachable model server, or a reply that cannot be parsed."""


@dataclasses.dataclass
class PlanResult:
    """A planned layout. ``notes`` says what the planner guessed or ignored; ``fallback`` is True when the planner
    did not understand the phrasing and used a spread layout (or the whole prompt as one region)."""

    layout: Layout
    notes: list[str] = dataclasses.field(default_factory=list)
    fallback: bool = False


class Planner(Protocol):
    def plan(self, prompt: str) -> PlanResult: ...
