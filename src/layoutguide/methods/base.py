"""The method contract: what every layout method declares and the hooks the sampling loop calls.

A method declares its **kind** (:data:`MethodKind`): ``gradient`` (a loss on recorded attention, descended on the
latents), ``modulation`` (edits attention logits), ``conditioning`` (extra inputs to the backbone) or ``rewiring``
(changes the backbone's forward). ``+`` combines by kind (:class:`~layoutguide.methods.compose.Composite`).

Hooks, all with one argument order ``(state, step, ...)``; ``state`` is what :meth:`GuidanceMethod.activate`
yields for the call (a :class:`MethodState`, whose ``ctx`` is the :class:`GuidanceContext`):

* ``activate(pipe, ctx)``: context for the whole call (install hooks, precompute inputs); yields the state.
* ``condition(state, embeddings, encode)``: edit the conditional text embeddings.
* ``modulations(state)``: attention-logit modulators per request, called ``(step, layer, logits)``.
* ``unet_kwargs(state, step, cfg=...)``: extra ``cross_attention_kwargs`` of a forward.
* gradient methods: ``attention_requests()`` (maps by name), ``plan(state, step)``, ``loss(state, step, plan,
  maps)`` (by default :meth:`GradientMethod.sample_loss` per :class:`SampleView`) and ``update(state, step, plan,
  latents, grad)``.

A new gradient method is its options, its requests and a short per-sample loss (docs/methods.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..attention import AttentionRequest, Modulator, Place, RecordedMaps, Requests
from ..layout import BoxEdges
from ..spec import MethodOptionError
from .context import (
    GuidanceContext,
    MethodState,
    SampleView,
    TokenSoftmax,
    gaussian_smooth,
    normalized_token_maps,
    region_tokens,
)

MethodKind = Literal["none", "gradient", "modulation", "conditioning", "rewiring"]
Encode = Callable[[list[str]], torch.Tensor]


class MethodOptions(BaseModel):
    """Hyperparameters of a method; unknown names are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LevelOptions(MethodOptions):
    """Which UNet layers a method reads: a level relative to the latent, or an absolute grid side."""

    level: int = Field(
        2,
        ge=0,
        description="UNet level of the attention layers read, relative to the latent (grid = latent / 2**level): 2 "
        "is SD's 16x16 layers at 512 px, 24x24 at 768 px (SD 2.x), SDXL's 32x32 at 1024 px, as published",
    )
    resolution: int | None = Field(
        None,
        gt=0,
        description="absolute grid side of the layers read instead of level (nearest available; the rule before "
        "issue 16, which reads the wrong layers once the image size changes)",
    )

    def layer_request(self, role: str, places: tuple[Place, ...]) -> AttentionRequest:
        """The request for this method's layers: ``resolution`` when given, else ``level``."""
        if self.resolution is not None:
            return AttentionRequest(role, (self.resolution,), places)
        return AttentionRequest(role, places=places, levels=(self.level,))


