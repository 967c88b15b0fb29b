"""Regional attention on a DiT's joint attention: region masks on text<->image and image<->image attention.

After Chen et al., "Training-free Regional Prompting for Diffusion Transformers", arXiv 2411.02395 (code
``instantX-research/Regional-Prompting-FLUX``), on unmodified diffusers modules (only attention processors are
swapped, :mod:`layoutguide.joint_attention`). Every token of the joint sequence belongs to groups: an image token
to the regions containing its cell (boxes or masks, rasterised on the image-token grid), or to the background when
none does; a text token to the regions whose phrase holds it, or to the **base** prompt (the start token and the
words outside phrases). A query may attend a key when they share a group or when either is a base text token: a
region's phrase and its cells see each other and the base prompt only, a cell sees the text of its own regions and
the base prompt, and (``image_attention="region"``) image tokens attend cells of their own regions (background cells
the background); ``"all"`` leaves image<->image attention free. The end/padding tokens form a group of their own that
no image token reads (``end_tokens="hidden"``): a text encoder fills them with a summary of the whole prompt (CLIP's
causal end token and its padding copies, T5's padding), so a cell reading them reads every region's phrase; in the
original a cell reads only its region prompt, whose end/padding tokens summarise that prompt alone.
``end_tokens="shared"`` makes them base tokens instead.

The output of a masked block is ``base_ratio`` x the unmasked attention + ``(1 - base_ratio)`` x the masked one (the
original's base/region blend; 0.2 in its usage example, 0.1-0.3 in its demos), for the first ``mask_inject_steps``
denoising steps (10 of 24 there) and in every ``double_interval``-th double-stream block and every
``single_interval``-th single-stream block (1 and 1 there; SD3 has double-stream blocks only), intersected with
``blocks`` when given. Differences from the original: the regions' phrases are read in place in the one prompt (the
layout's contract) instead of separately encoded region prompts appended to the text, so every other method reads
the same tokens; the conditional samples only are masked (the unconditional ones of SD3's CFG have no layout).

Combined with a gradient method (``regional+refocus``), that method reads the model's own, unmasked attention while
the masks act (``guide_maps="unmasked"``): in the masked one a phrase reads nothing outside its region, so
refocus's losses are met by the masks and its gradient all but vanishes for those steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Literal

import torch
from pydantic import Field

from ..attention import AttentionRequest, LayerInfo, Modulator
from ..joint_attention import JointLayout, JointMask
from .base import GuidanceContext, GuidanceMethod, MethodOptionError, MethodOptions, MethodState


class RegionalOptions(MethodOptions):
    base_ratio: float = Field(
        0.2, ge=0, le=1, description="share of the unmasked attention in a masked block's output (0.2: the original)"
    )
    mask_inject_steps: int = Field(10, ge=0, description="masks act on the first this many steps (10: the original)")
    image_attention: Literal["region", "all"] = Field(
        "region",
        description="image<->image attention: 'region' (within a cell's own regions, background with background, as "
        "the original) or 'all' (unmasked)",
    )
    double_interval: int = Field(1, ge=1, description="mask every n-th double-stream (joint) block")
    single_interval: int = Field(1, ge=1, description="mask every n-th single-stream block (FLUX)")
    blocks: tuple[int, ...] | None = Field(
        None, description="only these block indices (FLUX: double-stream blocks first, then single-stream ones)"
    )
    end_tokens: Literal["hidden", "shared"] = Field(
        "hidden",
        description="end/padding tokens: 'hidden' (image tokens do not read them: a text encoder fills them with a "
        "summary of the whole prompt, every region's phrase included) or 'shared' (base tokens every query may read)",
    )
    guide_maps: Literal["unmasked", "masked"] = Field(
        "unmasked",
        description="what a gradient method combined with regional (regional+refocus) reads while the masks act: "
        "'unmasked' (the model's own attention) or 'masked' (the masked attention, where a phrase reads nothing "
        "outside its region, so refocus's background term is zero, its in-box peak mostly met and its gradient small)",
    )


@dataclasses.dataclass
class RegionalState(MethodState):
    blocks: tuple[int, ...]


def masked_blocks(transformer: Any, o: RegionalOptions) -> tuple[int, ...]:
    """The block indices the masks act in: every ``double_interval``-th double-stream block, every
    ``single_interval``-th single-stream one (numbered after the double-stream ones), within ``blocks``."""
    n_double = len(transformer.transformer_blocks)
    n_single = len(getattr(transformer, "single_transformer_blocks", None) or [])
    chosen = [i for i in range(n_double) if i % o.double_interval == 0]
    chosen += [n_double + j for j in range(n_single) if j % o.single_interval == 0]
    if o.blocks is not None:
        outside = sorted(set(o.blocks) - set(range(n_double + n_single)))
        if outside:
            raise MethodOptionError(
                f"regional.blocks: {outside} are not blocks of this transformer (0-{n_double + n_single - 1})"
            )
        chosen = [b for b in chosen if b in o.blocks]
    return tuple(chosen)


def token_groups(
    ctx: Any, b: int, grid: tuple[int, int], n_text: int, hide_end: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``b``'s image groups ``(R + 1, h*w)`` (regions, then background) and text groups ``(R + 1, n_text)``
    (a phrase's tokens in its region's row; base tokens in none). With ``hide_end`` a last group, with no image
    tokens, holds the end/padding tokens: they read each other and the base words, and no image token reads them."""
    masks = ctx.region_masks(b, grid).flatten(1) > 0  # (R, N)
    image = torch.cat([masks, ~masks.any(0, keepdim=True)])
    text = torch.zeros(len(image), n_text, dtype=torch.bool, device=image.device)
    for r, positions in enumerate(ctx.text_regions[b]):
        text[r, [p for p in positions if p < n_text]] = True
    if hide_end:
        end = torch.ones(1, n_text, dtype=torch.bool, device=image.device)
        end[0, [p for p in ctx.text_words[b] if p < n_text]] = False
        end &= ~text.any(0, keepdim=True)
        image = torch.cat([image, torch.zeros(1, image.shape[1], dtype=torch.bool, device=image.device)])
        text = torch.cat([text, end])
    return image, text


