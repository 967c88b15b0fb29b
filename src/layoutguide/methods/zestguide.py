"""ZestGuide: zero-shot spatial layout conditioning from the segmentation implicit in cross-attention.

Couairon et al., "Zero-shot spatial layout conditioning for text-to-image diffusion models", ICCV 2023,
arXiv 2306.13754; code ``gcouairon/zestguide`` (SD-1.4: ``src/zestguide_stbl14.py``).

Maps (Eq. 3): for every segment i, ``S^_i = (1/L) sum_l sum_{j in T_i} A_l^j``: cross-attention
probabilities summed over the segment's tokens and averaged over heads and layers, upsampled to the finest
grid among the layers. Layers: SD's 16x16 (down and up) and 32x32 (up) layers, as the SD-1.4 code uses.

Loss (Eq. 4): ``L = sum_i [BCE(S^_i, S_i) + BCE(S^_i / max S^_i, S_i)]`` with S_i the input mask, area-
downsampled to the map grid (soft). ``variant="code"`` is the released code's ``bce_loss2``: maps scaled by 10
and gradient gates ``[a > 0.01 or gt > 0.01]`` on the raw term and ``[a_n > 0.1 or gt > 0.1]`` on the normalised
one.

Update (Eq. 5): ``x <- x - eta lambda(t) grad L / ||grad L||_inf`` on the first ``tau`` share of the steps, one
iteration each, with ``lambda(t) = sqrt(1 - alphabar_t)`` (decreasing from ~1 to 0, as the code). Defaults
eta = 1, tau = 0.5 (paper); the code uses eta = 0.3. The paper applies the step to x_{t-1} after the
sampler's step; here, as for every method of this loop, it moves x_t before it (the DDIM coefficient on x_t is
sqrt(alphabar_{t-1} / alphabar_t), about 1).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from ..attention import AttentionRequest, Requests
from .base import GradientMethod, MethodOptions, MethodState, SampleLoss, SampleView, StepPlan


class ZestGuideOptions(MethodOptions):
    eta: float = Field(1.0, gt=0, description="step size of the L-inf normalised gradient")
    tau: float = Field(0.5, gt=0, le=1, description="share of the steps that are guided")
    variant: Literal["paper", "code"] = "paper"
    normalize_grad: bool = True
    resolutions: tuple[int, ...] = (16, 32)


def _bce(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return F.binary_cross_entropy(pred.clamp(eps, 1 - eps), target.clamp(eps, 1 - eps))


def zest_loss(maps: torch.Tensor, masks: torch.Tensor, variant: str) -> torch.Tensor:
    """Eq. 4 (``paper``) or the released ``bce_loss2`` (``code``) for one sample: maps and masks ``(R, h, w)``."""
    total = maps.new_zeros(())
    for a, gt in zip(maps, masks):
        if variant == "code":
            a = 10 * a
            a_n = a / (a.detach().max() + 1e-4)
            a = a * ((a.detach() > 0.01) | (gt > 0.01))
            a_n = a_n * ((a_n.detach() > 0.1) | (gt > 0.1))
            total = total + _bce(a, gt) + _bce(a_n, gt)
        else:
            total = total + _bce(a, gt) + _bce(a / (a.max() + 1e-8), gt)
    return total


class ZestGuide(GradientMethod):
    name = "zestguide"
    summary = (
        "ZestGuide: BCE between attention segmentation and input masks, L-inf normalised gradient (arXiv 2306.13754)"
    )
    needs_layout = True
    Options = ZestGuideOptions
    options: ZestGuideOptions

    def attention_requests(self) -> Requests:
        # SD-1.4's 16x16 (down and up) and 32x32 (up) layers, pooled into one segmentation
        return {
            "segments": tuple(
                AttentionRequest("text", (r,), ("down", "up") if r <= 16 else ("up",))
                for r in self.options.resolutions
            )
        }

    def plan(self, state: MethodState, step: int) -> StepPlan | None:
        ctx = state.ctx
        if step >= self.options.tau * ctx.num_steps:
            return None
        t = int(ctx.timesteps[step])
        lam = float((1 - ctx.alphas_cumprod[t]).sqrt())
        return StepPlan(1, self.options.eta * lam, {"timestep": t})

    def sample_loss(self, view: SampleView, step: int, plan: StepPlan) -> SampleLoss:
        maps = view.phrase_maps("segments")  # (R, h, w)
        return SampleLoss(zest_loss(maps, view.region_masks(maps.shape[-2:], soft=True), self.options.variant))