class TokenMapOptions(MethodOptions):
    """Options of the methods that read Attend-and-Excite's normalised token maps (:meth:`SampleView.token_maps`)."""

    smoothing: bool = True
    temperature: float = Field(
        100.0,
        gt=0,
        description="softmax temperature of the token maps (100 in Attend-and-Excite, tuned on Stable Diffusion); a "
        "model whose word attention is stronger saturates at 100 and needs less (docs/shapes.md: 10 on the shapes "
        "model)",
    )
    box_edges: BoxEdges = Field(
        "cover",
        description="how box masks round to the attention grid: 'cover' every touched cell, or 'truncate' both edges "
        "as the official Attention Refocusing and BoxDiff code (int(b*16)); fewer cells on typical boxes",
    )
    token_softmax: TokenSoftmax = Field(
        "all",
        description="tokens in the token-map softmax: 'all' (every position but the start token and the last, as "
        "the official code on SD 1.x), 'words' (the prompt's own tokens: end token and padding out, the official "
        "Attend-and-Excite/BoxDiff normalize_eot, set there for SD 2.1) or 'auto' ('words' when the tokenizer pads "
        "with a token other than its end token, SD 2.x's '!', else 'all')",
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
class SampleLoss:
    """One sample's loss (a scalar), whether it needs no further iteration, and scalar diagnostics."""

    loss: torch.Tensor
    done: bool | torch.Tensor = False
    info: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


class GuidanceMethod:
    """Base class: a method that does nothing (plain sampling). Subclasses override what their kind needs."""

    name: ClassVar[str] = "none"
    summary: ClassVar[str] = "plain classifier-free-guided sampling, no layout control"
    kind: ClassVar[MethodKind] = "none"
    needs_layout: ClassVar[bool] = False
    needs_gated_unet: ClassVar[bool] = False  # GLIGEN's fusers and position net
    # backbone ("unet", "dit") -> why this method cannot run there (the pipeline refuses it with that line)
    unsupported_on: ClassVar[dict[str, str]] = {}
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

    def activate(self, pipe: Any, ctx: GuidanceContext) -> contextlib.AbstractContextManager[MethodState]:
        """Context for the whole call (install hooks, precompute inputs); yields the call's state and must undo
        everything on exit."""
        return contextlib.nullcontext(MethodState(ctx))

    def attention_requests(self) -> Requests:
        """Attention maps the loss reads, by name (recorded on the guidance forward, read back by that name)."""
        return {}

    def requests(self) -> list[AttentionRequest]:
        """Every request of :meth:`attention_requests`, unnamed (for listings such as ``layoutguide methods``)."""
        return [r for v in self.attention_requests().values() for r in (v if isinstance(v, tuple) else (v,))]

    def modulations(self, state: MethodState) -> dict[AttentionRequest, list[Modulator]]:
        """Attention-logit modulators applied on every forward (guidance and CFG passes)."""
        return {}

    def unet_kwargs(self, state: MethodState, step: int, *, cfg: bool) -> dict[str, Any]:
        """Extra ``cross_attention_kwargs`` for the UNet forward at ``step`` (``cfg``: batch is [uncond, cond])."""
        return {}

    def condition(self, state: MethodState, embeddings: torch.Tensor, encode: Encode) -> torch.Tensor:
        """Edit the conditional text embeddings ``(B, 77, D)`` before sampling (``encode(texts)`` encodes text)."""
        return embeddings

    def text_for_step(self, state: MethodState, step: int, embeddings: torch.Tensor) -> torch.Tensor:
        """The conditional text embeddings the forwards of step ``step`` take, from those :meth:`condition` gave
        (a DiT's regional attention drops its appended region prompts after the steps its masks act in)."""
        return embeddings

    def plan(self, state: MethodState, step: int) -> StepPlan | None:
        """Guidance at denoising step ``step`` (0-based) or None for none."""
        return None

    def loss(self, state: MethodState, step: int, plan: StepPlan, maps: RecordedMaps) -> LossOutput:
        raise NotImplementedError(f"method {self.name!r} plans guidance steps but defines no loss")

    def update(
        self, state: MethodState, step: int, plan: StepPlan, latents: torch.Tensor, grad: torch.Tensor
    ) -> torch.Tensor:
        """Gradient descent on the (model-input scaled) latents; methods with a ``normalize_grad`` option take
        L-inf normalised steps when it is on."""
        if getattr(self.options, "normalize_grad", False):
            grad = linf_normalized(grad)
        return latents - plan.step_size * grad


class GradientMethod(GuidanceMethod):
    """A method that guides by gradient descent on a loss of recorded attention.

    Subclasses give ``attention_requests()`` (maps by name), ``plan()`` and either ``sample_loss()`` (one sample,
    through a :class:`SampleView`) or, for a batched loss, ``loss()``.
    """

    kind: ClassVar[MethodKind] = "gradient"

    def sample_loss(self, view: SampleView, step: int, plan: StepPlan) -> SampleLoss:
        raise NotImplementedError(f"method {self.name!r} defines neither sample_loss nor loss")

    def loss(self, state: MethodState, step: int, plan: StepPlan, maps: RecordedMaps) -> LossOutput:
        edges: BoxEdges = getattr(self.options, "box_edges", "cover")
        outs = [self.sample_loss(view, step, plan) for view in state.ctx.views(maps, state, edges)]
        loss = torch.stack([o.loss for o in outs])
        done = torch.stack([torch.as_tensor(o.done, device=loss.device).reshape(()) for o in outs]).bool()
        info = {key: torch.stack([o.info[key].detach() for o in outs]) for key in (outs[0].info if outs else {})}
        return LossOutput(loss, done.detach(), info)


def linf_normalized(grad: torch.Tensor) -> torch.Tensor:
    """Each sample's gradient divided by its largest absolute entry (ZestGuide's update rule)."""
    return grad / grad.flatten(1).abs().amax(1).clamp(min=1e-12).view(-1, *[1] * (grad.dim() - 1))


@contextlib.contextmanager
def state_of(state: MethodState) -> Iterator[MethodState]:
    """A context that yields ``state`` (for ``activate`` overrides that have nothing to undo)."""
    yield state


__all__ = [
    "AttentionRequest",
    "GradientMethod",
    "GuidanceContext",
    "GuidanceMethod",
    "LevelOptions",
    "LossOutput",
    "MethodKind",
    "MethodOptionError",
    "MethodOptions",
    "MethodState",
    "SampleLoss",
    "SampleView",
    "StepPlan",
    "TokenMapOptions",
    "TokenSoftmax",
    "gaussian_smooth",
    "linf_normalized",
    "normalized_token_maps",
    "region_tokens",
]
