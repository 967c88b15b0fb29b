"""Cost savings of the guidance pass: the cut forward is exact, idle modulators cost nothing, budget options work."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from layoutguide.attention import CaptureProcessor
from layoutguide.errors import InputError
from layoutguide.guidance import GuidanceBudget
from layoutguide.methods import GradientMethod
from layoutguide.testing import tiny_pipeline

GRADIENT_METHODS = ["refocus", "boxdiff", "layout-guidance", "attend-excite", "zestguide", "refocus[sar=false]"]


class Recorder(GradientMethod):
    """``inner`` as it is, also keeping every guided iteration's loss and gradient."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []
        self.name = f"recorded-{inner.name}"  # type: ignore[misc]
        self.needs_layout = inner.needs_layout  # type: ignore[misc]

    def attention_requests(self):
        return self.inner.attention_requests()

    def activate(self, pipe, ctx):
        return self.inner.activate(pipe, ctx)

    def unet_kwargs(self, state, step, *, cfg):
        return self.inner.unet_kwargs(state, step, cfg=cfg)

    def modulations(self, state):
        return self.inner.modulations(state)

    def condition(self, state, embeddings, encode):
        return self.inner.condition(state, embeddings, encode)

    def plan(self, state, step):
        return self.inner.plan(state, step)

    def loss(self, state, step, plan, maps):
        out = self.inner.loss(state, step, plan, maps)
        self.seen.append(["loss", out.loss.detach().clone()])
        return out

    def update(self, state, step, plan, latents, grad):
        self.seen.append(["grad", grad.clone()])
        return self.inner.update(state, step, plan, latents, grad)


def recorded(pipe, layout, spec, budget, size=None, steps=3):
    method = Recorder(pipe.method_with_defaults(spec))
    out = pipe(
        layout=layout,
        method=method,
        num_inference_steps=steps,
        guidance_scale=3.0,
        seed=0,
        output_type="latent",
        progress=False,
        height=size,
        width=size,
        guidance_budget=budget,
    )
    return method.seen, out.images


def assert_same_guidance(full, cut):
    (seen_full, latents_full), (seen_cut, latents_cut) = full, cut
    assert [k for k, _ in seen_full] == [k for k, _ in seen_cut] and seen_full
    grads = [v for k, v in seen_full if k == "grad"]
    assert any(g.abs().max() > 0 for g in grads)  # a gradient that is zero everywhere would prove nothing
    for (_, a), (_, b) in zip(seen_full, seen_cut):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(latents_cut, latents_full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "spec", [m if m == "refocus" else pytest.param(m, marks=pytest.mark.slow) for m in GRADIENT_METHODS]
)
def test_cut_forward_gives_the_full_forwards_loss_and_gradient(sharp_pipe, two_region_layout, spec):
    full = recorded(sharp_pipe, two_region_layout, spec, GuidanceBudget(cut_forward=False))
    assert_same_guidance(full, recorded(sharp_pipe, two_region_layout, spec, GuidanceBudget()))


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["refocus", "zestguide", "layout-guidance"])
def test_cut_forward_exact_on_sd_layout_and_skips_the_last_up_block(tiny_sd_pipe, two_region_layout, spec):
    """At 256 px the 1/4- and 1/2-latent maps (8x8, 16x16) sit in down_blocks.1-2 and up_blocks.1-2 of SD's block
    layout: the cut skips up_blocks.3 and the output convolution for every method, ZestGuide's two levels included."""
    unet = tiny_sd_pipe.unet
    calls = {"up3": 0, "conv_out": 0}
    hooks = [
        unet.up_blocks[3].register_forward_pre_hook(lambda *a: calls.__setitem__("up3", calls["up3"] + 1)),
        unet.conv_out.register_forward_hook(lambda *a: calls.__setitem__("conv_out", calls["conv_out"] + 1)),
    ]
    try:
        full = recorded(tiny_sd_pipe, two_region_layout, spec, GuidanceBudget(cut_forward=False), size=256)
        full_calls = dict(calls)
        calls.update(up3=0, conv_out=0)
        cut = recorded(tiny_sd_pipe, two_region_layout, spec, GuidanceBudget(), size=256)
    finally:
        for hook in hooks:
            hook.remove()
    assert_same_guidance(full, cut)
    guided = sum(k == "loss" for k, _ in cut[0])
    assert full_calls["conv_out"] == 3 + guided  # 3 CFG forwards and every guidance forward
    assert calls["conv_out"] == 3  # the guidance forwards ended before the output convolution
    assert calls["up3"] == 3


@pytest.mark.slow
def test_cut_forward_with_gligen_grounding_loss(two_region_layout):
    pipe = tiny_pipeline(gated=True)
    spec = "gligen+refocus[refocus.grounding_weight=3]"
    full = recorded(pipe, two_region_layout, spec, GuidanceBudget(cut_forward=False))
    assert_same_guidance(full, recorded(pipe, two_region_layout, spec, GuidanceBudget()))


@pytest.mark.slow
def test_checkpointing_and_bf16_autocast(sharp_pipe, two_region_layout):
    full = recorded(sharp_pipe, two_region_layout, "refocus", GuidanceBudget(cut_forward=False))
    assert_same_guidance(full, recorded(sharp_pipe, two_region_layout, "refocus", GuidanceBudget(checkpointing=True)))
    assert not sharp_pipe.unet.is_gradient_checkpointing  # restored
    seen, _ = recorded(sharp_pipe, two_region_layout, "refocus", GuidanceBudget(autocast="bf16"))
    full_losses = [v for k, v in full[0] if k == "loss"]
    bf16_losses = [v for k, v in seen if k == "loss"]
    assert all(v.dtype == torch.float32 for v in bf16_losses)
    # bf16 keeps ~3 significant digits: the first loss (same latents) agrees to that, not to fp32 precision
    torch.testing.assert_close(bf16_losses[0], full_losses[0], atol=2e-2, rtol=2e-2)
    assert not torch.equal(bf16_losses[0], full_losses[0])


