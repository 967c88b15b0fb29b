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
``blocks`` when given. The conditional samples only are masked (the unconditional ones of SD3's CFG have no layout).

Where a region's text comes from (``region_text``):

* ``"in_place"``: the regions' phrases are read in place in the one prompt (the layout's contract, so every other
  method reads the same tokens), with the end-token choice above.
* ``"separate"`` (the original's): each distinct phrase is encoded alone, as a prompt of its own, and appended to
  the prompt's text for the masked steps (the original's regional text), its own end/padding tokens summarising that
  phrase alone. Under the masks a region's cells read only their phrases' prompts and a region's prompt only its
  cells (and itself); the prompt's own text is the **base**: the base attention (the ``base_ratio`` share) is the
  cells and the prompt's text reading each other, with the region prompts hidden, which is the original's parallel
  base-prompt pass in one sequence. Blocks outside the masked ones take that base attention alone; after the masked
  steps the region prompts are dropped (the original goes back to the base prompt). On SD3 the unconditional
  samples' text is padded to the same length, the padding hidden from them. ``end_tokens`` does not apply.

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
    region_text: Literal["in_place", "separate"] = Field(
        "in_place",
        description="a region's text: its phrase 'in_place' in the prompt, or each phrase encoded 'separate'ly as a "
        "prompt of its own and appended for the masked steps (the original's regional prompts)",
    )
    background_text: Literal["none", "prompt"] = Field(
        "none",
        description="what text background cells (in no region) read under the masks: 'none' (the original: with "
        "region_text='separate' nothing, in place the base words) or 'prompt' (the whole prompt's text, as "
        "InvokeAI's FLUX regions do: a background reading no text drew artifacts there)",
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
    all_blocks: tuple[int, ...] = ()
    # region_text="separate": the prompt's text length, and per sample its distinct phrases (one appended prompt each,
    # in this order) with, per phrase, the regions that carry it
    text_length: int = 0
    phrase_regions: list[list[list[int]]] = dataclasses.field(default_factory=list)


def block_counts(transformer: Any) -> tuple[int, int]:
    """The transformer's double-stream and single-stream (FLUX) block counts."""
    return len(transformer.transformer_blocks), len(getattr(transformer, "single_transformer_blocks", None) or [])


def masked_blocks(transformer: Any, o: RegionalOptions) -> tuple[int, ...]:
    """The block indices the masks act in: every ``double_interval``-th double-stream block, every
    ``single_interval``-th single-stream one (numbered after the double-stream ones), within ``blocks``."""
    n_double, n_single = block_counts(transformer)
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


def allowed_pairs(
    image: torch.Tensor,
    text: torch.Tensor,
    layout: JointLayout,
    free_images: bool,
    reads_all_text: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(n, n)`` bool in the module's order: query and key share a group, or either is a base text token.
    ``reads_all_text``: cells ``(h*w,)`` that read every text token (``background_text="prompt"``)."""
    groups = torch.cat([text, image], 1) if layout.text_first else torch.cat([image, text], 1)  # (G, n)
    g = groups.float()
    allowed = (g.T @ g) > 0
    base = torch.cat([~text.any(0), torch.zeros(image.shape[1], dtype=torch.bool, device=text.device)])
    if not layout.text_first:
        base = base.roll(image.shape[1])  # [image, text]: the text flags go last
    allowed |= base[:, None] | base[None, :]
    img_slice, text_slice = layout.slices(groups.shape[1])
    if free_images:
        allowed[img_slice, img_slice] = True
    if reads_all_text is not None:
        allowed[img_slice, text_slice][reads_all_text] = True
    return allowed


def separate_text_pairs(
    masks: torch.Tensor,
    phrase_regions: list[list[int]],
    length: int,
    n_text: int,
    free_images: bool,
    background_reads_prompt: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``region_text="separate"``: the masked attention's and the base attention's allowed pairs ``(n, n)`` in the
    order ``[text, image]``, for one sample. ``masks``: its regions' cells ``(R, N)``; the text is the prompt's
    ``length`` tokens, then one prompt of ``length`` per phrase (``phrase_regions``: the regions carrying each), then
    padding up to ``n_text`` (other samples' phrases), which reads only itself and nobody reads.
    ``background_reads_prompt``: cells in no region read the prompt's text under the masks too."""
    n_img = masks.shape[1]
    n = n_text + n_img
    img = slice(n_text, n)
    cells = torch.stack([masks[regions].any(0) for regions in phrase_regions])  # (P, N)
    background = ~cells.any(0)
    base = torch.zeros(n, n, dtype=torch.bool, device=masks.device)
    base[:length, :length] = base[:length, img] = base[img, :length] = base[img, img] = True
    masked = base.clone()
    masked[img, :length] = background[:, None] & background_reads_prompt  # a region's cells: its prompts only
    if not free_images:
        same = cells.T.float() @ cells.float() > 0
        masked[img, img] = same | (background[:, None] & background[None, :])
    for p in range(len(phrase_regions)):
        t = slice(length * (p + 1), length * (p + 2))
        masked[t, t] = masked[t, img] = masked[img, t] = base[t, t] = base[t, img] = True
        masked[img, t] &= cells[p][:, None]
        masked[t, img] &= cells[p][None, :]
        base[t, img] &= cells[p][None, :]
    padding = slice(length * (len(phrase_regions) + 1), n_text)
    masked[padding, padding] = base[padding, padding] = True
    return masked, base


def in_module_order(pairs: torch.Tensor, n_text: int, text_first: bool) -> torch.Tensor:
    """``[text, image]`` pairs ``(..., n, n)`` in a module's own order (SD3: ``[image, text]``)."""
    if text_first:
        return pairs
    return pairs.roll((-n_text, -n_text), (-2, -1))


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
        blocks = masked_blocks(pipe.denoiser, self.options)
        every = tuple(range(sum(block_counts(pipe.denoiser))))
        return contextlib.nullcontext(RegionalState(ctx, blocks, every))

    def condition(self, state: MethodState, embeddings: torch.Tensor, encode: Any) -> torch.Tensor:
        """``region_text="separate"``: the prompt's text, then each sample's distinct phrases encoded alone (zeros
        where a sample has fewer phrases than another)."""
        assert isinstance(state, RegionalState)
        if self.options.region_text != "separate":
            return embeddings
        layouts = state.ctx.layouts
        phrases, state.phrase_regions = [], []
        for lay in layouts:
            by_phrase: dict[str, list[int]] = {}
            for r, phrase in enumerate(lay.phrases):
                by_phrase.setdefault(phrase, []).append(r)
            phrases.append(list(by_phrase))
            state.phrase_regions.append(list(by_phrase.values()))
        distinct = list(dict.fromkeys(p for sample in phrases for p in sample))
        encoded = encode(distinct).to(embeddings)
        length = state.text_length = embeddings.shape[1]
        if encoded.shape[1] != length:
            raise MethodOptionError(f"regional.region_text: a phrase encodes to {encoded.shape[1]} tokens, the prompt "
                                    f"to {length}; use region_text='in_place'")  # fmt: skip
        slots = embeddings.new_zeros(len(layouts), max(map(len, phrases)) * length, embeddings.shape[2])
        for b, sample in enumerate(phrases):
            for p, phrase in enumerate(sample):
                slots[b, p * length : (p + 1) * length] = encoded[distinct.index(phrase)]
        return torch.cat([embeddings, slots], 1)

    def text_for_step(self, state: MethodState, step: int, embeddings: torch.Tensor) -> torch.Tensor:
        assert isinstance(state, RegionalState)
        if self.options.region_text == "separate" and step >= self.options.mask_inject_steps:
            return embeddings[:, : state.text_length]  # the original goes back to the base prompt
        return embeddings

    def modulations(self, state: MethodState) -> dict[AttentionRequest, list[Modulator]]:
        assert isinstance(state, RegionalState)
        if self.options.region_text == "separate":
            return self._separate_text_masks(state)
        o, ctx = self.options, state.ctx
        cache: dict[tuple, torch.Tensor] = {}

        def allowed(layer: LayerInfo, layout: JointLayout, n: int) -> torch.Tensor:
            grid = layer.grid(ctx.latent_hw)
            key = (grid, n, layout.text_first)
            if key not in cache:
                pairs = []
                for b in range(ctx.batch_size):
                    image, text = token_groups(ctx, b, grid, layout.n_text, o.end_tokens == "hidden")
                    background = image[len(ctx.layouts[b].regions)] if o.background_text == "prompt" else None
                    pairs.append(allowed_pairs(image, text, layout, o.image_attention == "all", background))
                cache[key] = torch.stack(pairs)
            return cache[key]

        mask = JointMask(allowed, lambda step: step < o.mask_inject_steps, o.base_ratio, o.guide_maps == "masked")
        return {AttentionRequest("joint", blocks=state.blocks): [mask]}  # type: ignore[list-item]

    def _separate_text_masks(self, state: RegionalState) -> dict[AttentionRequest, list[Modulator]]:
        """``region_text="separate"``: a mask in every block (the others hide the region prompts: base attention)."""
        o, ctx = self.options, state.ctx
        cache: dict[tuple, Any] = {}

        def pairs(layer: LayerInfo, layout: JointLayout, n: int) -> tuple[torch.Tensor, torch.Tensor]:
            grid = layer.grid(ctx.latent_hw)
            key = (grid, n, layout.text_first)
            if key not in cache:
                per_sample = [
                    separate_text_pairs(
                        ctx.region_masks(b, grid).flatten(1) > 0,
                        state.phrase_regions[b],
                        state.text_length,
                        layout.n_text,
                        o.image_attention == "all",
                        o.background_text == "prompt",
                    )
                    for b in range(ctx.batch_size)
                ]
                masked, base = (torch.stack(x) for x in zip(*per_sample))
                cache[key] = tuple(in_module_order(x, layout.n_text, layout.text_first) for x in (masked, base))
            return cache[key]

        def allowed(layer: LayerInfo, layout: JointLayout, n: int) -> torch.Tensor:
            masked, base = pairs(layer, layout, n)
            return masked if layer.block in state.blocks else base

        def uncond_keys(layout: JointLayout, n: int) -> torch.Tensor:
            """The unconditional samples' own keys: their text is the prompt's length, padded to the rest."""
            key = ("uncond", n, layout.text_first)
            if key not in cache:
                keys = torch.ones(n, dtype=torch.bool, device=ctx.device)
                _, text = layout.slices(n)
                keys[text.start + state.text_length : text.stop] = False
                cache[key] = keys
            return cache[key]

        mask = JointMask(
            allowed,
            lambda step: step < o.mask_inject_steps,
            o.base_ratio,
            o.guide_maps == "masked",
            base_allowed=lambda layer, layout, n: pairs(layer, layout, n)[1],
            uncond_keys=uncond_keys,
        )
        return {AttentionRequest("joint", blocks=state.all_blocks): [mask]}  # type: ignore[list-item]
