"""GLIGEN grounding through diffusers' core pieces, and ReGround's parallel rewiring.

GLIGEN (Li et al., CVPR 2023, arXiv 2301.07093): a UNet built with ``attention_type="gated"`` has a gated
self-attention "fuser" in every transformer block and a ``position_net`` that turns (phrase embedding, box)
pairs into grounding tokens. This method feeds it: phrase embeddings are the text encoder's pooled output of
each region phrase, boxes normalised xyxy, ``masks`` 1 for real objects, padded to 30; the unconditional half of
a CFG batch gets masks 0 (GLIGEN's null grounding). Scheduled sampling: grounding on for the first
``beta`` share of the steps (``gligen_scheduled_sampling_beta``; 0.3 in Attention Refocusing's setup), then
the ``gligen`` argument is simply not passed, so no fuser runs and none is ever left disabled.

ReGround (Lee et al., ECCV 2024, arXiv 2403.13589), ``rewire="parallel"`` (method ``reground``): every block
with a fuser computes ``v = h + SA(norm1(h))`` and then ``out = v + CA(norm2(v)) + (fuser(v) - v)`` (both
branches read the same v), then the feed-forward. Not the double-counting ``fuser(v) + CA(v)``. It is installed
as a removable diffusers ``ModelHook`` per block (names and state-dict keys untouched, no copied block
class), and removed after the call. No new parameters, no extra FLOPs.

``position_code`` (off by default; not in GLIGEN) adds a fixed 2D sinusoidal code to the visual tokens inside every
fuser, after its first norm, for GLIGEN models trained with it. The shapes GLIGEN model is: its tiny frozen base
carries too little absolute position in the fusers' input for box-selective attention (docs/shapes.md). Real GLIGEN
checkpoints were trained without it and must keep it off.

``grounding_loss`` (Attention Refocusing's code-only L_G) is available through ``refocus``'s option
``grounding_weight`` when combined as ``gligen+refocus``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.models.attention import BasicTransformerBlock, GatedSelfAttentionDense
from pydantic import Field

from ..errors import InputError
from ..tokens import head_word
from .base import GuidanceContext, GuidanceMethod, MethodKind, MethodOptionError, MethodOptions, MethodState

MAX_OBJECTS = 30
REGROUND_HOOK = "layoutguide_reground"


class ParallelGroundingHook(ModelHook):
    """ReGround's forward for a BasicTransformerBlock with a fuser (layer-norm blocks only)."""

    def new_forward(
        self,
        block: BasicTransformerBlock,
        hidden_states,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        timestep=None,
        cross_attention_kwargs=None,
        class_labels=None,
        added_cond_kwargs=None,
    ):
        kwargs = dict(cross_attention_kwargs or {})
        gligen = kwargs.pop("gligen", None)
        norm = block.norm1(hidden_states)
        if block.pos_embed is not None:
            norm = block.pos_embed(norm)
        v = (
            block.attn1(
                norm,
                encoder_hidden_states=encoder_hidden_states if block.only_cross_attention else None,
                attention_mask=attention_mask,
                **kwargs,
            )
            + hidden_states
        )
        if v.ndim == 4:
            v = v.squeeze(1)
        out = v
        if block.attn2 is not None:
            norm = block.norm2(v)
            if block.pos_embed is not None:
                norm = block.pos_embed(norm)
            out = out + block.attn2(
                norm, encoder_hidden_states=encoder_hidden_states, attention_mask=encoder_attention_mask, **kwargs
            )
        if gligen is not None:
            out = out + (block.fuser(v, gligen["objs"]) - v)  # the fuser returns v + its residual
        out = out + block.ff(block.norm3(out))
        return out.squeeze(1) if out.ndim == 4 else out


def grounded_blocks(unet: torch.nn.Module) -> list[BasicTransformerBlock]:
    return [
        m
        for m in unet.modules()
        if isinstance(m, BasicTransformerBlock) and isinstance(getattr(m, "fuser", None), GatedSelfAttentionDense)
    ]


@contextlib.contextmanager
def parallel_grounding(unet: torch.nn.Module):
    """Install ReGround's rewiring on every block with a fuser for the duration of the block; always removed."""
    blocks = grounded_blocks(unet)
    for block in blocks:
        if block.norm_type != "layer_norm":
            raise MethodOptionError(
                f"ReGround supports layer-norm transformer blocks only, got norm_type {block.norm_type!r}"
            )
    installed = []
    try:
        for block in blocks:
            HookRegistry.check_if_exists_or_initialize(block).register_hook(ParallelGroundingHook(), REGROUND_HOOK)
            installed.append(block)
        yield blocks
    finally:
        for block in installed:
            HookRegistry.check_if_exists_or_initialize(block).remove_hook(REGROUND_HOOK, recurse=False)


