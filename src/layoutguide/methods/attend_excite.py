"""Attend-and-Excite: make every subject token attend strongly somewhere. It takes no layout: it is the
no-layout reference among the peers.

Chefer et al., "Attend-and-Excite", SIGGRAPH 2023, arXiv 2301.13826 (diffusers' deprecated pipeline).

Maps: 16x16 cross-attention (down, mid, up; mid has none at that size in SD), averaged, normalised and
smoothed as in :func:`smoothed_token_maps`. Loss: ``L = max_i max(0, 1 - max A_i)`` over the subject tokens
(the last token of every region phrase, or of ``tokens``' choice). Update ``z <- z - 20 sqrt(r_i) grad L`` with
``r = linspace(1, 0.5, T)``, on the first half of the steps (25 of 50). At 0%, 20% and 40% of the steps (steps
0, 10, 20 of 50) it refines iteratively, up to 20 updates, until every token's peak reaches 0.05 / 0.5 / 0.8.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ..attention import AttentionRequest, AttentionStore
from .base import (
    GuidanceContext,
    GuidanceMethod,
    LossOutput,
    StepPlan,
    TokenMapOptions,
    region_tokens,
    smoothed_token_maps,
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


class AttendExciteOptions(TokenMapOptions):
    scale_factor: float = Field(20.0, gt=0)
    guided_fraction: float = Field(0.5, gt=0, le=1)
    refine: bool = True
    max_refinement: int = Field(20, ge=0)
    resolution: int = Field(16, gt=0)
    tokens: Literal["last", "all"] = "last"


class AttendExcite(GuidanceMethod):
    name = "attend-excite"
    summary = "Attend-and-Excite: raise every subject token's attention peak (no layout; arXiv 2301.13826)"
    needs_layout = False
    Options = AttendExciteOptions

    def requests(self) -> list[AttentionRequest]:
        return [AttentionRequest("cross", (self.options.resolution,), ("down", "mid", "up"))]

    def plan(self, step: int, ctx: GuidanceContext) -> StepPlan | None:
        o = self.options
        if not any(ctx.token_maps[b].indices for b in range(ctx.batch_size)):
            return None
        return excite_plan(
            step,
            ctx.num_steps,
            scale_factor=o.scale_factor,
            guided_fraction=o.guided_fraction,
            refine=o.refine,
            max_refinement=o.max_refinement,
        )

    def loss(self, store: AttentionStore, ctx: GuidanceContext, step: int, plan: StepPlan) -> LossOutput:
        maps = smoothed_token_maps(store, self.requests()[0], self.options)  # (B, 75, h, w)
        losses = []
        for b in range(ctx.batch_size):
            tokens = sorted({t for idx in ctx.token_maps[b].indices for t in region_tokens(idx, self.options.tokens)})
            if not tokens:
                losses.append(maps.new_zeros(()))
                continue
            peaks = maps[b, [t - 1 for t in tokens]].flatten(1).amax(1)
            losses.append((1 - peaks).clamp(min=0).max())
        loss = torch.stack(losses)
        target = plan.info.get("target")
        done = loss <= (1 - target) if target is not None else torch.zeros_like(loss, dtype=torch.bool)
        return LossOutput(loss, done.detach())
