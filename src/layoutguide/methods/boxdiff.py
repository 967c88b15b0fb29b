"""BoxDiff: inner-box, outer-box and corner constraints on cross-attention.

Xie et al., "BoxDiff: Text-to-Image Synthesis with Training-Free Box-Constrained Diffusion", ICCV 2023,
arXiv 2307.10816; code ``showlab/BoxDiff`` (``pipeline/sd_pipeline_boxdiff.py``).

Per subject token with box mask M on the grid of the UNet's level-2 layers (SD's 16x16 at 512 px, 24x24 at 768 px;
maps as Attend-and-Excite's, SD 2.x's padding out of the token softmax as the official ``normalize_eot``):

* inner ``L_IB = max(0, 1 - mean topk(A * M, floor(P |M|)))``,
* outer ``L_OB = mean topk(A * (1 - M), floor(P |1 - M|))``,
* corner ``L_C = mean_x(|max_y A - max_y M| C_x) + mean_y(|max_x A - max_x M| C_y)``, C = 1 within L cells of
  the box edges.

Defaults P = 0.2, L = 1; ``z <- z - alpha_t grad sum(L)`` with Attend-and-Excite's alpha_t (20 sqrt(linspace(1,
0.5))) on the first 25 of 50 steps; Attend-and-Excite's refinement is off as in the README examples.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ..attention import Requests
from .attend_excite import excite_plan
from .base import (
    GradientMethod,
    LevelOptions,
    MethodState,
    SampleLoss,
    SampleView,
    StepPlan,
    TokenMapOptions,
    TokenSoftmax,
)


class BoxDiffOptions(TokenMapOptions, LevelOptions):
    top_p: float = Field(0.2, gt=0, le=1, description="P: share of the (in/out) area whose top values count")
    corner_width: int = Field(1, ge=0, description="L: cells either side of a box edge that count for the corner loss")
    inner: bool = True
    outer: bool = True
    corner: bool = True
    scale_factor: float = Field(20.0, gt=0)
    guided_fraction: float = Field(0.5, gt=0, le=1)
    refine: bool = False
    max_refinement: int = Field(20, ge=0)
    tokens: Literal["last", "all"] = "last"
    token_softmax: TokenSoftmax = "auto"  # the official normalize_eot on SD 2.1 (help: TokenMapOptions)


def _topk_mean(values: torch.Tensor, share: float, area: torch.Tensor) -> torch.Tensor:
    k = max(1, int(share * float(area)))
    return values.flatten().topk(min(k, values.numel())).values.mean()


def _edge_weights(profile: torch.Tensor, width: int) -> torch.Tensor:
    """1 within ``width`` cells of the first/last set cell of a 0/1 profile, else 0."""
    on = torch.nonzero(profile > 0).flatten()
    weights = torch.zeros_like(profile)
    if len(on):
        for edge in (int(on[0]), int(on[-1])):
            weights[max(0, edge - width) : edge + width + 1] = 1
    return weights


def boxdiff_terms(a: torch.Tensor, m: torch.Tensor, o: BoxDiffOptions) -> torch.Tensor:
    """Inner + outer + corner loss of one token map ``a`` and box mask ``m`` (both ``(h, w)``)."""
    loss = a.new_zeros(())
    if o.inner:
        loss = loss + (1 - _topk_mean(a * m, o.top_p, m.sum())).clamp(min=0)
    if o.outer:
        loss = loss + _topk_mean(a * (1 - m), o.top_p, (1 - m).sum())
    if o.corner:
        px, mx = a.amax(0), m.amax(0)  # x profiles (max over y)
        py, my = a.amax(1), m.amax(1)
        loss = (
            loss
            + ((px - mx).abs() * _edge_weights(mx, o.corner_width)).mean()
            + ((py - my).abs() * _edge_weights(my, o.corner_width)).mean()
        )
    return loss


class BoxDiff(GradientMethod):
    name = "boxdiff"
    summary = "BoxDiff: inner/outer/corner box constraints on cross-attention (arXiv 2307.10816)"
    needs_layout = True
    Options = BoxDiffOptions
    options: BoxDiffOptions

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
        target = plan.info.get("target")
        subjects = [(r, t) for r, positions in enumerate(view.phrase_tokens(o.tokens)) for t in positions]
        if not subjects:  # nothing to guide, and nothing left to refine
            return SampleLoss(torch.zeros((), device=view.ctx.device), target is not None)
        maps = [
            view.token_map("cross", t, temperature=o.temperature, smoothing=o.smoothing, token_softmax=o.token_softmax)
            for _, t in subjects
        ]
        masks = view.region_masks(maps[0].shape, boxes_only=True)
        total, low = maps[0].new_zeros(()), maps[0].new_ones(())
        for (r, _), a in zip(subjects, maps):
            total = total + boxdiff_terms(a, masks[r], o)
            low = torch.minimum(low, (a * masks[r]).amax())
        return SampleLoss(total, bool(low >= target) if target is not None else False)