def allowed_pairs(image: torch.Tensor, text: torch.Tensor, layout: JointLayout, free_images: bool) -> torch.Tensor:
    """``(n, n)`` bool in the module's order: query and key share a group, or either is a base text token."""
    groups = torch.cat([text, image], 1) if layout.text_first else torch.cat([image, text], 1)  # (G, n)
    g = groups.float()
    allowed = (g.T @ g) > 0
    base = torch.cat([~text.any(0), torch.zeros(image.shape[1], dtype=torch.bool, device=text.device)])
    if not layout.text_first:
        base = base.roll(image.shape[1])  # [image, text]: the text flags go last
    allowed |= base[:, None] | base[None, :]
    if free_images:
        img_slice, _ = layout.slices(groups.shape[1])
        allowed[img_slice, img_slice] = True
    return allowed


class Regional(GuidanceMethod):
    name = "regional"
    summary = "Regional attention: region masks on a DiT's joint attention, base-prompt blend (arXiv 2411.02395)"
    kind = "modulation"
    needs_layout = True
    unsupported_on = {
        "unet": "it masks a DiT's joint attention (SD3/FLUX); on a UNet use densediffusion or pww, which modulate "
        "cross- and self-attention"
    }
    Options = RegionalOptions
    options: RegionalOptions

    def activate(self, pipe: Any, ctx: GuidanceContext) -> contextlib.AbstractContextManager[MethodState]:
        if not hasattr(ctx, "text_regions"):
            raise MethodOptionError(f"method {self.name!r}: {self.unsupported_on['unet']}")
        return contextlib.nullcontext(RegionalState(ctx, masked_blocks(pipe.denoiser, self.options)))

    def modulations(self, state: MethodState) -> dict[AttentionRequest, list[Modulator]]:
        assert isinstance(state, RegionalState)
        o, ctx = self.options, state.ctx
        cache: dict[tuple, torch.Tensor] = {}

        def allowed(layer: LayerInfo, layout: JointLayout, n: int) -> torch.Tensor:
            grid = layer.grid(ctx.latent_hw)
            key = (grid, n, layout.text_first)
            if key not in cache:
                pairs = []
                for b in range(ctx.batch_size):
                    image, text = token_groups(ctx, b, grid, layout.n_text, o.end_tokens == "hidden")
                    pairs.append(allowed_pairs(image, text, layout, o.image_attention == "all"))
                cache[key] = torch.stack(pairs)
            return cache[key]

        mask = JointMask(allowed, lambda step: step < o.mask_inject_steps, o.base_ratio, o.guide_maps == "masked")
        return {AttentionRequest("joint", blocks=state.blocks): [mask]}  # type: ignore[list-item]
