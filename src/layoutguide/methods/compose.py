"""Combinations such as ``zestguide+pww``: one gradient method plus any number of attention modulators.

Two gradient methods in one combination would need a rule for mixing their schedules and step sizes that
no paper defines, so that is an error rather than a guess.
"""

from __future__ import annotations

import contextlib

import torch

from ..attention import AttentionRequest, AttentionStore, Modulator
from .base import GuidanceContext, GuidanceMethod, LossOutput, MethodOptionError, StepPlan


def _guides(method: GuidanceMethod) -> bool:
    return type(method).plan is not GuidanceMethod.plan


class Composite(GuidanceMethod):
    summary = "a combination of methods"

    def __init__(self, members: list[GuidanceMethod]) -> None:
        super().__init__()
        self.members = members
        self.name = "+".join(m.name for m in members)
        gradient = [m for m in members if _guides(m)]
        if len(gradient) > 1:
            raise MethodOptionError(
                f"method {self.name!r} combines {len(gradient)} gradient-guidance methods ({', '.join(m.name for m in gradient)}); "
                "combine at most one with attention modulators (e.g. zestguide+pww)"
            )
        self.guide = gradient[0] if gradient else None
        self.needs_layout = any(m.needs_layout for m in members)

    def __repr__(self) -> str:
        return f"Composite({self.members!r})"

    def requests(self) -> list[AttentionRequest]:
        return self.guide.requests() if self.guide else []

    def modulations(self, ctx: GuidanceContext) -> dict[AttentionRequest, list[Modulator]]:
        merged: dict[AttentionRequest, list[Modulator]] = {}
        for member in self.members:
            for request, fns in member.modulations(ctx).items():
                merged.setdefault(request, []).extend(fns)
        return merged

    @contextlib.contextmanager
    def activate(self, pipe, ctx: GuidanceContext):
        with contextlib.ExitStack() as stack:
            for member in self.members:
                stack.enter_context(member.activate(pipe, ctx))
            yield

    def unet_kwargs(self, step: int, ctx: GuidanceContext, *, cfg: bool) -> dict:
        merged: dict = {}
        for member in self.members:
            merged.update(member.unet_kwargs(step, ctx, cfg=cfg))
        return merged

    def condition(self, embeddings: torch.Tensor, ctx: GuidanceContext, encode) -> torch.Tensor:
        for member in self.members:
            embeddings = member.condition(embeddings, ctx, encode)
        return embeddings

    def plan(self, step: int, ctx: GuidanceContext) -> StepPlan | None:
        return self.guide.plan(step, ctx) if self.guide else None

    def loss(self, store: AttentionStore, ctx: GuidanceContext, step: int, plan: StepPlan) -> LossOutput:
        return self.guide.loss(store, ctx, step, plan)

    def update(self, latents, grad, plan, ctx, step):
        return self.guide.update(latents, grad, plan, ctx, step)
