"""Combinations such as ``zestguide+pww`` or ``gligen+pww+refocus``, composed by each member's declared kind.

Any number of ``modulation`` and ``conditioning`` members (their modulators, conditionings and UNet arguments
are merged in member order), at most one ``gradient`` member (two would need a rule for mixing their schedules
and step sizes that no paper defines) and at most one ``rewiring`` member (two rewirings of one block do not
compose). Members that feed GLIGEN's grounding tokens (``gligen``, ``reground``) may not be combined either: both
would set them. Breaking a rule is a :class:`MethodOptionError`, not a guess.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import torch

from ..attention import AttentionRequest, Modulator, RecordedMaps, Requests
from .base import Encode, GuidanceContext, GuidanceMethod, LossOutput, MethodOptionError, MethodState, StepPlan


@dataclasses.dataclass
class CompositeState(MethodState):
    """Each member's own state, in member order."""

    members: list[MethodState]


def _check_kinds(name: str, members: list[GuidanceMethod]) -> None:
    names = [m.name for m in members]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise MethodOptionError(f"method {name!r} names {', '.join(repeated)} more than once; name each member once")
    for kind, example in (("gradient", "zestguide+pww"), ("rewiring", "reground+refocus")):
        of_kind = [m.name for m in members if m.kind == kind]
        if len(of_kind) > 1:
            raise MethodOptionError(
                f"method {name!r} combines {len(of_kind)} {kind} methods ({', '.join(of_kind)}); combine at most one "
                f"{kind} method with modulation and conditioning methods (e.g. {example})"
            )
    gated = [m.name for m in members if m.needs_gated_unet]
    if len(gated) > 1:
        raise MethodOptionError(
            f"method {name!r} combines {', '.join(gated)}, which both set GLIGEN's grounding tokens; keep one"
        )


class Composite(GuidanceMethod):
    summary = "a combination of methods"

    def __init__(self, members: list[GuidanceMethod]) -> None:
        super().__init__()
        self.members = members
        self.name = "+".join(m.name for m in members)  # type: ignore[misc]  # an instance's own name
        _check_kinds(self.name, members)
        gradient = [m for m in members if m.kind == "gradient"]
        self.guide = gradient[0] if gradient else None
        self.kind = self.guide.kind if self.guide else "modulation"  # type: ignore[misc]
        self.needs_layout = any(m.needs_layout for m in members)  # type: ignore[misc]
        self.needs_gated_unet = any(m.needs_gated_unet for m in members)  # type: ignore[misc]
        self.unsupported_on = {}  # type: ignore[misc]  # an instance's own: its members' reasons, the first kept
        for member in members:
            for backbone, reason in member.unsupported_on.items():
                self.unsupported_on.setdefault(backbone, f"{member.name}: {reason}")

    def __repr__(self) -> str:
        return f"Composite({self.members!r})"

    def _guide_state(self, state: MethodState) -> tuple[GuidanceMethod, MethodState]:
        assert isinstance(state, CompositeState) and self.guide is not None
        return self.guide, state.members[self.members.index(self.guide)]

    def _pairs(self, state: MethodState) -> list[tuple[GuidanceMethod, MethodState]]:
        assert isinstance(state, CompositeState)
        return list(zip(self.members, state.members))

    def activate(self, pipe: Any, ctx: GuidanceContext) -> contextlib.AbstractContextManager[MethodState]:
        return self._activate(pipe, ctx)

    @contextlib.contextmanager
    def _activate(self, pipe: Any, ctx: GuidanceContext) -> Iterator[MethodState]:
        with contextlib.ExitStack() as stack:
            yield CompositeState(ctx, [stack.enter_context(m.activate(pipe, ctx)) for m in self.members])

    def attention_requests(self) -> Requests:
        return self.guide.attention_requests() if self.guide else {}

    def modulations(self, state: MethodState) -> dict[AttentionRequest, list[Modulator]]:
        merged: dict[AttentionRequest, list[Modulator]] = {}
        for member, own in self._pairs(state):
            for request, fns in member.modulations(own).items():
                merged.setdefault(request, []).extend(fns)
        return merged

    def unet_kwargs(self, state: MethodState, step: int, *, cfg: bool) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for member, own in self._pairs(state):
            merged.update(member.unet_kwargs(own, step, cfg=cfg))
        return merged

    def condition(self, state: MethodState, embeddings: torch.Tensor, encode: Encode) -> torch.Tensor:
        for member, own in self._pairs(state):
            embeddings = member.condition(own, embeddings, encode)
        return embeddings

    def text_for_step(self, state: MethodState, step: int, embeddings: torch.Tensor) -> torch.Tensor:
        for member, own in self._pairs(state):
            embeddings = member.text_for_step(own, step, embeddings)
        return embeddings

    def plan(self, state: MethodState, step: int) -> StepPlan | None:
        if self.guide is None:
            return None
        guide, own = self._guide_state(state)
        return guide.plan(own, step)

    def loss(self, state: MethodState, step: int, plan: StepPlan, maps: RecordedMaps) -> LossOutput:
        guide, own = self._guide_state(state)
        return guide.loss(own, step, plan, maps)

    def update(
        self, state: MethodState, step: int, plan: StepPlan, latents: torch.Tensor, grad: torch.Tensor
    ) -> torch.Tensor:
        guide, own = self._guide_state(state)
        return guide.update(own, step, plan, latents, grad)
