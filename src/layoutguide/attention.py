"""Attention capture and modulation on chosen backbone layers.

A method asks for maps by **role** with :class:`AttentionRequest`: ``"text"`` (text->image attention: a UNet's
cross-attention, or the image-query/text-key block of an MMDiT's joint attention), ``"image"`` (image->image:
self-attention, or the image/image block of joint attention) and ``"grounding"`` (GLIGEN's gated self-attention
over [visual; grounding tokens]), at target grid sides and places ``down``/``mid``/``up``. Requests come under
a **name** (``{"cross": AttentionRequest("text")}``) and are read back by that name from :class:`RecordedMaps`.
:func:`attention_control` installs a :class:`CaptureProcessor` on exactly the requested layers (and on the layers
a method wants to *modulate*); every other layer keeps its own processor (diffusers' fast SDPA). The originals
come back when the context exits, also when the body raises.

Captured maps are attention *probabilities*, differentiable when grad is on, for the conditional half of
the batch only, shaped ``(B, heads, Nq, Nk)`` with queries in row-major ``(h, w)`` order of the layer's grid.
The loop tells the store whether the batch is ``[uncond, cond]`` (CFG pass) or cond-only (guidance pass),
which step it is (passed on to modulators) and whether to record: stores never count calls to find where a
step ends.

Backbones: :func:`attention_layers` discovers a UNet's layers (SDXL's too: its attention at two levels is picked by
``levels``, relative to the latent, so the choice holds at any image size). An MMDiT's joint attention is discovered
by :mod:`layoutguide.joint_attention`, which presents each joint-attention module as one layer per role (``text``,
``image`` and the whole ``joint`` attention, named ``MODULE:ROLE``) at the image-token grid, so methods that name
roles read a DiT unchanged. A DiT has no down/mid/up path and one grid: its layers are chosen by block index
(``AttentionRequest.blocks``; None: every block), and places and levels do not apply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, Literal, cast

import torch

from .errors import InputError

Role = Literal["text", "image", "grounding", "joint"]
# a layer's kind: a UNet's attn2, attn1, GLIGEN's fuser attention; an MMDiT's whole joint attention ("joint")
Kind = Literal["cross", "self", "grounding", "joint"]
Place = Literal["down", "mid", "up"]

_ROLE_OF_KIND: dict[str, Role] = {"cross": "text", "self": "image", "grounding": "grounding", "joint": "joint"}
_KIND_OF_ROLE: dict[str, Kind] = {"text": "cross", "image": "self", "grounding": "grounding", "joint": "joint"}

_NAME = re.compile(
    r"^(?P<block>down_blocks\.(?P<down>\d+)|mid_block|up_blocks\.(?P<up>\d+))\..*\.(?P<attn>attn1|attn2|fuser\.attn)$"
)


_UNSET: Any = object()


@dataclasses.dataclass(frozen=True, init=False)
class AttentionRequest:
    """Which maps a method needs: a role, the UNet levels (or grid sides) and places.

    ``role``: ``"text"``, ``"image"``, ``"grounding"`` or ``"joint"`` (a DiT's whole joint attention, for methods that
    mask it) (the UNet layer kinds ``"cross"`` and ``"self"``, and the keyword ``kind=``, are accepted as their roles'
    old names).

    ``levels`` (default ``(2,)``): levels of the UNet's down/up path, counted from the latent: level ``k`` is the
    layers whose grid is the latent downsampled ``2**k`` times. The published layer choices are relative to the
    latent: SD's "16x16 layers" at 512 px are level 2 (a quarter of the 64x64 latent), which is 24x24 at 768 px
    (SD 2.x) and SDXL's 32x32 layers at 1024 px; its "32x32 layers" are level 1. Each level picks the available
    level nearest to it (on a tie the coarser one), so a UNet without that level still gets its nearest layers.

    ``sides``: absolute wanted grid sides instead (the longer side of a layer's map, nearest available side);
    ``None`` takes every resolution. Give ``levels`` or ``sides``, not both.

    ``blocks``: on a DiT, the transformer block indices (FLUX: double-stream blocks first, then single-stream ones);
    None: every block. UNet layers ignore it, as DiT layers ignore places, levels and sides.

    ``sources``: on a DiT, which attention an ``image`` request reads: ``"joint"`` (the image part of each block's
    joint attention) and/or ``"attn2"`` (SD3.5's image-only second attention, in its dual-attention blocks); None:
    the model's ``layoutguide.json`` ``image_attention``, else ``("joint",)``. Other roles read joint attention only.
    """

    role: Role
    sides: tuple[int, ...] | None
    places: tuple[Place, ...]
    levels: tuple[int, ...] | None
    blocks: tuple[int, ...] | None
    sources: tuple[str, ...] | None

    def __init__(
        self,
        role: str = "text",
        sides: tuple[int, ...] | None = _UNSET,
        places: tuple[Place, ...] = ("down", "up"),
        *,
        levels: tuple[int, ...] | None = None,
        kind: str | None = None,
        blocks: tuple[int, ...] | None = None,
        sources: Sequence[str] | None = None,
    ) -> None:
        name = _ROLE_OF_KIND.get(kind or role, kind or role)
        if name not in _KIND_OF_ROLE:
            raise InputError(
                f"AttentionRequest.role must be 'text', 'image', 'grounding' or 'joint', got {kind or role!r}"
            )
        if sources is not None:
            check_image_sources(sources, "AttentionRequest.sources", name)
        if levels is not None and sides is not _UNSET:
            raise InputError("AttentionRequest: give levels or sides, not both")
        if sides is _UNSET and levels is None:
            levels = (2,)
        if levels is not None and any(level < 0 for level in levels):
            raise InputError(f"AttentionRequest.levels must be >= 0 (0 = the latent's own grid), got {levels!r}")
        object.__setattr__(self, "role", name)
        object.__setattr__(self, "sides", None if sides is _UNSET or sides is None else tuple(sides))
        object.__setattr__(self, "places", tuple(places))
        object.__setattr__(self, "levels", None if levels is None else tuple(levels))
        object.__setattr__(self, "blocks", None if blocks is None else tuple(blocks))
        object.__setattr__(self, "sources", None if sources is None else tuple(sources))

    @property
    def kind(self) -> Kind:
        """The UNet layer kind serving this role (``cross``, ``self`` or ``grounding``)."""
        return _KIND_OF_ROLE[self.role]

    def describe(self) -> str:
        """``L2`` for level requests, the sides (``16``) or ``all`` otherwise (for listings)."""
        if self.levels is not None:
            return "/".join(f"L{level}" for level in self.levels)
        return "/".join(map(str, self.sides or ("all",)))


IMAGE_SOURCES = ("joint", "attn2")  # a DiT's image->image attentions: joint attention's image part; SD3.5's attn2


def check_image_sources(sources: Sequence[str], field: str, role: str = "image") -> None:
    """Raise an InputError naming ``field`` unless ``sources`` is a non-empty choice from :data:`IMAGE_SOURCES`
    (only ``("joint",)`` for a role other than ``image``)."""
    allowed = IMAGE_SOURCES if role == "image" else ("joint",)
    if isinstance(sources, str) or not sources or not set(sources) <= set(allowed):
        raise InputError(f"{field} must be a non-empty list from {list(allowed)} for role {role!r}, got {sources!r}")


# What a method asks for: request name -> one request, or several whose layers are pooled (e.g. the 16x16
# down/up layers and the 32x32 up layers under one name).
Requests = Mapping[str, AttentionRequest | tuple[AttentionRequest, ...]]


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    name: str  # module path, e.g. "up_blocks.1.attentions.0.transformer_blocks.0.attn2"
    place: Place
    kind: Kind
    factor: int  # downsampling factor of this layer's grid relative to the latent
    block: int | None = None  # a DiT layer's transformer block index; None on a UNet
    source: str = "joint"  # a DiT layer's attention: "joint", or "attn2" (SD3.5's image-only second attention)

    @property
    def module(self) -> str:
        """The attention module's path (a DiT layer's name carries its role after a colon)."""
        return self.name.partition(":")[0]

    @property
    def level(self) -> int:
        """The layer's level on the UNet's down/up path: its grid is the latent downsampled ``2**level`` times."""
        return self.factor.bit_length() - 1

    @property
    def role(self) -> Role:
        return _ROLE_OF_KIND[self.kind]

    def grid(self, latent_hw: tuple[int, int]) -> tuple[int, int]:
        h, w = latent_hw
        return math.ceil(h / self.factor), math.ceil(w / self.factor)


def attention_layers(unet: torch.nn.Module) -> list[LayerInfo]:
    """Every self/cross attention layer of a UNet2DConditionModel with its place and grid factor."""
    n_down = len(cast(torch.nn.ModuleList, unet.down_blocks))
    layers = []
    for name, _ in unet.named_modules():
        m = _NAME.match(name)
        if not m:
            continue
        place: Place
        if m["down"] is not None:
            place, factor = "down", 2 ** int(m["down"])
        elif m["up"] is not None:
            place, factor = "up", 2 ** (n_down - 1 - int(m["up"]))
        else:
            place, factor = "mid", 2 ** (n_down - 1)
        kind = cast(Kind, {"attn1": "self", "attn2": "cross", "fuser.attn": "grounding"}[m["attn"]])
        layers.append(LayerInfo(name, place, kind, factor))
    return layers


def select_layers(unet: torch.nn.Module, request: AttentionRequest, latent_hw: tuple[int, int]) -> list[LayerInfo]:
    """The layers of ``unet`` matching ``request`` for latents of size ``latent_hw``."""
    return _select(attention_layers(unet), request, latent_hw)


def _select(
    layers: Iterator[LayerInfo] | Sequence[LayerInfo],
    request: AttentionRequest,
    latent_hw: tuple[int, int],
    default_blocks: Sequence[int] | None = None,
    default_sources: Sequence[str] | None = None,
):
    """The layers matching ``request``; on a DiT, a request without ``blocks`` takes ``default_blocks`` (None: all),
    an ``image`` request without ``sources`` takes ``default_sources`` (None: joint attention)."""
    of_kind = [layer for layer in layers if layer.kind == request.kind]
    if of_kind and all(layer.block is not None for layer in of_kind):  # a DiT: blocks, one grid
        from .joint_attention import select_dit_layers

        return select_dit_layers(of_kind, request, default_blocks, default_sources)
    candidates = [layer for layer in of_kind if layer.place in request.places]
    if not candidates:
        raise InputError(f"the UNet has no {request.role}-attention layers in places {request.places}")
    if request.levels is not None:
        available_levels = sorted({layer.level for layer in candidates})
        # nearest available level; on a tie the coarser one (cheaper, and what the papers use)
        wanted = {min(available_levels, key=lambda a: (abs(a - level), -a)) for level in request.levels}
        return [layer for layer in candidates if layer.level in wanted]
    if request.sides is None:
        return candidates
    available = sorted({max(layer.grid(latent_hw)) for layer in candidates})
    # nearest available side; on a tie the coarser one (cheaper, and what the papers use)
    chosen = {min(available, key=lambda s: (abs(s - side), s)) for side in request.sides}
    return [layer for layer in candidates if max(layer.grid(latent_hw)) in chosen]


def returned_attention_request(resolution: int | None, level: int = 2) -> AttentionRequest:
    """The text attention a pipeline call returns (``return_attention``, ``segment``, ``--save-attention``): the
    ``down``/``up`` layers of ``level`` (relative to the latent, as the methods read them), or of the absolute
    grid side ``resolution`` when given."""
    if resolution is not None:
        return AttentionRequest("text", (resolution,), ("down", "up"))
    return AttentionRequest("text", places=("down", "up"), levels=(level,))


def _as_tuple(value: AttentionRequest | tuple[AttentionRequest, ...]) -> tuple[AttentionRequest, ...]:
    return value if isinstance(value, tuple) else (value,)


# Modulators change attention logits before the softmax (Paint-with-Words, DenseDiffusion). Called as
# ``modulate(step, layer, logits)`` with the denoising step, the layer and the logits ``(B, heads, Nq, Nk)`` of the
# *conditional* samples; they return new logits.
Modulator = Callable[[int, "LayerInfo", torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class Windowed:
    """A modulator that acts at some steps only (``active(step)``); outside them it returns the logits unchanged.
    With ``AttentionStore.sdpa_outside_windows`` (the pipeline's default) its layers run their own processor (fused
    SDPA) there instead, so a method whose window has closed costs what plain sampling costs (another kernel for the
    same maths: the shipped model's images are byte-identical, docs/results/cost.md)."""

    modulate: Modulator
    active: Callable[[int], bool]

    def __call__(self, step: int, layer: LayerInfo, logits: torch.Tensor) -> torch.Tensor:
        return self.modulate(step, layer, logits) if self.active(step) else logits


def active_modulators(modulators: Sequence[Modulator], step: int) -> list[Modulator]:
    """The modulators acting at ``step`` (a plain callable acts at every step)."""
    return [m for m in modulators if not isinstance(m, Windowed) or m.active(step)]


class ForwardCut(Exception):
    """Raised inside a guidance forward once every layer its loss reads has been recorded: nothing after those
    layers can change the loss, so the rest of the UNet neither runs nor stores activations for the backward."""


class AttentionStore:
    """Maps recorded during one UNet forward, keyed by layer name.

    The loop sets ``cfg`` (batch is ``[uncond, cond]``), ``recording`` and ``step`` before each forward
    (:func:`recording`, which also clears the maps); :func:`attention_control` sets the layers and ``latent_hw``.
    """

    def __init__(self) -> None:
        self.maps: dict[str, torch.Tensor] = {}
        self.layers: dict[str, LayerInfo] = {}
        self.record_layers: set[str] = set()
        self.modulators: dict[str, list[Modulator]] = {}
        self.recording = False
        self.cfg = False
        self.latent_hw: tuple[int, int] = (0, 0)
        self.step = 0  # the loop's step, handed to modulators as their argument
        self.sdpa_outside_windows = False  # idle Windowed modulators hand their layers to the original processor
        # the layers whose maps end a guidance forward (ForwardCut) once all are recorded; empty: run to the end
        self.cut_after: frozenset[str] = frozenset()
        self.joint_layout: Any = None  # a DiT's JointLayout (layoutguide.joint_attention), set for its call
        # the additive forms of joint-attention masks by (id(mask), dtype): (mask, bias); every block masked by the
        # same mask reuses it instead of building its own (42 MB of bf16 per block at FLUX 1024 px)
        self.joint_mask_bias: dict[Any, tuple[Any, Any]] = {}
        self.default_blocks: Sequence[int] | None = None  # a DiT's blocks for requests that name none (None: all)
        self.default_image_sources: Sequence[str] | None = None  # a DiT's image attentions (None: joint only)

    def clear(self) -> None:
        self.maps.clear()

    def get(self, request: AttentionRequest) -> dict[str, torch.Tensor]:
        """The recorded maps of the layers matching ``request``."""
        layers = list(self.layers.values())
        chosen = _select(layers, request, self.latent_hw, self.default_blocks, self.default_image_sources)
        names = {layer.name for layer in chosen}
        return {n: m for n, m in self.maps.items() if n in names}

    def layer_names(self, requests: Requests) -> frozenset[str]:
        """The names of the layers ``requests`` resolve to on this UNet and latent size."""
        layers = list(self.layers.values())
        return frozenset(
            layer.name
            for v in requests.values()
            for r in _as_tuple(v)
            for layer in _select(layers, r, self.latent_hw, self.default_blocks, self.default_image_sources)
        )

    def read(self, requests: Requests) -> RecordedMaps:
        """The maps of the last forward, read back by the names of ``requests``."""
        return RecordedMaps(self, requests)


class RecordedMaps:
    """One forward's maps under the names a method asked for them; derived tensors are computed once per forward.

    :meth:`layers` gives each layer's probabilities, :meth:`averaged` their mean over heads and layers on the finest
    grid; :meth:`cached` memoises any other derivation (e.g. normalised token maps) for the batch.
    """

    def __init__(self, store: AttentionStore, requests: Requests) -> None:
        self.store, self.requests = store, requests
        self.latent_hw = store.latent_hw
        self._cache: dict[Any, Any] = {}

    def layers(self, name: str) -> dict[str, torch.Tensor]:
        """Layer name -> ``(B, heads, Nq, Nk)`` probabilities of the layers requested under ``name`` (empty where
        none ran, e.g. GLIGEN's fusers after scheduled sampling). Requests in order, then layers as recorded."""
        if name not in self.requests:
            raise KeyError(f"no attention requested under the name {name!r}; requested: {sorted(self.requests)}")
        out: dict[str, torch.Tensor] = {}
        for request in _as_tuple(self.requests[name]):
            out.update(self.store.get(request))
        return out

    def grid(self, layer: str) -> tuple[int, int]:
        return self.store.layers[layer].grid(self.latent_hw)

    def averaged(self, name: str) -> torch.Tensor:
        """:func:`grid_maps` of the layers under ``name``: ``(B, h, w, Nk)``."""
        return self.cached(("averaged", name), lambda: grid_maps(self.layers(name), self.store.layers, self.latent_hw))

    def cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


class CaptureProcessor:
    """Attention that materialises probabilities (records them, applies modulators); SDPA otherwise.

    Keeps the stock processor signature. When neither recording nor modulation applies to this call it
    delegates to the layer's original processor, so an installed but idle capture costs nothing.
    """

    def __init__(self, store: AttentionStore, layer: LayerInfo, original: Any) -> None:
        self.store, self.layer, self.original = store, layer, original

    def _modulators(self) -> Sequence[Modulator]:
        modulators = self.store.modulators.get(self.layer.name, ())
        return active_modulators(modulators, self.store.step) if self.store.sdpa_outside_windows else modulators

    def _record(self, probs: torch.Tensor) -> None:
        store = self.store
        store.maps[self.layer.name] = probs
        if store.cut_after and store.cut_after <= store.maps.keys():
            raise ForwardCut(self.layer.name)  # this layer's output and everything after it cannot reach the loss

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs
    ):
        store, name = self.store, self.layer.name
        record = store.recording and name in store.record_layers
        modulators = self._modulators()
        if not record and not modulators:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        context_len = hidden_states.shape[1] if encoder_hidden_states is None else encoder_hidden_states.shape[1]
        attention_mask = attn.prepare_attention_mask(attention_mask, context_len, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        heads = attn.heads
        q = attn.head_to_batch_dim(query)  # (B*heads, Nq, d), batch-major: index b*heads + h
        k = attn.head_to_batch_dim(key)
        v = attn.head_to_batch_dim(value)
        if attn.upcast_attention:
            q, k = q.float(), k.float()
        logits = torch.bmm(q, k.transpose(-1, -2)) * attn.scale  # (B*heads, Nq, Nk)
        if attention_mask is not None:
            logits = logits + attention_mask
        if attn.upcast_softmax:
            logits = logits.float()
        logits = logits.view(batch, heads, *logits.shape[1:])  # (B, heads, Nq, Nk)
        first_cond = batch // 2 if store.cfg else 0
        if modulators:
            cond = logits[first_cond:]
            for modulate in modulators:
                cond = modulate(store.step, self.layer, cond)
            logits = torch.cat([logits[:first_cond], cond]) if first_cond else cond
        probs = logits.softmax(dim=-1)
        if record:
            self._record(probs[first_cond:])
        probs = probs.to(v.dtype).view(batch * heads, *probs.shape[2:])
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, v))
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