@pytest.mark.slow
def test_budget_limits_steps_and_iterations(tiny_pipe, two_region_layout):
    def guided(budget):
        out = tiny_pipe(
            layout=two_region_layout,
            method="refocus",
            num_inference_steps=10,
            seed=0,
            output_type="latent",
            progress=False,
            guidance_budget=budget,
        )
        timesteps = tiny_pipe.scheduler.timesteps
        return {int(timesteps[i]): len(g["losses"]) for i, g in enumerate(out.guidance) if g}

    every = guided(GuidanceBudget(cut_forward=False))
    assert guided(GuidanceBudget()) == every
    late = min(every)
    assert late < 700 < max(every)
    limited = guided(GuidanceBudget(min_timestep=700))
    assert limited == {t: n for t, n in every.items() if t >= 700}
    capped = guided(GuidanceBudget(max_iterations=1))
    assert set(capped) == set(every) and set(capped.values()) == {1}


@pytest.mark.parametrize(
    "options, field",
    [
        ({"min_timestep": -1}, "min_timestep"),
        ({"max_iterations": 0}, "max_iterations"),
        ({"autocast": "fp8"}, "autocast"),
    ],
)
def test_budget_errors_name_the_field(options, field):
    with pytest.raises(InputError, match=f"guidance_budget.{field}"):
        GuidanceBudget(**options)


def test_pipeline_rejects_a_budget_of_the_wrong_type(tiny_pipe, two_region_layout):
    with pytest.raises(InputError, match="guidance_budget"):
        tiny_pipe(layout=two_region_layout, method="refocus", guidance_budget={"min_timestep": 1}, progress=False)


class CountingProcessor(AttnProcessor2_0):
    """The stock SDPA processor, counting its calls per step."""

    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def __call__(self, *args, **kwargs):
        self.calls[-1] += 1
        return super().__call__(*args, **kwargs)


@pytest.mark.parametrize(
    "spec, window, bypass",
    [("densediffusion", 2, True), ("densediffusion[active_fraction=0.75]", 3, True), ("densediffusion", 0, False)],
)
def test_modulators_leave_the_plain_processors_outside_their_window(
    tiny_pipe, two_region_layout, spec, window, bypass
):
    """With ``sdpa_outside_windows`` (default) the layers run their own processors after the window; without it the
    probabilities path runs at every step (as before the option)."""
    unet = tiny_pipe.unet
    originals = dict(unet.attn_processors)
    n_layers = len(originals)  # set_attn_processor empties the dict it is given
    calls: list[int] = []
    unet.set_attn_processor(CountingProcessor(calls))
    try:
        installed = []

        def step_end(info):
            installed.append(all(isinstance(p, CaptureProcessor) for p in unet.attn_processors.values()))
            calls.append(0)

        calls.append(0)
        tiny_pipe(
            layout=two_region_layout,
            method=spec,
            num_inference_steps=4,
            seed=0,
            output_type="latent",
            progress=False,
            guidance_interval=(0, 1000),
            callback=step_end,
            guidance_budget=GuidanceBudget(sdpa_outside_windows=bypass),
        )
    finally:
        unet.set_attn_processor(originals)
    assert all(installed)  # installed for the call; idle ones hand over to the processor they replaced
    assert calls[:window] == [0] * window  # modulated: every layer on the probabilities path
    assert calls[window:4] == ([n_layers] * (4 - window) if bypass else [0] * 4)  # plain: every layer's own SDPA


# sha256 of the shipped model's DenseDiffusion images (uint8 RGB bytes; make_scene(k, n_objects=(2, 3)), seed 0),
# computed with main at 175bf59, before Windowed modulators existed
DENSEDIFFUSION_PINS = {
    10_000_123: "7d2172602a3d7906d5a0872cd2be3146638fc859ff8fbd0ddc629a33b81893ca",
    10_000_321: "808bff2a22b111139ba59993dab9315946aa54a936dd0a825c99e5260e5f7727",
}


@pytest.mark.slow
def test_windowed_densediffusion_keeps_its_images(shipped):
    """DenseDiffusion's idle layers on SDPA (the default) give main's images of the shipped model, byte for byte;
    on the probabilities path (as before) they differ by rounding at most: SDPA and materialised attention are not
    bit-exact, and whether a uint8 pixel flips depends on the installed libraries (one value of 12,288 in one of the
    two images by 1 level on 2026-12-04's, none on 2026-12-02's)."""
    from layoutguide.shapes.world import make_scene

    def run(scene, budget=None):
        layout = make_scene(scene, n_objects=(2, 3)).layout()
        out = shipped(layout=layout, method="densediffusion", seed=0, progress=False, guidance_budget=budget)
        return out.images[0]

    for scene, digest in DENSEDIFFUSION_PINS.items():
        image = run(scene)
        assert hashlib.sha256(image.tobytes()).hexdigest() == digest
        before = np.asarray(run(scene, GuidanceBudget(sdpa_outside_windows=False)), dtype=np.int16)
        difference = np.abs(before - np.asarray(image, dtype=np.int16))
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
