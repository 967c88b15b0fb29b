"""Attention Refocusing: Cross-Attention Refocusing (CAR) and Self-Attention Refocusing (SAR).

Phung, Ge, Huang, "Grounded Text-to-Image Synthesis with Attention Refocusing", CVPR 2024, arXiv 2306.05427;
official code ``Attention-Refocusing/attention-refocusing`` (HEAD ``2c265cb``).

Maps: cross- and self-attention of the UNet's level-2 layers (a quarter of the latent: SD's 16x16 at 512 px;
``down`` and ``up``; mid excluded), averaged over heads and layers per sample, cross maps normalised as in
Attend-and-Excite (drop start token and last position, x100, softmax) and smoothed with the 3x3 kernel of
``gaussian_smooth``.

CAR, for every token i of a region phrase, M_i the union of the boxes of the regions containing i:

* ``variant="paper"`` (default): ``L_CAR = 1/q sum_i [(1 - max(A_i * M_i)) + max(A_i * (1 - M_i))]``.
* ``variant="official"``: the official code's thresholded form, per box of the token: ``6(1-m)`` if the
  in-box peak m < 0.1, ``(1-m)`` if m < 0.2 or early (reference step < 15), else 0; per box of every other
  token's regions (own boxes zeroed; a box counts once per token of its phrase, as the official code, whose
  objects are words) with peak n: ``4n`` if n > 0.15, ``n`` if n > 0.1 or early; plus
  ``1/2 k max(A_i outside all boxes)`` with k the token's number of boxes; summed, divided by the number of tokens.

SAR (the official code's form; the paper's extra division by the outside area is unverified): for every
region box b, the mean over pixels p in b of the self-attention mass p puts outside b, averaged over regions;
with ``variant="official"`` summed over each token's boxes and divided by the number of tokens, as the official
code (whose objects are the phrases' words, each with its phrase's boxes: a token with three boxes weighs three).

Update and schedule (official): ``x <- x - s * grad(L_CAR + L_SAR + w_G L_G)``, raw gradient, on a 50-step
reference grid: steps 0-1: s=4, up to 2 iterations; 2-4: s=4, 6; 5-9: s=3, 3; steps 10 and 15: s=3, 2; steps 20,
25, 30, 35: s=1, 2; no guidance elsewhere. Iterations stop early once the step-size-scaled loss ``s * L`` is <= 0.1
(before reference step 10 only; ``early_stop_on="raw"`` compares L itself) or every box holds an attention peak >=
0.2. L_G (``grounding_weight``, 3 in the official code) reads GLIGEN's fuser attention, averaged over layers before
its max (``grounding_average``), on reference steps before 15 only (``grounding_until``). Other step counts map
each step to the reference steps its share of the 50-step grid covers. ``schedule="v1"`` is the June-2023 code: s=3
(step < 10), 2 (< 20), 1 (< 30), up to 5/5/1 iterations while loss > 0.1.

``loss_scale`` multiplies every s. The official s was tuned for GLIGEN; on plain Stable Diffusion the
official issue #3 reports no effect below about 10x that (loss_scale ~ 10). Models differ: calibrate.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ..attention import Requests
from .base import (
    GradientMethod,
    LevelOptions,
    MethodState,
    SampleLoss,
    SampleView,
    StepPlan,
    TokenMapOptions,
    region_tokens,
)

REFERENCE_STEPS = 50


def _official(i: int) -> tuple[float, int] | None:
    if i <= 1:
        return 4.0, 2
    if i <= 4:
        return 4.0, 6
    if i <= 9:
        return 3.0, 3
    if i in (10, 15):
        return 3.0, 2
    if i in (20, 25, 30, 35):
        return 1.0, 2
    return None


def _v1(i: int) -> tuple[float, int] | None:
    if i < 10:
        return 3.0, 5
    if i < 20:
        return 2.0, 5
    if i < 30:
        return 1.0, 1
    return None


SCHEDULES = {"official": _official, "v1": _v1}


def reference_plan(step: int, num_steps: int, schedule) -> tuple[int, tuple[float, int]] | None:
    """The first scheduled reference step in ``[step, step + 1) * 50 / num_steps``, with its (s, iterations)."""
    lo = step * REFERENCE_STEPS / num_steps
    hi = (step + 1) * REFERENCE_STEPS / num_steps
    for ref in range(int(lo) if float(lo).is_integer() else int(lo) + 1, REFERENCE_STEPS):
        if ref >= hi:
            break
        found = schedule(ref)
        if found is not None:
            return ref, found
    return None


class RefocusOptions(TokenMapOptions, LevelOptions):
    car: bool = True
    car_foreground: bool = True
    car_background: bool = True
    sar: bool = True
    variant: Literal["paper", "official"] = "paper"
    schedule: Literal["official", "v1"] = "official"
    loss_scale: float = Field(1.0, gt=0, description="multiplies the schedule's step sizes")
    normalize_grad: bool = Field(
        False,
        description="not in the paper: divide each sample's gradient by its max |entry| (ZestGuide's update), so the "
        "step is s * loss_scale in latent units whatever the gradient's scale; for models whose raw gradients vary by "
        "orders of magnitude between images (docs/shapes.md); use a small loss_scale (~0.05)",
    )
    tokens: Literal["all", "last"] = "all"  # every token of a phrase (official) or its last token (head noun)
    early_stop: bool = True
    early_stop_on: Literal["scaled", "raw"] = Field(
        "scaled",
        description="what loss_threshold is compared with: the step-size-scaled loss step_size * L, as the official "
        "code (its loss carries the step size s: effective raw threshold 0.1/s, 0.025-0.033), or the raw L",
    )
    loss_threshold: float = 0.1
    inside_threshold: float = 0.2
    grounding_weight: float = Field(
        0.0, ge=0, description="weight of the official code's GLIGEN grounding-token loss L_G (3 there)"
    )
    grounding_until: int | None = Field(
        15,
        ge=0,
        description="L_G only on reference steps (of 50) before this one, as the official code's 't < 15' (its "
        "GLIGEN fusers run for the first 15 of 50 steps); None: on every guided step",
    )
    grounding_average: Literal["maps", "losses"] = Field(
        "maps",
        description="L_G's layer averaging: 'maps' averages the fuser attention over layers before the in-box "
        "mean and the max over tokens (official); 'losses' takes the loss per layer, then their mean",
    )


def car_paper(
    maps: torch.Tensor, masks: torch.Tensor, regions_of_token: list[list[int]], o: RefocusOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's L_CAR of one sample and its smallest in-box peak: ``maps`` ``(T, h, w)`` per token, ``masks``
    ``(R, h, w)``, ``regions_of_token[t]`` the regions containing token ``t``."""
    terms, insides = [], []
    for t, regions in enumerate(regions_of_token):
        inside = masks[regions].amax(0)  # union of the token's boxes
        term = maps.new_zeros(())
        if o.car_foreground:
            term = term + (1 - (maps[t] * inside).amax())
        if o.car_background:
            term = term + (maps[t] * (1 - inside)).amax()
        terms.append(term)
        insides += [(maps[t] * masks[r]).amax() for r in regions]
    return torch.stack(terms).mean(), torch.stack(insides).min()


