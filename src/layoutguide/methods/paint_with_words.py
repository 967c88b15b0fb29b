"""Paint-with-Words: add a bias to the cross-attention logits of each region's tokens inside its mask.

Balaji et al., eDiff-I, arXiv 2211.01324 (section 4.3); the SD port ``cloneofsimo/paint-with-words-sd``:
``logits = (QK^T + c W log(1 + sigma) max(QK^T)) scale`` on the conditional branch of every cross-attention
layer, with W the (pixel, token) mask of the regions and sigma the step's noise level
(``sqrt((1 - alphabar_t) / alphabar_t)``). Default c = 0.1 (the port's; its demo uses 0.4). ZestGuide's best
setting combines it with its guidance (``zestguide+pww``). No gradient, no extra UNet pass.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from ..attention import AttentionRequest, LayerInfo, Modulator
from .base import GuidanceContext, GuidanceMethod, MethodOptions, MethodState


class PaintWithWordsOptions(MethodOptions):
    weight: float = Field(0.1, ge=0, description="c: strength of the bias")


def token_region_matrix(ctx: GuidanceContext, b: int, grid: tuple[int, int], n_keys: int) -> torch.Tensor:
    """``W (N, n_keys)``: 1 where pixel n lies in a region and the key is one of that region's tokens."""
    masks = ctx.region_masks(b, grid).flatten(1)  # (R, N)
    w = masks.new_zeros(masks.shape[1], n_keys)
    for r, idx in enumerate(ctx.token_maps[b].indices):
        w[:, list(idx)] = torch.maximum(w[:, list(idx)], masks[r][:, None])
    return w


def sigma_at(ctx: GuidanceContext, step: int) -> float:
    alpha = float(ctx.alphas_cumprod[int(ctx.timesteps[step])])
    return math.sqrt((1 - alpha) / alpha)


class PaintWithWords(GuidanceMethod):
    name = "pww"
    summary = "Paint-with-Words: boost region tokens' cross-attention logits inside their masks (eDiff-I)"
    kind = "modulation"
    unsupported_on = {
        "dit": "its logit rules are defined on a UNet's cross-attention over 77 CLIP keys, not on joint attention; "
        "on a DiT use regional (region masks on joint attention)"
    }
    needs_layout = True
    Options = PaintWithWordsOptions
    options: PaintWithWordsOptions

    def modulations(self, state: MethodState) -> dict[AttentionRequest, list[Modulator]]:
        ctx = state.ctx
        cache: dict = {}

        def modulate(step: int, layer: LayerInfo, logits: torch.Tensor) -> torch.Tensor:
            # logits: (B, heads, N, K) of the conditional samples, already multiplied by the attention scale
            grid = layer.grid(ctx.latent_hw)
            key = (grid, logits.shape[-1])
            if key not in cache:
                cache[key] = torch.stack(
                    [token_region_matrix(ctx, b, grid, logits.shape[-1]) for b in range(ctx.batch_size)]
                )
            w = cache[key].to(logits.dtype)[:, None]  # (B, 1, N, K)
            peak = logits.detach().flatten(1).amax(1).view(-1, 1, 1, 1)
            return logits + self.options.weight * math.log1p(sigma_at(ctx, step)) * peak * w

        return {AttentionRequest("text", None, ("down", "mid", "up")): [modulate]}