@contextlib.contextmanager
def attention_control(
    unet: torch.nn.Module,
    store: AttentionStore,
    record: Requests | Sequence[AttentionRequest] = (),
    modulate: Mapping[AttentionRequest, Sequence[Modulator]] | None = None,
    *,
    latent_hw: tuple[int, int],
) -> Iterator[AttentionStore]:
    """Install capture processors on the requested layers (named or not) for the duration of the block."""
    names = plan_store(
        store, attention_layers(unet), record, modulate, latent_hw, lambda r: select_layers(unet, r, latent_hw)
    )
    wrappers = {name: partial(CaptureProcessor, store, store.layers[name]) for name in names}
    with processors_installed(dict(unet.named_modules()), wrappers, store):
        yield store


def plan_store(
    store: AttentionStore,
    layers: Iterable[LayerInfo],
    record: Requests | Sequence[AttentionRequest],
    modulate: Mapping[Any, Sequence[Modulator]] | None,
    latent_hw: tuple[int, int],
    select: Callable[[AttentionRequest], Iterable[LayerInfo]],
) -> set[str]:
    """Set ``store`` up for one controlled block (its layers, the layers to record, each layer's modulators, the
    requests resolved by ``select``); returns the names of the layers that need a processor (UNet and DiT alike)."""
    requests = [r for v in record.values() for r in _as_tuple(v)] if isinstance(record, Mapping) else list(record)
    store.latent_hw = latent_hw
    store.layers = {layer.name: layer for layer in layers}
    store.record_layers = {layer.name for r in requests for layer in select(r)}
    store.modulators = {}
    for request, fns in (modulate or {}).items():
        for layer in select(request):
            store.modulators.setdefault(layer.name, []).extend(fns)
    return store.record_layers | set(store.modulators)


