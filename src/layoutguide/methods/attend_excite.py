"""Attend-and-Excite: make every subject token attend strongly somewhere. It takes no layout: it is the
no-layout reference among the peers.

Chefer et al., "Attend-and-Excite", SIGGRAPH 2023, arXiv 2301.13826 (diffusers' deprecated pipeline).

Maps: cross-attention of the UNet's level-2 layers (SD's 16x16 at 512 px, 24x24 at 768 px; down, mid, up: mid has
none at that level in SD), averaged, normalised and smoothed (``SampleView.token_maps``; with SD 2.x's "!" padding
out of the token softmax, as the official ``normalize_eot``). Loss: ``L = max_i max(0, 1 - max A_i)`` over the
subject tokens (the last token of every region phrase, or of ``tokens``' choice; without a layout, of the words
named in ``subjects``). Update ``z <- z - 20 sqrt(r_i) grad L`` with ``r = linspace(1, 0.5, T)``, on the first half
of the steps (25 of 50). At 0%, 20% and 40% of the steps (steps 0, 10, 20 of 50) it refines iteratively, up to 20
updates, until every token's peak reaches 0.05 / 0.5 / 0.8.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any, Literal

import torch
from pydantic import Field

from ..attention import Requests
from ..errors import InputError
from ..tokens import map_phrases
from .base import (
    GradientMethod,
    GuidanceContext,
    LevelOptions,
    MethodState,
    SampleLoss,
    SampleView,
    StepPlan,
    TokenMapOptions,
    TokenSoftmax,
)

REFINE_AT = {0: 0.05, 10: 0.5, 20: 0.8}  # reference step (of 50) -> target peak


def excite_plan(
    step: int, num_steps: int, *, scale_factor: float, guided_fraction: float, refine: bool, max_refinement: int
) -> StepPlan | None:
    """Attend-and-Excite's step-size schedule (shared with BoxDiff)."""
    if step >= round(guided_fraction * num_steps):
        return None
    ratio = 1.0 - 0.5 * step / max(1, num_steps - 1)  # linspace(1, 0.5, T)[step]
    size = scale_factor * ratio**0.5
    lo, hi = step * 50 / num_steps, (step + 1) * 50 / num_steps
    targets = [thr for ref, thr in REFINE_AT.items() if lo <= ref < hi]
    if refine and targets:
        return StepPlan(max_refinement + 1, size, {"target": targets[0]})
    return StepPlan(1, size, {"target": None})


class AttendExciteOptions(TokenMapOptions, LevelOptions):
    scale_factor: float = Field(20.0, gt=0)
    guided_fraction: float = Field(0.5, gt=0, le=1)
    refine: bool = True
    max_refinement: int = Field(20, ge=0)
    tokens: Literal["last", "all"] = "last"
    token_softmax: TokenSoftmax = "auto"  # the official normalize_eot on SD 2.1 (help: TokenMapOptions)
    subjects: tuple[str, ...] = Field(
        (),
        description="words of the prompt to excite (e.g. ('cat', 'dog')); default: the layout's region phrases",
    )


@dataclasses.dataclass
class SubjectState(MethodState):
    """Per sample, the prompt positions of each subject (a region phrase, or a word of ``subjects``)."""

    subjects: list[tuple[tuple[int, ...], ...]]


class AttendExcite(GradientMethod):
    name = "attend-excite"
    summary = "Attend-and-Excite: raise every subject token's attention peak (no layout; arXiv 2301.13826)"
    needs_layout = False
    Options = AttendExciteOptions
    options: AttendExciteOptions

    def activate(self, pipe: Any, ctx: GuidanceContext) -> contextlib.AbstractContextManager[MethodState]:
        return self._activate(pipe, ctx)

    @contextlib.contextmanager
    def _activate(self, pipe: Any, ctx: GuidanceContext) -> Iterator[MethodState]:
        words = self.options.subjects
        if words:
            subjects = [map_phrases(pipe.tokenizer, tokens.prompt, words).indices for tokens in ctx.token_maps]
        elif any(tokens.indices for tokens in ctx.token_maps):
            subjects = [tokens.indices for tokens in ctx.token_maps]
        else:
            raise InputError(
                f"method {self.name!r} has no subjects to excite: give a layout with regions, or name words of the "
                "prompt in its option subjects (e.g. subjects=('cat', 'dog'))"
            )
        yield SubjectState(ctx, subjects)

    def attention_requests(self) -> Requests:
        return {"cross": self.options.layer_request("text", ("down", "mid", "up"))}

    def plan(self, state: MethodState, step: int) -> StepPlan | None:
        o = self.options
        return excite_plan(
            step,
            state.ctx.num_steps,
            scale_factor=o.scale_factor,
            guided_fraction=o.guided_fraction,
            refine=o.refine,
            max_refinement=o.max_refinement,
        )

    def sample_loss(self, view: SampleView, step: int, plan: StepPlan) -> SampleLoss:
        o = self.options
        assert isinstance(view.state, SubjectState)
        subjects = view.state.subjects[view.index]
        tokens = sorted({t for idx in subjects for t in (idx if o.tokens == "all" else idx[-1:])})
        if not tokens:
            loss = torch.zeros((), device=view.ctx.device)
        else:
            peaks = view.token_maps(
                "cross", tokens, temperature=o.temperature, smoothing=o.smoothing, token_softmax=o.token_softmax
            ).flatten(1)
            loss = (1 - peaks.amax(1)).clamp(min=0).max()
        target = plan.info.get("target")
        return SampleLoss(loss, loss <= (1 - target) if target is not None else False)
