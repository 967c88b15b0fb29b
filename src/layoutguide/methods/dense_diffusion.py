"""DenseDiffusion: attention modulation towards the layout, on cross- and self-attention.

Kim et al., "Dense Text-to-Image Generation with Attention Modulation", ICCV 2023, arXiv 2308.12964; code
``naver-ai/DenseDiffusion`` (``gradio_app.py``).

On the conditional branch of **every** attention layer during the first 30% of the steps, with logits
``s = QK^T scale``, ``lambda_t = (t / 1000)^5`` and ``size(p) = 1 - sizereg |segment(p)| / HW``:
``s += R size w lambda_t (rowmax s - s)`` and ``s -= (1 - R) size w lambda_t (s - rowmin s)``.
Cross-attention: R = 1 for (pixel in region n, token of n's phrase); every other token, the start/end and
padding tokens included, is pushed down. Self-attention: R = 1 for pixel pairs in the same region. Defaults
w_cross = 1.0, w_self = 0.3, sizereg = 1.0. The code also replaces each phrase's token embeddings by the phrase
encoded on its own (``standalone_text``, on by default here). A pixel in several regions takes them all.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import torch
from pydantic import Field

from ..attention import AttentionRequest, LayerInfo, Modulator, Windowed
from ..tokens import content_positions
from .base import Encode, GuidanceContext, GuidanceMethod, MethodOptions, MethodState
from .paint_with_words import token_region_matrix


class DenseDiffusionOptions(MethodOptions):
    w_cross: float = Field(1.0, ge=0)
    w_self: float = Field(0.3, ge=0)
    size_reg: float = Field(1.0, ge=0)
    active_fraction: float = Field(0.3, ge=0, le=1)
    standalone_text: bool = True


@dataclasses.dataclass
class StandaloneTextState(MethodState):
    """Per sample, per region: the text encoded on its own, the phrase's content words only ("a red circle" ->
    "red circle"), so the copied embeddings are those of the words the prompt's tokens hold, in the context the
    bare phrase gives them (CLIP's causal attention makes "red" after "a" another vector)."""

    standalone_texts: list[list[str]]


class DenseDiffusion(GuidanceMethod):
    name = "densediffusion"
    summary = "DenseDiffusion: modulate cross- and self-attention logits towards the layout (arXiv 2308.12964)"
    kind = "modulation"
    unsupported_on = {
        "dit": "its logit rules are defined on a UNet's cross-attention over 77 CLIP keys, not on joint attention; "
        "on a DiT use regional (region masks on joint attention)"
    }
    needs_layout = True
    Options = DenseDiffusionOptions
    options: DenseDiffusionOptions

    def activate(self, pipe: Any, ctx: GuidanceContext) -> contextlib.AbstractContextManager[MethodState]:
        def content_text(phrase: str) -> str:
            ids = pipe.tokenizer(phrase, add_special_tokens=True).input_ids
            return pipe.tokenizer.decode([ids[p] for p in content_positions(pipe.tokenizer, phrase)]).strip() or phrase

        texts = [[content_text(r.phrase) for r in layout.regions] for layout in ctx.layouts]
        return contextlib.nullcontext(StandaloneTextState(ctx, texts))

    def condition(self, state: MethodState, embeddings: torch.Tensor, encode: Encode) -> torch.Tensor:
        ctx = state.ctx
        if not self.options.standalone_text:
            return embeddings
        out = embeddings.clone()
        for b in range(ctx.batch_size):
            if isinstance(state, StandaloneTextState):
                phrases = state.standalone_texts[b]
            else:
                phrases = [r.phrase for r in ctx.layouts[b].regions]
            if not phrases:
                continue
            alone = encode(phrases)  # (R, 77, D): the text's tokens sit at positions 1..len
            for r, idx in enumerate(ctx.token_maps[b].indices):
                out[b, list(idx)] = alone[r, 1 : 1 + len(idx)].to(out.dtype)
        return out

    def modulations(self, state: MethodState) -> dict[AttentionRequest, list[Modulator]]:
        o, ctx = self.options, state.ctx
        cache: dict = {}

        def regions(layer: LayerInfo, n_keys: int) -> tuple[torch.Tensor, torch.Tensor]:
            grid = layer.grid(ctx.latent_hw)
            key = (layer.kind, grid, n_keys)
            if key not in cache:
                rs, sizes = [], []
                for b in range(ctx.batch_size):
                    masks = ctx.region_masks(b, grid).flatten(1)  # (R, N)
                    area = masks.sum(1) / masks.shape[1]  # share of the grid
                    # a pixel's size penalty uses the largest region covering it; 1 outside all regions
                    size = (
                        1 - o.size_reg * (masks * area[:, None]).amax(0)
                        if len(masks)
                        else torch.ones(masks.shape[1], device=masks.device)
                    )
                    if layer.role == "text":
                        r = token_region_matrix(ctx, b, grid, n_keys)  # (N, K)
                    else:
                        r = (masks.T @ masks > 0).float()  # (N, N): same region
                    rs.append(r)
                    sizes.append(size)
                cache[key] = (torch.stack(rs)[:, None], torch.stack(sizes)[:, None, :, None])  # (B,1,N,K), (B,1,N,1)
            return cache[key]

        def active(step: int) -> bool:
            return step < o.active_fraction * ctx.num_steps

        def modulate(step: int, layer: LayerInfo, logits: torch.Tensor) -> torch.Tensor:
            t = float(ctx.timesteps[step])
            strength = (o.w_cross if layer.role == "text" else o.w_self) * (t / 1000) ** 5
            r, size = regions(layer, logits.shape[-1])
            r, size = r.to(logits.dtype), size.to(logits.dtype)
            row_max = logits.amax(-1, keepdim=True)
            row_min = logits.amin(-1, keepdim=True)
            logits = logits + r * size * strength * (row_max - logits)
            return logits - (1 - r) * size * strength * (logits - row_min)

        # outside the first active_fraction of the steps it changes nothing (with the budget's sdpa_outside_windows
        # its layers then run their own SDPA processors: plain cost)
        windowed = Windowed(modulate, active)
        return {AttentionRequest(role, None, ("down", "mid", "up")): [windowed] for role in ("text", "image")}
