"""The guidance pass of one denoising step, and what it may cost (:class:`GuidanceBudget`).

A gradient method's loss reads attention maps of some layers only; the guidance forward ends with
:class:`~layoutguide.attention.ForwardCut` as soon as the last of them is recorded, so the rest of the UNet (on
Stable Diffusion, the 32x32 and 64x64 up blocks behind the 16x16 maps) neither runs nor keeps activations for the
backward. That is exact: the loss and its gradient are those of the full forward (``tests/test_cost.py``). Which
layers end it follows from the method's requests as resolved on this UNet and latent size, not from block names.

DenseDiffusion's layers also leave the probabilities path outside its window (``sdpa_outside_windows``, on).
The other savings change what guidance does and are off by default; ``docs/results/cost.md`` measures their
accuracy cost: guided steps only where objects still move (``min_timestep``), fewer inner iterations
(``max_iterations``), gradient checkpointing of the guided forward (``checkpointing``: exact up to float
rounding, slower, less memory) and a bf16/fp16 autocast guidance forward (``autocast``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import torch

from .attention import AttentionStore, ForwardCut, recording
from .errors import InputError
from .methods import GuidanceMethod, MethodState, StepPlan

if TYPE_CHECKING:
    from .pipeline import LayoutPipeline

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclasses.dataclass(frozen=True)
class GuidanceBudget:
    """What the guidance pass may skip. The default is exact (same loss and gradient as a full forward).

    ``cut_forward``: end the guidance forward after the last layer the loss reads (exact; on).
    ``min_timestep``: guide only at timesteps ``t >= min_timestep`` (positions are decided early:
    docs/results/decision-time.md); 0 guides every step the method plans.
    ``max_iterations``: at most this many gradient updates per guided step (None: the method's own).
    ``checkpointing``: recompute the guided forward's activations in the backward instead of storing them.
    ``autocast``: run the guidance forward under ``torch.autocast`` in ``"bf16"`` or ``"fp16"`` (the loss and the
    update stay in fp32).
    ``sdpa_outside_windows``: modulation methods with an active window (DenseDiffusion) leave every layer on its own
    fused SDPA processor outside it, instead of the probabilities path with unchanged logits (on: the same maths in
    another kernel; the shipped model's images stay byte-identical, pinned in tests/test_cost.py).
    """

    cut_forward: bool = True
    min_timestep: int = 0
    max_iterations: int | None = None
    checkpointing: bool = False
    autocast: Literal["bf16", "fp16"] | None = None
    sdpa_outside_windows: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.min_timestep, int) or self.min_timestep < 0:
            raise InputError(f"guidance_budget.min_timestep must be an integer >= 0, got {self.min_timestep!r}")
        if self.max_iterations is not None and (not isinstance(self.max_iterations, int) or self.max_iterations < 1):
            raise InputError(
                f"guidance_budget.max_iterations must be None or an integer >= 1, got {self.max_iterations!r}"
            )
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise InputError(f"guidance_budget.autocast must be None, 'bf16' or 'fp16', got {self.autocast!r}")

    @classmethod
    def checked(cls, value: object) -> GuidanceBudget:
        """``value`` as a budget: the default for None, an error line for anything but a budget."""
        if value is None:
            return cls()
        if not isinstance(value, cls):
            raise InputError("guidance_budget: expected a layoutguide.guidance.GuidanceBudget or None")
        return value

    def limit(self, plan: StepPlan | None, t: torch.Tensor | int) -> StepPlan | None:
        """The method's plan for a step at timestep ``t`` within this budget (None: do not guide)."""
        if plan is None or plan.iterations < 1 or int(t) < self.min_timestep:
            return None
        if self.max_iterations is not None and plan.iterations > self.max_iterations:
            return dataclasses.replace(plan, iterations=self.max_iterations)
        return plan


@contextlib.contextmanager
def checkpointed(unet: torch.nn.Module, on: bool) -> Iterator[None]:
    """Gradient checkpointing of ``unet``'s blocks for the block, when ``on``; the previous setting after."""
    before = bool(getattr(unet, "is_gradient_checkpointing", False))
    if on and not before:
        unet.enable_gradient_checkpointing()  # type: ignore[operator]
    try:
        yield
    finally:
        if on and not before:
            unet.disable_gradient_checkpointing()  # type: ignore[operator]


def guide_step(
    pipe: LayoutPipeline,
    latents: torch.Tensor,
    t: torch.Tensor,
    step: int,
    plan: StepPlan,
    method: GuidanceMethod,
    state: MethodState,
    store: AttentionStore,
    cond: torch.Tensor,
    cond_mask: torch.Tensor | None,
    budget: GuidanceBudget,
    cond_added: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Up to ``plan.iterations`` gradient updates of the latents; returns them and a log of the losses."""
    denoiser = pipe.denoiser
    scale = pipe._input_scale(t)
    requests = method.attention_requests()
    cut_after = store.layer_names(requests) if budget.cut_forward else frozenset()
    device_type = latents.device.type
    autocast = (
        torch.autocast(device_type, dtype=AUTOCAST_DTYPES[budget.autocast])
        if budget.autocast
        else contextlib.nullcontext()
    )
    active = torch.ones(latents.shape[0], dtype=torch.bool, device=latents.device)
    losses = []
    x = latents * scale  # the UNet's input space
    with checkpointed(denoiser, budget.checkpointing):
        for _ in range(plan.iterations):
            with torch.enable_grad():
                x_var = x.detach().requires_grad_(True)
                # the backward runs inside the recording too: a checkpointed block recomputes its maps there
                with recording(store, cfg=False, step=step, cut_after=cut_after):
                    try:
                        with autocast:  # cond_added: SDXL's pooled embedding and time ids, a DiT's pooled text
                            extra = method.unet_kwargs(state, step, cfg=False) or None
                            pipe.denoise(x_var, t, cond, cond_mask, cond_added, extra)
                    except ForwardCut:
                        pass
                    store.cut_after = frozenset()  # a recomputation in the backward runs its block to the end
                    if budget.autocast:
                        store.maps = {name: m.float() for name, m in store.maps.items()}
                    out = method.loss(state, step, plan, store.read(requests))
                    objective = (out.loss * active).sum()
                    # a loss with no path to the latents (e.g. no maps at this step) has zero gradient
                    grad = (
                        torch.autograd.grad(objective, x_var)[0]
                        if objective.requires_grad
                        else torch.zeros_like(x_var)
                    )
            store.clear()  # drop the graph's maps now, not at the next forward
            update = method.update(state, step, plan, x, grad.float())
            x = torch.where(active.view(-1, *[1] * (x.dim() - 1)), update, x)
            losses.append(out.loss.detach().cpu().tolist())
            active &= ~out.done
            if not active.any():
                break
    return x / scale, {
        "plan": plan.info | {"step_size": plan.step_size, "max_iterations": plan.iterations},
        "losses": losses,
    }
