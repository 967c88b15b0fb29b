"""What a method sees of one call: the context (layouts, tokens, schedule), its own per-call state, and per-sample
views of the maps a guidance forward recorded.

A :class:`SampleView` owns the two conventions every token-map method used to repeat: the start-token offset of
Attend-and-Excite's normalised maps (token ``t`` of the prompt sits at column ``t - 1``) and the region masks
rasterised on a map's grid. Batched derivations (averaging, normalisation, smoothing) are computed once per forward
in :class:`~layoutguide.attention.RecordedMaps` and sliced per sample, so a per-sample loss costs no more than a
batched one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import torch

from ..attention import RecordedMaps
from ..layout import BoxEdges, Layout
from ..tokens import TokenMap


@dataclasses.dataclass
class GuidanceContext:
    """What a method may read about the current call. One entry per sample (prompt x image)."""

    layouts: list[Layout]
    token_maps: list[TokenMap]
    num_steps: int
    latent_hw: tuple[int, int]
    device: torch.device
    alphas_cumprod: torch.Tensor  # of the scheduler, on ``device``
    timesteps: torch.Tensor
    _mask_cache: dict = dataclasses.field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return len(self.layouts)

    def region_masks(
        self,
        b: int,
        grid: tuple[int, int],
        *,
        boxes_only: bool = False,
        soft: bool = False,
        box_edges: BoxEdges = "cover",
    ) -> torch.Tensor:
        """Sample ``b``'s regions rasterised on ``grid``: float ``(N_regions, h, w)``, in {0, 1} or, with
        ``soft``, the covered share of each cell; ``box_edges`` as :meth:`Layout.rasterize`."""
        key = (b, tuple(grid), boxes_only, soft, box_edges)
        if key not in self._mask_cache:
            masks = self.layouts[b].rasterize(grid[0], grid[1], boxes_only=boxes_only, soft=soft, box_edges=box_edges)
            self._mask_cache[key] = torch.from_numpy(masks).to(self.device)
        return self._mask_cache[key]

    def views(self, maps: RecordedMaps | None, state: MethodState, box_edges: BoxEdges = "cover") -> list[SampleView]:
        """One :class:`SampleView` per sample of the batch (``box_edges``: how its region masks round box edges)."""
        return [SampleView(b, self, maps, state, box_edges) for b in range(self.batch_size)]


@dataclasses.dataclass
class MethodState:
    """The per-call state of a method: what its ``activate()`` yields and every later hook receives first.

    Methods that precompute per-call inputs (GLIGEN's grounding tensors, Attend-and-Excite's subject tokens)
    subclass it; nothing per call is kept on the method instance, so one instance may serve concurrent calls.
    """

    ctx: GuidanceContext


def gaussian_smooth(maps: torch.Tensor, sigma: float = 0.5) -> torch.Tensor:
    """Attend-and-Excite's 3x3 smoothing (shared by Attention Refocusing), reflect padding.

    Its kernel is ``exp(-((x - mu) / (2 sigma))^2)`` (not the textbook ``/(2 sigma^2)``); normalised taps
    are about [0.212, 0.576, 0.212]. ``maps`` is ``(..., h, w)``.
    """
    x = torch.arange(3, dtype=maps.dtype, device=maps.device) - 1
    k1 = torch.exp(-((x / (2 * sigma)) ** 2))
    k1 = k1 / k1.sum()
    kernel = (k1[:, None] * k1[None, :])[None, None]
    shape = maps.shape
    flat = maps.reshape(-1, 1, *shape[-2:])
    pad = "reflect" if min(shape[-2:]) > 1 else "replicate"
    out = torch.nn.functional.conv2d(torch.nn.functional.pad(flat, (1, 1, 1, 1), mode=pad), kernel)
    return out.reshape(shape)


TokenSoftmax = Literal["auto", "all", "words"]


def normalized_token_maps(
    cross: torch.Tensor, temperature: float = 100.0, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """Attend-and-Excite's normalisation of averaged cross-attention ``(B, h, w, 77)``.

    Drop the start token and the last position, multiply by ``temperature`` and softmax over the rest:
    the result ``(B, h, w, 75)`` has token ``i`` at column ``i - 1``. ``keep`` ``(B, 75)`` bool limits each
    sample's softmax to some columns (the others come out 0): the official ``normalize_eot``, which keeps SD 2.x's
    padding, real "!" tokens, out of it.
    """
    logits = cross[..., 1:-1] * temperature
    if keep is not None:
        logits = logits.masked_fill(~keep[:, None, None, :], float("-inf"))
    return torch.softmax(logits, dim=-1)


def softmax_columns(token_maps: Sequence[TokenMap], which: TokenSoftmax, n_columns: int) -> torch.Tensor | None:
    """``(B, n_columns)`` bool: the columns of :func:`normalized_token_maps`' softmax per sample, or None for all.

    ``words``: the prompt's own tokens; ``auto``: those where the tokenizer pads with a vocabulary token (SD 2.x),
    every column where it pads with its end token (SD 1.x, the shapes models)."""
    if which == "all" or (which == "auto" and all(t.pads_with_end for t in token_maps)):
        return None
    keep = torch.ones(len(token_maps), n_columns, dtype=torch.bool)
    for b, tokens in enumerate(token_maps):
        if which == "words" or not tokens.pads_with_end:
            keep[b] = False
            keep[b, [p - 1 for p in tokens.word_positions(n_columns + 2)]] = True
    return keep


def region_tokens(indices: tuple[int, ...], which: str) -> tuple[int, ...]:
    """All token positions of a phrase, or only its last one (the head noun: "red *circle*")."""
    return indices if which == "all" else indices[-1:]


@dataclasses.dataclass
class SampleView:
    """Sample ``index`` of a guidance forward: its layout, its phrases' tokens, its maps by request name."""

    index: int
    ctx: GuidanceContext
    maps: RecordedMaps | None
    state: MethodState
    box_edges: BoxEdges = "cover"  # the method's ``box_edges`` option: the official code truncates far edges

    @property
    def layout(self) -> Layout:
        return self.ctx.layouts[self.index]

    @property
    def tokens(self) -> TokenMap:
        return self.ctx.token_maps[self.index]

    def phrase_tokens(self, which: Literal["all", "last"] = "all") -> tuple[tuple[int, ...], ...]:
        """Per region, the prompt positions of its phrase's tokens (all, or the last: the head noun)."""
        return tuple(region_tokens(idx, which) for idx in self.tokens.indices)

    def region_masks(self, grid: Sequence[int], *, boxes_only: bool = False, soft: bool = False) -> torch.Tensor:
        """This sample's regions on ``grid``: ``(R, h, w)`` (see :meth:`GuidanceContext.region_masks`), box edges
        rounded as the view's ``box_edges``."""
        return self.ctx.region_masks(
            self.index, (int(grid[0]), int(grid[1])), boxes_only=boxes_only, soft=soft, box_edges=self.box_edges
        )

    def _recorded(self) -> RecordedMaps:
        if self.maps is None:
            raise RuntimeError("this view has no recorded maps (it was made outside a guidance forward)")
        return self.maps

    def attention(self, name: str) -> torch.Tensor:
        """The maps under ``name`` averaged over heads and layers: ``(h, w, Nk)`` (keys: text tokens for the
        ``text`` role, the grid's pixels for ``image``)."""
        return self._recorded().averaged(name)[self.index].float()

    def layer_maps(self, name: str) -> list[tuple[tuple[int, int], torch.Tensor]]:
        """Per layer under ``name``: its grid and this sample's probabilities ``(heads, Nq, Nk)``."""
        maps = self._recorded()
        return [(maps.grid(layer), probs[self.index]) for layer, probs in maps.layers(name).items()]

    def phrase_maps(self, name: str) -> torch.Tensor:
        """``(R, h, w)``: per region, the text attention of its phrase's tokens summed (ZestGuide's Eq. 3)."""
        maps = self._recorded()
        cross = maps.averaged(name).float()[self.index]  # (h, w, Nk)
        return torch.stack([cross[..., list(idx)].sum(-1) for idx in self.tokens.indices])

    def _normalized(self, name: str, temperature: float, smoothing: bool, which: TokenSoftmax) -> torch.Tensor:
        maps = self._recorded()

        def compute() -> torch.Tensor:
            cross = maps.averaged(name).float()  # (B, h, w, 77)
            keep = softmax_columns(self.ctx.token_maps, which, cross.shape[-1] - 2)
            keep = None if keep is None else keep.to(cross.device)
            out = normalized_token_maps(cross, temperature, keep).permute(0, 3, 1, 2)  # (B, 75, h, w)
            return gaussian_smooth(out) if smoothing else out

        return maps.cached(("normalized", name, temperature, smoothing, which), compute)

    def token_map(
        self,
        name: str,
        position: int,
        *,
        temperature: float = 100.0,
        smoothing: bool = True,
        token_softmax: TokenSoftmax = "all",
    ) -> Any:
        """Attend-and-Excite's normalised (and smoothed) map ``(h, w)`` of prompt token ``position``; ``token_softmax``
        chooses the tokens of the softmax (:func:`softmax_columns`)."""
        return self._normalized(name, temperature, smoothing, token_softmax)[self.index, position - 1]

    def token_maps(
        self,
        name: str,
        positions: Sequence[int],
        *,
        temperature: float = 100.0,
        smoothing: bool = True,
        token_softmax: TokenSoftmax = "all",
    ) -> torch.Tensor:
        """:meth:`token_map` of several prompt positions: ``(T, h, w)``."""
        normalized = self._normalized(name, temperature, smoothing, token_softmax)
        return normalized[self.index, [t - 1 for t in positions]]
