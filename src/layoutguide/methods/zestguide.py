"""ZestGuide: zero-shot spatial layout conditioning from the segmentation implicit in cross-attention.

Couairon et al., "Zero-shot spatial layout conditioning for text-to-image diffusion models", ICCV 2023,
arXiv 2306.13754; code ``gcouairon/zestguide`` (SD-1.4: ``src/zestguide_stbl14.py``).

Maps (Eq. 3): for every segment i, ``S^_i = (1/L) sum_l sum_{j in T_i} A_l^j``: cross-attention
probabilities summed over the segment's tokens and averaged over heads and layers, upsampled to the finest
grid among the layers. Layers: the UNet's level-2 layers (down and up) and level-1 layers (up), relative to the
latent: SD's 16x16 and 32x32 layers at 512 px, as the SD-1.4 code uses; 24x24 and 48x48 at 768 px (SD 2.x).

Loss (Eq. 4): ``L = sum_i [BCE(S^_i, S_i) + BCE(S^_i / max S^_i, S_i)]`` with S_i the input mask, area-
downsampled to the map grid (soft). ``variant="code"`` is the released code's ``bce_loss2``: ``a = 10 S^_i``,
``a_n = a / (max a + 1e-4)`` with the max kept in the graph, gradient gates ``[a > 0.01 or gt > 0.01]`` on the raw
term and ``[a_n > 0.1 or gt > 0.1]`` on the normalised one, each term's BCE averaged over the segments. Left out of
that variant (the maps are the library's, not the released code's): the released code's extra softmax keys (the
text-encoder embeddings of every COCO-Stuff class absent from the image, ``negative_mode="concat"``, which lower
every token's share), its softmax of logits bilinearly resized to 32x32 (here probabilities are averaged on each
layer's grid, then upsampled) and its float16 maps.

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
    levels: tuple[int, ...] = Field(
        (2, 1),
        description="UNet levels read, relative to the latent (grid = latent / 2**level): the coarsest in the down "
        "and up blocks, the others in the up blocks; (2, 1) is SD-1.4's 16x16 and 32x32 layers at 512 px",
    )
    resolutions: tuple[int, ...] | None = Field(
        None,
        description="absolute grid sides instead of levels (16 and below: down and up layers, larger: up), the rule "
        "before issue 16, which drops the 48x48 layers at 768 px",
    )


def _bce(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return F.binary_cross_entropy(pred.clamp(eps, 1 - eps), target.clamp(eps, 1 - eps))


def zest_loss(maps: torch.Tensor, masks: torch.Tensor, variant: str) -> torch.Tensor:
    """Eq. 4 (``paper``: summed over segments) or the released ``bce_loss2`` (``code``: each term averaged over
    segments) for one sample: maps and masks ``(R, h, w)``."""
    if variant == "code":
        raw, normalised = [], []
        for a, gt in zip(maps, masks):
            a = 10 * a
            a_n = a / (
                a.max() + 1e-4
            )  # the released code keeps the max in the graph: its gradient is part of the step
            raw.append(_bce(a * ((a.detach() > 0.01) | (gt > 0.01)), gt))
            normalised.append(_bce(a_n * ((a_n.detach() > 0.1) | (gt > 0.1)), gt))
        return torch.stack(raw).mean() + torch.stack(normalised).mean()
    total = maps.new_zeros(())
    for a, gt in zip(maps, masks):
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
        o = self.options
        if o.resolutions is not None:
            return {
                "segments": tuple(
                    AttentionRequest("text", (r,), ("down", "up") if r <= 16 else ("up",)) for r in o.resolutions
                )
            }
        coarsest = max(o.levels)
        return {
            "segments": tuple(
                AttentionRequest("text", places=("down", "up") if level == coarsest else ("up",), levels=(level,))
                for level in o.levels
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
