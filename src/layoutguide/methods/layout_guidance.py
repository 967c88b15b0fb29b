"""Layout-guidance (backward guidance): pull each phrase's cross-attention mass into its box.

Chen, Laina, Vedaldi, "Training-Free Layout Control with Cross-Attention Guidance", WACV 2024, arXiv 2304.03373;
code ``silent-chen/layout-guidance`` (``utils.py``, ``conf/base_config.yaml``).

Energy, per layer, head and token i of region o (mask M_o), from raw attention probabilities:
``E = mean_{layers, regions} (1/|tok_o|) sum_i mean_heads (1 - sum_{u in M_o} A_ui / sum_u A_ui)^2``.
Layers: the mid block and the 16x16 up block of SD (here: ``mid`` plus the ``up`` layers of level 2, a quarter of
the latent, which is SD's 16x16 at 512 px).
Update: ``z <- z - sigma_t^2 grad(30 E)`` in the LMS (sigma) parametrisation; in the variance-preserving space
the loop guides in, the same step is ``30 (1 - alphabar_t) grad E``. Up to 5 iterations per step while
E > 0.2, on the first 10 of 51 steps (20%). The official code gates a step by the previous step's loss; here
the current loss gates it. Forward guidance (attention re-weighting) is in the paper, not in the code.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ..attention import AttentionRequest, Requests
from .base import GradientMethod, LevelOptions, MethodState, SampleLoss, SampleView, StepPlan


class LayoutGuidanceOptions(LevelOptions):
    loss_scale: float = Field(30.0, gt=0)
    max_iterations: int = Field(5, ge=1)
    loss_threshold: float = Field(0.2, ge=0)
    guided_fraction: float = Field(10 / 51, gt=0, le=1)
    tokens: Literal["all", "last"] = "all"


class LayoutGuidance(GradientMethod):
    name = "layout-guidance"
    summary = "Layout-guidance: backward guidance of cross-attention mass into boxes (arXiv 2304.03373)"
    needs_layout = True
    Options = LayoutGuidanceOptions
    options: LayoutGuidanceOptions

    def attention_requests(self) -> Requests:
        return {"cross": (self.options.layer_request("text", ("up",)), AttentionRequest("text", None, ("mid",)))}

    def plan(self, state: MethodState, step: int) -> StepPlan | None:
        ctx = state.ctx
        if step >= max(1, round(self.options.guided_fraction * ctx.num_steps)):
            return None
        t = ctx.timesteps[step]
        one_minus_alpha = float(1 - ctx.alphas_cumprod[int(t)])
        return StepPlan(self.options.max_iterations, self.options.loss_scale * one_minus_alpha, {"timestep": int(t)})

    def sample_loss(self, view: SampleView, step: int, plan: StepPlan) -> SampleLoss:
        per_layer = []
        for grid, probs in view.layer_maps("cross"):  # probs: (heads, N, 77)
            masks = view.region_masks(grid).flatten(1)  # (R, N)
            terms = []
            for r, positions in enumerate(view.phrase_tokens(self.options.tokens)):
                a = probs[..., list(positions)].float()  # (heads, N, T)
                ratio = (a * masks[r][None, :, None]).sum(1) / a.sum(1).clamp(min=1e-8)  # (heads, T)
                terms.append(((1 - ratio) ** 2).mean(0).mean())  # mean heads, then over the phrase's tokens
            per_layer.append(torch.stack(terms).mean())
        energy = torch.stack(per_layer).mean(0)
        return SampleLoss(energy, energy <= self.options.loss_threshold)
