"""The one small interface every layout method implements, and the per-call context the loop gives it.

A method says which attention maps it needs (:meth:`GuidanceMethod.requests`), which steps it guides and
how hard (:meth:`plan`), and computes a per-sample loss from the recorded maps (:meth:`loss`). The loop
does the rest: a conditional-only forward with grad, ``autograd.grad`` of the loss, :meth:`update` of the
latents, repeated for the planned iterations while any sample is not yet done. Methods that modulate
attention instead (Paint-with-Words, DenseDiffusion) return modulators from :meth:`modulations`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..attention import AttentionRequest, AttentionStore, Modulator, grid_maps
from ..layout import Layout
from ..spec import MethodOptionError
from ..tokens import TokenMap


class MethodOptions(BaseModel):
    """Hyperparameters of a method; unknown names are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenMapOptions(MethodOptions):
    """Options of the methods that read Attend-and-Excite's normalised token maps (:func:`smoothed_token_maps`)."""

    smoothing: bool = True
    temperature: float = Field(
        100.0,
        gt=0,
        description="softmax temperature of the token maps (100 in Attend-and-Excite, tuned on Stable Diffusion); a model "
        "whose word attention is stronger saturates at 100 and needs less (docs/shapes.md: 10 on the shapes model)",
    )


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """Guidance at one denoising step: at most ``iterations`` latent updates of size ``step_size``."""

    iterations: int
    step_size: float
    info: dict = dataclasses.field(default_factory=dict)  # e.g. the index on the method's reference grid


@dataclasses.dataclass
class LossOutput:
    loss: torch.Tensor  # (B,) per-sample loss; the gradient of its sum moves each sample's latents
    done: torch.Tensor  # (B,) bool: this sample needs no further iteration at this step
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # per-sample diagnostics, (B,) tensors


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
        self, b: int, grid: tuple[int, int], *, boxes_only: bool = False, soft: bool = False
    ) -> torch.Tensor:
        """Sample ``b``'s regions rasterised on ``grid``: float ``(N_regions, h, w)``, in {0, 1} or, with
        ``soft``, the covered share of each cell."""
        key = (b, grid, boxes_only, soft)
        if key not in self._mask_cache:
            masks = self.layouts[b].rasterize(grid[0], grid[1], boxes_only=boxes_only, soft=soft)
            self._mask_cache[key] = torch.from_numpy(masks).to(self.device)
        return self._mask_cache[key]


class GuidanceMethod:
    """Base class: a method that does nothing (plain sampling). Subclasses override what they need."""

    name: ClassVar[str] = "none"
    summary: ClassVar[str] = "plain classifier-free-guided sampling, no layout control"
    needs_layout: ClassVar[bool] = False
    needs_gated_unet: ClassVar[bool] = False  # GLIGEN's fusers and position net
    Options: ClassVar[type[MethodOptions]] = MethodOptions

    def __init__(self, **options: Any) -> None:
        try:
            self.options = self.Options(**options)
        except ValidationError as e:
            problems = "; ".join(f"{self.name}.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            allowed = ", ".join(self.Options.model_fields) or "none"
            raise MethodOptionError(
                f"bad option for method {self.name!r}: {problems} (allowed options: {allowed})"
            ) from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r})"

    def requests(self) -> list[AttentionRequest]:
        """Attention maps the loss reads (recorded on the guidance forward)."""
        return []

    def modulations(self, ctx: GuidanceContext) -> dict[AttentionRequest, list[Modulator]]:
        """Attention-logit modulators applied on every forward (guidance and CFG passes)."""
        return {}

    def activate(self, pipe, ctx: GuidanceContext) -> contextlib.AbstractContextManager:
        """Context for the whole call (install hooks, precompute inputs); must undo everything on exit."""
        return contextlib.nullcontext()

    def unet_kwargs(self, step: int, ctx: GuidanceContext, *, cfg: bool) -> dict[str, Any]:
        """Extra ``cross_attention_kwargs`` for the UNet forward at ``step`` (``cfg``: batch is [uncond, cond])."""
        return {}

    def condition(self, embeddings: torch.Tensor, ctx: GuidanceContext, encode) -> torch.Tensor:
        """Edit the conditional text embeddings ``(B, 77, D)`` before sampling (``encode(texts)`` encodes text)."""
        return embeddings

    def plan(self, step: int, ctx: GuidanceContext) -> StepPlan | None:
        """Guidance at denoising step ``step`` (0-based) or None for none."""
        return None

    def loss(self, store: AttentionStore, ctx: GuidanceContext, step: int, plan: StepPlan) -> LossOutput:
        raise NotImplementedError(f"method {self.name!r} plans guidance steps but defines no loss")

    def update(
        self, latents: torch.Tensor, grad: torch.Tensor, plan: StepPlan, ctx: GuidanceContext, step: int
    ) -> torch.Tensor:
        """Gradient descent on the (model-input scaled) latents; methods with a ``normalize_grad`` option take
        L-inf normalised steps when it is on."""
        if getattr(self.options, "normalize_grad", False):
            grad = linf_normalized(grad)
        return latents - plan.step_size * grad


def linf_normalized(grad: torch.Tensor) -> torch.Tensor:
    """Each sample's gradient divided by its largest absolute entry (ZestGuide's update rule)."""
    return grad / grad.flatten(1).abs().amax(1).clamp(min=1e-12).view(-1, *[1] * (grad.dim() - 1))


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


def normalized_token_maps(cross: torch.Tensor, temperature: float = 100.0) -> torch.Tensor:
    """Attend-and-Excite's normalisation of averaged cross-attention ``(B, h, w, 77)``.

    Drop the start token and the last position, multiply by ``temperature`` and softmax over the rest:
    the result ``(B, h, w, 75)`` has token ``i`` at column ``i - 1``.
    """
    return torch.softmax(cross[..., 1:-1] * temperature, dim=-1)


def smoothed_token_maps(store: AttentionStore, request: AttentionRequest, options: TokenMapOptions) -> torch.Tensor:
    """Per-token maps ``(B, 75, h, w)`` as Attend-and-Excite, BoxDiff and Attention Refocusing read them:
    cross-attention averaged over heads and layers, normalised (:func:`normalized_token_maps` at
    ``options.temperature``), smoothed if ``options.smoothing``. Token ``i`` of the prompt is at index ``i - 1``."""
    cross = grid_maps(store.get(request), store.layers, store.latent_hw).float()  # (B, h, w, 77)
    maps = normalized_token_maps(cross, options.temperature).permute(0, 3, 1, 2)  # (B, 75, h, w)
    return gaussian_smooth(maps) if options.smoothing else maps


def region_tokens(indices: tuple[int, ...], which: str) -> tuple[int, ...]:
    """All token positions of a phrase, or only its last one (the head noun: "red *circle*")."""
    return indices if which == "all" else indices[-1:]