def car_official(
    maps: torch.Tensor, masks: torch.Tensor, regions_of_token: list[list[int]], o: RefocusOptions, early: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official code's thresholded L_CAR (``early``: reference step < 15) and the smallest in-box peak."""
    total, insides = maps.new_zeros(()), []
    everything = masks.amax(0)
    for t, regions in enumerate(regions_of_token):
        a = maps[t]
        if o.car_foreground:
            for r in regions:
                m = (a * masks[r]).amax()
                insides.append(m)
                if m < 0.1:
                    total = total + 6 * (1 - m)
                elif m < 0.2 or early:
                    total = total + (1 - m)
        else:
            insides += [(a * masks[r]).amax() for r in regions]
        if o.car_background:
            own = masks[regions].amax(0)
            a_other = a * (1 - own)
            # every other token's boxes, as the official loop over the other objects (words): a box whose phrase has
            # two words counts twice; a box shared with this token is zeroed and adds nothing
            for u, other in enumerate(regions_of_token):
                if u == t:
                    continue
                for r in other:
                    n = (a_other * masks[r]).amax()
                    if n > 0.15:
                        total = total + 4 * n
                    elif n > 0.1 or early:
                        total = total + n
            total = total + 0.5 * len(regions) * (a * (1 - everything)).amax()
    return total / len(regions_of_token), torch.stack(insides).min()


def token_groups(indices: tuple[tuple[int, ...], ...], which: str) -> dict[int, list[int]]:
    """Token position -> the regions whose phrase contains it (a phrase's words share its boxes)."""
    groups: dict[int, list[int]] = {}
    for r, positions in enumerate(indices):
        for t in region_tokens(positions, which):
            groups.setdefault(t, []).append(r)
    return groups


def sar_loss(
    self_maps: torch.Tensor, masks: torch.Tensor, regions_of_token: list[list[int]] | None = None
) -> torch.Tensor:
    """SAR of one sample: ``self_maps`` ``(h, w, h*w)``, ``masks`` ``(R, h, w)``: per region box, the mean over its
    pixels of the self-attention mass they put outside it, averaged over regions; given ``regions_of_token``,
    summed over each token's regions and divided by the number of tokens (the official code's weighting)."""
    flat = masks.flatten(1)  # (R, N)
    S = self_maps.reshape(-1, self_maps.shape[-1])  # (N, N): rows are queries
    outside_mass = S @ (1 - flat).T  # (N, R): mass each pixel puts outside each region
    per_region = (outside_mass * flat.T).sum(0) / flat.sum(1).clamp(min=1)
    if regions_of_token is None:
        return per_region.mean()
    return torch.stack([per_region[regions].sum() for regions in regions_of_token]).mean()


def grounding_term(probs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """L_G of one fuser attention map ``probs`` ``(heads, N + K, N + K)`` (N visual tokens on the grid of ``masks``
    ``(R, N)``, then K grounding tokens): per region, the mean over its pixels of the attention to the grounding
    tokens, its own token zeroed, max over tokens, mean over heads; summed over regions / number of regions."""
    n = masks.shape[1]
    to_tokens = probs[:, :n, n:].float()  # (heads, N, K): visual queries -> grounding keys
    rows = torch.einsum("rn,hnk->rhk", masks, to_tokens) / masks.sum(1).clamp(min=1)[:, None, None]  # (R, heads, K)
    own = torch.zeros_like(rows)
    own[torch.arange(len(masks)), :, torch.arange(len(masks))] = 1
    return (rows * (1 - own)).amax(-1).mean(-1).sum() / len(masks)


def grounding_loss(view: SampleView, name: str, average: str = "maps") -> torch.Tensor:
    """L_G of one sample: in-box pixels should not attend to *other* boxes' grounding tokens (GLIGEN fuser attention).

    ``average="maps"`` (the official code): the fuser attention averaged over the layers of each grid first, then
    :func:`grounding_term`; ``"losses"``: :func:`grounding_term` per layer, then their mean. Uses each region's own
    grounding token (the official code indexes word groups, which agrees only for one-word, one-box objects). Zero
    where no fuser ran (non-GLIGEN model, or after scheduled sampling).
    """
    layers = view.layer_maps(name)
    if not layers:
        return torch.zeros((), device=view.ctx.device)
    if average == "losses":
        terms = [grounding_term(probs, view.region_masks(grid).flatten(1)) for grid, probs in layers]
        return torch.stack(terms).mean(0)
    by_grid: dict[tuple[int, int], list[torch.Tensor]] = {}
    for grid, probs in layers:
        by_grid.setdefault((grid[0], grid[1]), []).append(probs)
    terms = [
        grounding_term(torch.stack(maps).mean(0), view.region_masks(grid).flatten(1)) for grid, maps in by_grid.items()
    ]
    return torch.stack(terms).mean(0)


class Refocus(GradientMethod):
    name = "refocus"
    summary = "Attention Refocusing (CAR + SAR losses on 16x16 attention; arXiv 2306.05427)"
    needs_layout = True
    Options = RefocusOptions
    options: RefocusOptions

    def attention_requests(self) -> Requests:
        o = self.options
        out = {}
        if o.car:
            out["cross"] = o.layer_request("text", ("down", "up"))
        if o.sar:
            out["self"] = o.layer_request("image", ("down", "up"))
        if o.grounding_weight > 0:
            out["grounding"] = o.layer_request("grounding", ("down", "up"))
        return out

    def plan(self, state: MethodState, step: int) -> StepPlan | None:
        if not (self.options.car or self.options.sar or self.options.grounding_weight > 0):
            return None
        found = reference_plan(step, state.ctx.num_steps, SCHEDULES[self.options.schedule])
        if found is None:
            return None
        ref, (s, iterations) = found
        return StepPlan(iterations=iterations, step_size=s * self.options.loss_scale, info={"reference_step": ref})

    def sample_loss(self, view: SampleView, step: int, plan: StepPlan) -> SampleLoss:
        o = self.options
        ref = plan.info["reference_step"]
        zero = torch.zeros((), device=view.ctx.device)
        car, sar, grounding, min_inside = zero, zero, zero, torch.ones((), device=view.ctx.device)
        if o.car:
            groups = token_groups(view.tokens.indices, o.tokens)
            maps = view.token_maps(
                "cross", list(groups), temperature=o.temperature, smoothing=o.smoothing, token_softmax=o.token_softmax
            )
            masks = view.region_masks(maps.shape[-2:])
            if o.variant == "official":
                car, min_inside = car_official(maps, masks, list(groups.values()), o, early=ref < 15)
            else:
                car, min_inside = car_paper(maps, masks, list(groups.values()), o)
            min_inside = min_inside.detach()
        if o.sar:
            self_maps = view.attention("self")  # (h, w, h*w)
            by_token = list(token_groups(view.tokens.indices, o.tokens).values()) if o.variant == "official" else None
            sar = sar_loss(self_maps, view.region_masks(self_maps.shape[:2]), by_token)
        if o.grounding_weight > 0 and (o.grounding_until is None or ref < o.grounding_until):
            grounding = grounding_loss(view, "grounding", o.grounding_average)
        total = car + sar + o.grounding_weight * grounding
        # the official loop compares its threshold with the loss it differentiates, which carries the step size
        measured = total.detach() * plan.step_size if o.early_stop_on == "scaled" else total.detach()
        if not o.early_stop:
            done = torch.zeros((), dtype=torch.bool, device=view.ctx.device)
        elif o.schedule == "v1":
            done = measured <= o.loss_threshold
        else:
            peaked = min_inside >= o.inside_threshold
            done = peaked | (measured <= o.loss_threshold) if ref < 10 else peaked
        info = {"car": car, "sar": sar, "grounding": grounding, "min_inside": min_inside}
        return SampleLoss(total, done.detach(), {k: v.detach() for k, v in info.items()})
