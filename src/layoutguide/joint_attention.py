"""Capture, modulation and region masks on an MMDiT's joint attention (SD3/SD3.5, FLUX.1), on unmodified diffusers
modules: only their attention processors are swapped, for the duration of a call.

A joint-attention module attends over one sequence of image tokens and text tokens (SD3: ``[image, text]``; FLUX:
``[text, image]``, its single-stream blocks on the already joined sequence). :func:`joint_attention_layers`
presents each module as three layers of :mod:`layoutguide.attention`, named ``MODULE:ROLE``:

* ``text`` (kind ``cross``): image queries over the text keys a token map indexes, the joint logits restricted to
  those keys and softmaxed over them: a cross-attention map ``(B, heads, N_img, K)``. SD3: the CLIP segment
  (77 keys, position 0 the start token, as on a UNet); FLUX: its T5 tokens after one empty column, so that prompt
  position ``p`` (T5 index ``p - 1``) sits at column ``p`` as every token-map method expects.
* ``image`` (kind ``self``): image queries over image keys, restricted and softmaxed the same way: ``(B, heads,
  N_img, N_img)``, a self-attention map.
* ``joint`` (kind ``joint``): the whole joint attention, for methods that mask it (:class:`JointMask`).

Every layer of a module sits at the image-token grid (the latent over the patch size, 2) and carries its block
index. SD3.5's image-only second attention (``attn2`` of its dual-attention blocks, no text in its sequence) is one
more ``image`` layer, ``transformer_blocks.I.attn2:image`` (source ``attn2``), read only when a request or the
model's ``layoutguide.json`` ``image_attention`` asks for it (:func:`select_dit_layers`); it is never masked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb

from .attention import (
    AttentionRequest,
    AttentionStore,
    ForwardCut,
    LayerInfo,
    Modulator,
    Requests,
    _select,
    plan_store,
    processors_installed,
)
from .errors import InputError

ROLES = ("text", "image", "joint")
_KINDS = {"text": "cross", "image": "self", "joint": "joint"}


@dataclasses.dataclass(frozen=True)
class JointLayout:
    """Where the parts of one joint sequence are: ``n_text`` text tokens, before the image tokens (FLUX) or after
    them (SD3); ``text_columns``: the text positions a ``text`` map presents, None for an empty column."""

    n_text: int
    text_first: bool
    text_columns: tuple[int | None, ...]

    def slices(self, n: int) -> tuple[slice, slice]:
        """(image, text) positions in a joint sequence of length ``n``."""
        if self.text_first:
            return slice(self.n_text, n), slice(0, self.n_text)
        return slice(0, n - self.n_text), slice(n - self.n_text, n)


@dataclasses.dataclass(frozen=True)
class JointMask:
    """A region mask on joint attention, acting at the steps where ``active(step)``: ``allowed(layer, layout, n)``
    gives the conditional samples' allowed query-key pairs ``(B, n, n)`` (bool, in the module's own order); the
    output is ``base_ratio`` x base attention + ``(1 - base_ratio)`` x masked attention (equal to blending the
    two probability maps, as attention is linear in them). The base attention is the unmasked one, or, with
    ``base_allowed`` (same signature), masked by that. ``uncond_keys(layout, n)``: the keys ``(n,)`` the
    unconditional samples of a CFG batch read (None: all; a method that appends text to the conditional samples
    hides the unconditional ones' padding so). Outside its steps the module runs its own processor.
    ``masks_maps``: whether a map recorded while it acts (for a gradient method) is the masked attention's, or the
    model's own (unmasked) attention's."""

    allowed: Callable[[LayerInfo, JointLayout, int], torch.Tensor]
    active: Callable[[int], bool]
    base_ratio: float = 0.0
    masks_maps: bool = False
    base_allowed: Callable[[LayerInfo, JointLayout, int], torch.Tensor] | None = None
    uncond_keys: Callable[[JointLayout, int], torch.Tensor] | None = None


def joint_attention_layers(transformer: torch.nn.Module) -> list[LayerInfo]:
    """Every joint-attention module of an SD3 or FLUX transformer as its ``text``, ``image`` and ``joint`` layers,
    then SD3.5's image-only ``attn2`` modules as ``image`` layers of source ``attn2`` (at their blocks' indices)."""
    factor = int(getattr(transformer.config, "patch_size", 1) or 1)
    factor = 2 if factor == 1 else factor  # FLUX packs 2x2 latent patches into one token (patch_size 1 in config)
    double: Any = transformer.transformer_blocks
    modules = [f"transformer_blocks.{i}.attn" for i in range(len(double))]
    single: Any = getattr(transformer, "single_transformer_blocks", None) or []
    modules += [f"single_transformer_blocks.{i}.attn" for i in range(len(single))]
    joint = [
        LayerInfo(f"{name}:{role}", "mid", _KINDS[role], factor, block)  # type: ignore[arg-type]
        for block, name in enumerate(modules)
        for role in ROLES
    ]
    dual = [i for i, block in enumerate(double) if getattr(block, "attn2", None) is not None]
    return joint + [LayerInfo(f"transformer_blocks.{i}.attn2:image", "mid", "self", factor, i, "attn2") for i in dual]


def select_dit_layers(
    of_kind: Sequence[LayerInfo],
    request: AttentionRequest,
    default_blocks: Sequence[int] | None,
    default_sources: Sequence[str] | None,
) -> list[LayerInfo]:
    """A DiT's layers of the request's kind in its blocks (``default_blocks`` when it names none; None: all) and, for
    an ``image`` request, from its sources (``default_sources`` when it names none; None: joint attention only)."""
    sources = request.sources or (default_sources if request.role == "image" else None) or ("joint",)
    from_sources = [layer for layer in of_kind if layer.source in sources]
    if not from_sources:
        raise InputError(
            f"image attention sources {list(sources)}: this transformer has only "
            f"{sorted({layer.source for layer in of_kind})} (attn2 is SD3.5's, in its dual-attention blocks)"
        )
    blocks = request.blocks if request.blocks is not None else default_blocks
    in_blocks = [layer for layer in from_sources if blocks is None or layer.block in blocks]
    if not in_blocks:
        have = sorted({int(layer.block or 0) for layer in from_sources})
        raise InputError(f"blocks {list(blocks or ())}: the transformer's {list(sources)} layers are in blocks {have}")
    return in_blocks


def _sd3_qkv(attn, hidden_states, encoder_hidden_states):
    """SD3's joint projections (diffusers' ``JointAttnProcessor2_0``): ``(B, heads, N, d)`` each, image first."""
    batch = hidden_states.shape[0]

    def heads(x):
        return x.view(batch, -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)

    q, k, v = heads(attn.to_q(hidden_states)), heads(attn.to_k(hidden_states)), heads(attn.to_v(hidden_states))
    if attn.norm_q is not None:
        q, k = attn.norm_q(q), attn.norm_k(k)
    if encoder_hidden_states is not None:
        eq = heads(attn.add_q_proj(encoder_hidden_states))
        ek = heads(attn.add_k_proj(encoder_hidden_states))
        ev = heads(attn.add_v_proj(encoder_hidden_states))
        if attn.norm_added_q is not None:
            eq, ek = attn.norm_added_q(eq), attn.norm_added_k(ek)
        q, k, v = torch.cat([q, eq], 2), torch.cat([k, ek], 2), torch.cat([v, ev], 2)
    return q, k, v


def _sd3_out(attn, out, hidden_states, encoder_hidden_states):
    n_img = hidden_states.shape[1]
    image, text = out[:, :n_img], out[:, n_img:]
    image = attn.to_out[1](attn.to_out[0](image))
    if encoder_hidden_states is None:
        return image
    return image, (text if attn.context_pre_only else attn.to_add_out(text))


def _flux_qkv(attn, hidden_states, encoder_hidden_states, rotary):
    """FLUX's joint projections (diffusers' ``FluxAttnProcessor``), RoPE applied: ``(B, heads, N, d)``, text first."""
    if attn.fused_projections:
        q, k, v = attn.to_qkv(hidden_states).chunk(3, dim=-1)
    else:
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
    q, k, v = (x.unflatten(-1, (-1, attn.head_dim)) for x in (q, k, v))
    q, k = attn.norm_q(q), attn.norm_k(k)
    if encoder_hidden_states is not None and attn.added_kv_proj_dim is not None:
        if attn.fused_projections:
            eq, ek, ev = attn.to_added_qkv(encoder_hidden_states).chunk(3, dim=-1)
        else:
            eq = attn.add_q_proj(encoder_hidden_states)
            ek, ev = attn.add_k_proj(encoder_hidden_states), attn.add_v_proj(encoder_hidden_states)
        eq, ek, ev = (x.unflatten(-1, (-1, attn.head_dim)) for x in (eq, ek, ev))
        eq, ek = attn.norm_added_q(eq), attn.norm_added_k(ek)
        q, k, v = torch.cat([eq, q], 1), torch.cat([ek, k], 1), torch.cat([ev, v], 1)
    if rotary is not None:
        q, k = apply_rotary_emb(q, rotary, sequence_dim=1), apply_rotary_emb(k, rotary, sequence_dim=1)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def _flux_out(attn, out, encoder_hidden_states):
    if encoder_hidden_states is None:
        return out
    n_text = encoder_hidden_states.shape[1]
    text, image = out[:, :n_text], out[:, n_text:]
    image = attn.to_out[1](attn.to_out[0](image.contiguous()))
    return image, attn.to_add_out(text.contiguous())


class ImageAttentionCaptureProcessor:
    """SD3.5's image-only ``attn2`` with its probabilities materialised and recorded as an ``image`` map when its
    layer is recorded (diffusers' ``JointAttnProcessor2_0`` without context: the same projections and RMS norms);
    every other call goes to the module's own processor. It takes no masks: regional attention masks joint
    attention only (the image-only attention has no text to assign to regions)."""

    def __init__(self, store: AttentionStore, layer: LayerInfo, original: Any):
        self.store, self.layer, self.original = store, layer, original

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        store = self.store
        if not (store.recording and self.layer.name in store.record_layers) or encoder_hidden_states is not None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        q, k, v = _sd3_qkv(attn, hidden_states, None)
        probs = ((q @ k.transpose(-1, -2)) * (1 / math.sqrt(q.shape[-1]))).softmax(-1)
        store.maps[self.layer.name] = probs[hidden_states.shape[0] // 2 if store.cfg else 0 :]
        if store.cut_after and store.cut_after <= store.maps.keys():
            raise ForwardCut(self.layer.name)
        out = (probs.to(v.dtype) @ v).transpose(1, 2).flatten(2).to(q.dtype)
        return _sd3_out(attn, out, hidden_states, None)


class JointCaptureProcessor:
    """Joint attention that, where a layer of this module is recorded or a :class:`JointMask` acts, computes the
    output by fused SDPA (masked where masks act) and each recorded part's probabilities from that part's logits
    alone, and hands every other call to the module's own processor (so an installed but idle capture costs
    nothing). Logit modulators of the UNet methods are not applied here: those methods refuse a DiT (their rules are
    defined on a UNet's 77 cross-attention keys)."""

    def __init__(self, store: AttentionStore, module: str, layers: dict[str, LayerInfo], original: Any, flux: bool):
        self.store, self.module, self.layers, self.original, self.flux = store, module, layers, original, flux

    def _acting(self) -> tuple[list[str], list[JointMask]]:
        store = self.store
        recorded = [
            role for role, layer in self.layers.items() if store.recording and layer.name in store.record_layers
        ]
        installed: Sequence[Any] = store.modulators.get(self.layers["joint"].name, ())
        return recorded, [m for m in installed if isinstance(m, JointMask) and m.active(store.step)]

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        recorded, masks = self._acting()
        if not recorded and not masks:
            if self.flux:
                return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask)
        if self.flux:
            q, k, v = _flux_qkv(attn, hidden_states, encoder_hidden_states, image_rotary_emb)
        else:
            q, k, v = _sd3_qkv(attn, hidden_states, encoder_hidden_states)
        out = self._attend(q, k, v, self._layout(q.shape[2]), recorded, masks)
        out = out.transpose(1, 2).flatten(2).to(q.dtype)
        if self.flux:
            return _flux_out(attn, out, encoder_hidden_states)
        return _sd3_out(attn, out, hidden_states, encoder_hidden_states)

    def _layout(self, n: int) -> JointLayout:
        """The store's layout with the text length of this sequence (``n`` minus the image tokens): a method may
        append text (regional's separately encoded region prompts) for some steps."""
        layout = self.store.joint_layout
        h, w = self.layers["joint"].grid(self.store.latent_hw)
        n_text = n - h * w
        return layout if n_text == layout.n_text else dataclasses.replace(layout, n_text=n_text)

    def _allowed(self, masks: list[JointMask], layout: JointLayout, n: int, device) -> tuple[Any, float, Any, Any]:
        """The conditional samples' allowed pairs ``(B_cond, n, n)`` (None without masks), the base ratio, the
        base attention's allowed pairs (None: unmasked) and the unconditional samples' keys ``(n,)`` (None: all)."""
        if not masks:
            return None, 0.0, None, None
        layer = self.layers["joint"]
        cond = _all([m.allowed(layer, layout, n) for m in masks], device)
        bases = [m.base_allowed(layer, layout, n) for m in masks if m.base_allowed is not None]
        keys = [m.uncond_keys(layout, n) for m in masks if m.uncond_keys is not None]
        return cond, max(m.base_ratio for m in masks), _all(bases, device), _all(keys, device)

    def _additive(self, allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``allowed`` (``(B, n, n)`` or keys ``(n,)``) as an additive mask (0 or -inf) that broadcasts over heads
        and queries: the boolean one takes a slower CPU kernel (3.4 vs 2.5 ms a call at the shapes MMDiT's size).
        Built once per mask (methods cache theirs), kept on the store for the other blocks."""
        key = (id(allowed), dtype)
        cached = self.store.joint_mask_bias.get(key)
        if cached is None or cached[0] is not allowed:
            bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))
            cached = self.store.joint_mask_bias[key] = (allowed, bias[:, None] if allowed.dim() == 3 else bias[None])
        return cached[1]

    def _attend(self, q, k, v, layout: JointLayout, recorded: list[str], masks: list[JointMask]):
        n = q.shape[2]
        allowed, base, base_allowed, uncond_keys = self._allowed(masks, layout, n, q.device)
        image, text = layout.slices(n)
        first_cond = q.shape[0] // 2 if self.store.cfg else 0
        c = slice(first_cond, None)  # the conditional samples: the unconditional ones of a CFG batch are unmasked
        # Each recorded part's logits alone (a text map is image queries x text keys, a few times smaller than the
        # whole joint square: every gradient method's and the attention supervision's forward and backward); the
        # output by fused attention. A recorded map is the masked attention's where a mask asks for it.
        mask_maps = allowed is not None and any(m.masks_maps for m in masks)
        for role in recorded:
            logits = self._part_logits(role, q[c], k[c], image, text)
            if mask_maps:
                logits = logits.masked_fill(~_part(role, allowed[:, None], image, text), float("-inf"))
            self._record(role, logits, layout, masked=mask_maps)
        if allowed is None:
            return F.scaled_dot_product_attention(q, k, v)
        out = F.scaled_dot_product_attention(q[c], k[c], v[c], attn_mask=self._additive(allowed, q.dtype))
        if base > 0 and base_allowed is not allowed:  # a block whose mask is the base one: the blend is that
            base_mask = None if base_allowed is None else self._additive(base_allowed, q.dtype)
            out = base * F.scaled_dot_product_attention(q[c], k[c], v[c], attn_mask=base_mask) + (1 - base) * out
        if first_cond == 0:
            return out
        u = slice(0, first_cond)
        keys = None if uncond_keys is None else self._additive(uncond_keys, q.dtype)
        return torch.cat([F.scaled_dot_product_attention(q[u], k[u], v[u], attn_mask=keys), out])

    @staticmethod
    def _part_logits(role: str, q: torch.Tensor, k: torch.Tensor, image: slice, text: slice) -> torch.Tensor:
        """The logits of one part of joint attention from the queries and keys (``text``: image queries x all text
        keys; ``image``: image x image; ``joint``: the whole square)."""
        scale = 1 / math.sqrt(q.shape[-1])
        if role == "joint":
            return (q @ k.transpose(-1, -2)) * scale
        keys = k[:, :, text] if role == "text" else k[:, :, image]
        return (q[:, :, image] @ keys.transpose(-1, -2)) * scale

    def _record(self, role: str, logits: torch.Tensor, layout: JointLayout, masked: bool) -> None:
        """Record one part's probabilities from its logits (:func:`_part`'s shapes), ``masked`` where a mask set
        some of them to -inf."""
        text = role not in ("joint", "image")
        if text:
            logits = logits[..., [c for c in layout.text_columns if c is not None]]
        probs = _masked_softmax(logits) if masked else logits.softmax(-1)
        empty = [i for i, c in enumerate(layout.text_columns) if c is None] if text else []
        if empty:  # FLUX's empty start column, so prompt position p sits at column p
            probs = torch.cat([probs.new_zeros(*probs.shape[:-1], len(empty)), probs], -1)
        self.store.maps[self.layers[role].name] = probs
        store = self.store
        if store.cut_after and store.cut_after <= store.maps.keys():
            raise ForwardCut(self.layers[role].name)


def _all(masks: list[torch.Tensor], device) -> torch.Tensor | None:
    """The pairs every mask allows (None for no mask); one mask is returned as it is, so its additive form is cached
    by identity."""
    if not masks:
        return None
    out = masks[0]
    for mask in masks[1:]:
        out = out & mask
    return out.to(device)


def _masked_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis where a row whose keys are all masked (-inf) reads nothing (zeros) instead of NaN: a
    mask may leave a query no key among the recorded ones (FLUX's background cells when every word of the prompt is in
    a phrase and regional hides the end tokens). The fill keeps such rows' gradient finite too. No branch on whether
    a row is dead: a data-dependent ``if`` would wait for the device on every recorded block."""
    dead = torch.isneginf(logits).all(-1, keepdim=True)
    return logits.masked_fill(dead, 0.0).softmax(-1).masked_fill(dead, 0.0)


def _part(role: str, logits: torch.Tensor, image: slice, text: slice) -> torch.Tensor:
    """One part of the whole joint square of ``logits``: what :meth:`JointCaptureProcessor._part_logits` computes."""
    if role == "joint":
        return logits
    return logits[:, :, image, text] if role == "text" else logits[:, :, image, image]


@contextlib.contextmanager
def joint_attention_control(
    transformer: torch.nn.Module,
    store: AttentionStore,
    record: Requests,
    modulate: Mapping[Any, Sequence[Modulator]] | None,
    *,
    latent_hw: tuple[int, int],
    layout: JointLayout,
) -> Iterator[AttentionStore]:
    """:func:`~layoutguide.attention.attention_control` for a DiT: capture processors on the modules of the requested
    and modulated layers for the block, the modules' own processors back after it."""
    flux = hasattr(transformer, "single_transformer_blocks")
    layers = joint_attention_layers(transformer)
    store.joint_layout = layout  # what the processors slice by
    wanted_layers = plan_store(
        store,
        layers,
        record,
        modulate,
        latent_hw,
        lambda r: _select(layers, r, latent_hw, store.default_blocks, store.default_image_sources),
    )
    by_module: dict[str, dict[str, LayerInfo]] = {}
    for layer in layers:
        by_module.setdefault(layer.module, {})[layer.name.partition(":")[2]] = layer
    wrappers: dict[str, Callable[[Any], Any]] = {}
    for module in {store.layers[name].module for name in wanted_layers}:
        roles = by_module[module]
        if "joint" in roles:
            wrappers[module] = partial(JointCaptureProcessor, store, module, roles, flux=flux)
        else:  # SD3.5's image-only attn2
            wrappers[module] = partial(ImageAttentionCaptureProcessor, store, roles["image"])
    with processors_installed(dict(transformer.named_modules()), wrappers, store):
        yield store