def position_code(height: int, width: int, channels: int) -> torch.Tensor:
    """``(height * width, channels)`` fixed 2D sinusoidal code in the UNet's row-major token order: the first half
    of the channels code x, the second half y, each as sines and cosines of cell centres at geometric frequencies
    (finest: one cycle per two cells)."""
    quarter = channels // 4
    code = torch.zeros(height * width, channels)
    ys, xs = torch.meshgrid((torch.arange(height) + 0.5) / height, (torch.arange(width) + 0.5) / width, indexing="ij")
    for k, (coord, side) in enumerate(((xs.flatten(), width), (ys.flatten(), height))):
        freqs = torch.exp(-math.log(100.0) * torch.arange(quarter) / max(quarter - 1, 1)) * math.pi * side
        angles = coord[:, None] * freqs[None]
        code[:, 2 * k * quarter : (2 * k + 1) * quarter] = angles.sin()
        code[:, (2 * k + 1) * quarter : (2 * k + 2) * quarter] = angles.cos()
    return code


def _token_grid(n: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """The grid of a layer with ``n`` tokens on latents of ``latent_hw`` (the UNet halves the grid per level)."""
    h, w = latent_hw
    factor = 1
    while math.ceil(h / factor) * math.ceil(w / factor) > n:
        factor *= 2
    grid = (math.ceil(h / factor), math.ceil(w / factor))
    if grid[0] * grid[1] != n:
        raise ValueError(f"a fuser got {n} visual tokens, which is no level of {h}x{w} latents")
    return grid


@contextlib.contextmanager
def fuser_position_code(unet: torch.nn.Module, latent_hw: tuple[int, int]):
    """Add :func:`position_code` to the visual tokens of every fuser's attention input (after its ``norm1``, so the
    residual stream and the grounding tokens are untouched) for the duration of the block; always removed."""

    codes: dict[tuple, torch.Tensor] = {}  # one per grid, channels, dtype and device: built once, not per call

    def hook(module, inputs, out):
        n = out.shape[1] - MAX_OBJECTS
        key = (n, out.shape[-1], out.dtype, out.device)
        if key not in codes:
            codes[key] = position_code(*_token_grid(n, latent_hw), out.shape[-1]).to(out)
        return torch.cat([out[:, :n] + codes[key], out[:, n:]], 1)

    handles = [block.fuser.norm1.register_forward_hook(hook) for block in grounded_blocks(unet)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def grounding_phrase(phrase: str, grounding_text: str) -> str:
    """The text a grounding token embeds: the region phrase, or its head noun (``grounding_text="head"``: the last
    content word as written, so "A Red Circle," grounds "Circle" as "red circle" grounds "circle")."""
    return head_word(phrase) if grounding_text == "head" else phrase


class GligenOptions(MethodOptions):
    beta: float = Field(0.3, ge=0, le=1, description="share of the steps with grounding on (scheduled sampling)")
    rewire: Literal["sequential", "parallel"] = "sequential"
    grounding_text: Literal["phrase", "head"] = Field(
        "phrase",
        description="text of each grounding token: the region phrase ('red circle', GLIGEN's usage) or its last word "
        "('circle'), for models whose grounding tokens were trained on head nouns (the shapes GLIGEN model)",
    )
    position_code: bool = Field(
        False,
        description="add a fixed 2D sinusoidal code to the fusers' visual tokens; only for GLIGEN models trained with "
        "it (the shapes GLIGEN model's layoutguide.json sets it), never for real GLIGEN checkpoints",
    )
    grounding_prefix: str = Field(
        "",
        description="text put before each grounding phrase unless it already starts with it: 'a ' is the official "
        "Attention Refocusing code's form ('a ' + name; preset official)",
    )


def prefixed(phrase: str, prefix: str) -> str:
    """``prefix + phrase`` unless ``phrase`` already starts with ``prefix`` (case-insensitive): ``"a "`` turns
    "cat" into "a cat" and leaves "a cat" alone."""
    return phrase if not prefix or phrase.lower().startswith(prefix.lower()) else prefix + phrase


def grounding_inputs(
    pipe: Any, ctx: GuidanceContext, grounding_text: str = "phrase", prefix: str = ""
) -> dict[str, torch.Tensor]:
    """GLIGEN's ``position_net`` inputs for every sample: ``boxes`` ``(B, 30, 4)`` (normalised xyxy),
    ``positive_embeddings`` ``(B, 30, D)`` (the text encoder's pooled output of each region phrase, or of its last
    word with ``grounding_text="head"``) and ``masks`` ``(B, 30)`` (1 for real objects), on ``ctx.device``."""
    width = pipe.unet.config.cross_attention_dim
    batch = ctx.batch_size
    boxes = torch.zeros(batch, MAX_OBJECTS, 4)
    embeddings = torch.zeros(batch, MAX_OBJECTS, width)
    masks = torch.zeros(batch, MAX_OBJECTS)
    for b, layout in enumerate(ctx.layouts):
        if len(layout.regions) > MAX_OBJECTS:
            raise InputError(f"layout: GLIGEN grounds at most {MAX_OBJECTS} objects, got {len(layout.regions)}")
        if not layout.regions:
            continue
        phrases = [prefixed(grounding_phrase(p, grounding_text), prefix) for p in layout.phrases]
        ids = pipe.tokenizer(phrases, padding=True, return_tensors="pt").input_ids.to(pipe.text_encoder.device)
        with torch.no_grad():
            pooled = pipe.text_encoder(ids).pooler_output  # (R, D)
        if pooled.shape[-1] != width:
            raise InputError(
                f"GLIGEN needs phrase embeddings of width {width} (cross_attention_dim), the text encoder gives "
                f"{pooled.shape[-1]}"
            )
        n = len(layout.regions)
        boxes[b, :n] = torch.tensor(layout.boxes, dtype=torch.float32)
        embeddings[b, :n] = pooled.float().cpu()
        masks[b, :n] = 1
    dtype = pipe.unet.dtype
    return {
        "boxes": boxes.to(ctx.device, dtype),
        "positive_embeddings": embeddings.to(ctx.device, dtype),
        "masks": masks.to(ctx.device, dtype),
    }


@dataclasses.dataclass
class GroundingState(MethodState):
    """The call's grounding inputs (:func:`grounding_inputs`)."""

    tensors: dict[str, torch.Tensor]


class Gligen(GuidanceMethod):
    name = "gligen"
    summary = "GLIGEN box grounding through the UNet's gated self-attention (needs a gated UNet; arXiv 2301.07093)"
    kind: ClassVar[MethodKind] = "conditioning"
    needs_layout = True
    needs_gated_unet = True
    unsupported_on = {
        "dit": "GLIGEN's gated layers and grounding tokens exist for SD 1.4/1.5 UNets only (none for SD3 or FLUX); "
        "use regional"
    }
    Options = GligenOptions
    options: GligenOptions

    def activate(self, pipe: Any, ctx: GuidanceContext) -> contextlib.AbstractContextManager[MethodState]:
        return self._activate(pipe, ctx)

    @contextlib.contextmanager
    def _activate(self, pipe: Any, ctx: GuidanceContext) -> Iterator[MethodState]:
        unet = pipe.unet
        if getattr(unet, "position_net", None) is None or not grounded_blocks(unet):
            raise MethodOptionError(
                f"method {self.name!r} needs a GLIGEN UNet (attention_type='gated'); this model has no fusers"
            )
        o = self.options
        state = GroundingState(ctx, grounding_inputs(pipe, ctx, o.grounding_text, o.grounding_prefix))
        with contextlib.ExitStack() as stack:
            if self.options.rewire == "parallel":
                stack.enter_context(parallel_grounding(unet))
            if self.options.position_code:
                stack.enter_context(fuser_position_code(unet, ctx.latent_hw))
            yield state

    def unet_kwargs(self, state: MethodState, step: int, *, cfg: bool) -> dict[str, Any]:
        if step >= self.options.beta * state.ctx.num_steps:
            return {}
        assert isinstance(state, GroundingState)
        t = state.tensors
        if not cfg:
            return {"gligen": dict(t)}
        # [uncond, cond]: the unconditional half gets GLIGEN's null grounding (masks 0)
        return {
            "gligen": {
                "boxes": t["boxes"].repeat(2, 1, 1),
                "positive_embeddings": t["positive_embeddings"].repeat(2, 1, 1),
                "masks": torch.cat([torch.zeros_like(t["masks"]), t["masks"]]),
            }
        }


class ReGroundOptions(GligenOptions):
    beta: float = Field(1.0, ge=0, le=1, description="share of the steps with grounding on")
    rewire: Literal["sequential", "parallel"] = "parallel"


class ReGround(Gligen):
    name = "reground"
    kind = "rewiring"
    summary = "ReGround: GLIGEN with gated self-attention and cross-attention in parallel (arXiv 2403.13589)"
    Options = ReGroundOptions