@contextlib.contextmanager
def processors_installed(
    modules: Mapping[str, Any], wrappers: Mapping[str, Callable[[Any], Any]], store: AttentionStore
) -> Iterator[AttentionStore]:
    """Give each module named in ``wrappers`` the processor ``wrappers[name](its own processor)`` for the block; put
    the modules' own processors back and empty ``store`` after it, also when the block raises."""
    originals = {}
    try:
        for name, wrap in wrappers.items():
            originals[name] = modules[name].processor
            modules[name].set_processor(wrap(originals[name]))
        yield store
    finally:
        for name, processor in originals.items():
            modules[name].set_processor(processor)
        store.recording = False
        store.clear()


@contextlib.contextmanager
def recording(
    store: AttentionStore, *, cfg: bool, step: int, on: bool = True, cut_after: frozenset[str] = frozenset()
) -> Iterator[AttentionStore]:
    """Mark one UNet forward: cond-only or CFG batch, its step, and whether to record. ``cut_after``: end the
    forward with :class:`ForwardCut` once these layers' maps are recorded (the caller catches it)."""
    store.clear()
    store.cfg, store.step, store.recording, store.cut_after = cfg, step, on, cut_after
    try:
        yield store
    finally:
        store.recording, store.cut_after = False, frozenset()


def grid_maps(maps: dict[str, torch.Tensor], layers: dict[str, LayerInfo], latent_hw: tuple[int, int]) -> torch.Tensor:
    """Average recorded maps over layers and heads, on the finest grid among them.

    Input maps are ``(B, heads, Nq, Nk)``; output ``(B, h, w, Nk)`` for cross attention. Layers on coarser
    grids are upsampled bilinearly (ZestGuide does the same).
    """
    if not maps:
        raise RuntimeError("no attention maps were recorded; the requested layers did not run")
    grids = {n: layers[n].grid(latent_hw) for n in maps}
    h, w = max(grids.values())
    total: torch.Tensor | None = None
    for name, m in maps.items():
        gh, gw = grids[name]
        avg = m.mean(dim=1)  # (B, Nq, Nk)
        avg = avg.reshape(avg.shape[0], gh, gw, avg.shape[-1])
        if (gh, gw) != (h, w):
            avg = torch.nn.functional.interpolate(
                avg.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False
            ).permute(0, 2, 3, 1)
        total = avg if total is None else total + avg
    assert total is not None
    return total / len(maps)
