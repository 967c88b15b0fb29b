import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
)

from layoutguide.attention import (
    AttentionRequest,
    AttentionStore,
    CaptureProcessor,
    attention_control,
    recording,
    select_layers,
)
from layoutguide.methods import GradientMethod, LossOutput, StepPlan
from layoutguide.pipeline import LayoutPipeline

STEPS = 8


def run(pipe, layout, **kw):
    kw.setdefault("num_inference_steps", STEPS)
    kw.setdefault("guidance_scale", 3.0)
    kw.setdefault("progress", False)
    return pipe(layout=layout, **kw)


def test_roundtrip_through_local_folder(tiny_pipe, tiny_folder, two_region_layout, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = LayoutPipeline.from_pretrained(tiny_folder)
    assert loaded.tokenizer.model_max_length == 77
    a = run(tiny_pipe, two_region_layout, seed=3, output_type="np").images
    b = run(loaded, two_region_layout, seed=3, output_type="np").images
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_from_pipe_shares_stable_diffusion_modules(tiny_sd_pipe, two_region_layout):
    sd = StableDiffusionPipeline(
        **tiny_sd_pipe.components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe = LayoutPipeline.from_pipe(sd)
    assert pipe.unet is sd.unet and pipe.text_encoder is sd.text_encoder
    out = run(pipe, two_region_layout, method="refocus", height=128, width=128)
    assert out.images[0].size == (128, 128)


@pytest.mark.slow
def test_seed_is_per_prompt_and_image(tiny_pipe, two_region_layout):
    other = two_region_layout.replace(prompt="a blue square and a red circle")
    both = run(tiny_pipe, [two_region_layout, other], seed=5, num_images_per_prompt=2, output_type="np").images
    assert both.shape[0] == 4
    again = run(tiny_pipe, [two_region_layout, other], seed=5, output_type="np").images  # one image per prompt
    np.testing.assert_allclose(both[0], again[0], atol=1e-5)
    np.testing.assert_allclose(both[2], again[1], atol=1e-5)
    assert not np.allclose(both[0], both[1])  # the second image of a prompt has its own noise
    different = run(tiny_pipe, two_region_layout, seed=6, output_type="np").images
    assert not np.allclose(both[0], different[0])


@pytest.mark.slow
def test_deterministic_with_guidance(tiny_pipe, two_region_layout):
    a = run(tiny_pipe, two_region_layout, method="refocus", seed=1, output_type="np").images
    b = run(tiny_pipe, two_region_layout, method="refocus", seed=1, output_type="np").images
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_guidance_changes_latents_only_on_planned_steps(tiny_pipe, two_region_layout):
    def trace(method):
        seen = []
        run(tiny_pipe, two_region_layout, method=method, seed=2, callback=lambda d: seen.append(d["latents"].clone()))
        return seen

    plain = trace(None)
    guided = trace(SpyRefocus(steps={3, 5}))
    for i in range(3):
        torch.testing.assert_close(plain[i], guided[i], rtol=0, atol=0)
    assert (plain[3] - guided[3]).abs().max() > 0  # exact: the tiny random model's latents are large


class SpyRefocus(GradientMethod):
    """Refocus-like loss (mass of the phrase tokens outside the boxes) on chosen steps only."""

    name = "spy"
    needs_layout = True

    def __init__(self, steps):
        super().__init__()
        self.steps = steps
        self.calls = []

    def attention_requests(self):
        return {"cross": AttentionRequest("text")}

    def plan(self, state, step):
        return StepPlan(2, 100.0) if step in self.steps else None

    def loss(self, state, step, plan, maps):
        self.calls.append(step)
        cross = maps.averaged("cross")  # (B, h, w, 77)
        masks = state.ctx.region_masks(0, cross.shape[1:3])
        idx = [i for r in state.ctx.token_maps[0].indices for i in r]
        outside = (cross[..., idx].sum(-1) * (1 - masks.amax(0))).mean(dim=(1, 2))
        return LossOutput(outside, torch.zeros_like(outside, dtype=torch.bool))


def test_guidance_runs_planned_iterations_and_logs(tiny_pipe, two_region_layout):
    spy = SpyRefocus(steps={0, 4})
    out = run(tiny_pipe, two_region_layout, method=spy, seed=2)
    assert spy.calls == [0, 0, 4, 4]
    assert [i for i, g in enumerate(out.guidance) if g] == [0, 4]
    assert len(out.guidance[0]["losses"]) == 2


@pytest.mark.slow
def test_refocus_guided_steps_follow_the_official_schedule(tiny_pipe, two_region_layout):
    out = run(
        tiny_pipe,
        two_region_layout,
        method="refocus",
        num_inference_steps=50,
        # loss_scale 1: the schedule's own step sizes (a plain SD folder's family default is 10x them)
        method_options={"early_stop": False, "loss_scale": 1.0},
    )
    guided = {i: (g["plan"]["step_size"], len(g["losses"])) for i, g in enumerate(out.guidance) if g}
    expected = {
        0: (4, 2),
        1: (4, 2),
        2: (4, 6),
        3: (4, 6),
        4: (4, 6),
        **{i: (3, 3) for i in range(5, 10)},
        10: (3, 2),
        15: (3, 2),
        20: (1, 2),
        25: (1, 2),
        30: (1, 2),
        35: (1, 2),
    }
    assert guided == expected


def test_processors_restored_after_exception(tiny_pipe, two_region_layout):
    class Boom(SpyRefocus):
        def loss(self, *a, **k):
            raise RuntimeError("boom")

    before = {k: type(v) for k, v in tiny_pipe.unet.attn_processors.items()}
    with pytest.raises(RuntimeError, match="boom"):
        run(tiny_pipe, two_region_layout, method=Boom(steps={1}))
    after = {k: type(v) for k, v in tiny_pipe.unet.attn_processors.items()}
    assert before == after
    assert CaptureProcessor not in after.values()


def test_capture_only_on_requested_layers_and_cond_half(tiny_pipe, two_region_layout):
    unet = tiny_pipe.unet
    request = AttentionRequest("cross", (16,), ("down", "up"))
    wanted = {layer.name for layer in select_layers(unet, request, (16, 16))}
    assert wanted and all(".attn2" in n for n in wanted)
    assert all(not n.startswith("mid_block") for n in wanted)
    store = AttentionStore()
    cond = tiny_pipe.encode_prompt([two_region_layout.prompt])
    uncond = tiny_pipe.encode_prompt([""])
    x = torch.randn(1, 4, 16, 16)
    with attention_control(unet, store, [request], latent_hw=(16, 16)):
        procs = {n.removesuffix(".processor"): type(p) for n, p in unet.attn_processors.items()}
        assert {n for n, t in procs.items() if t is CaptureProcessor} == wanted
        with torch.no_grad(), recording(store, cfg=True, step=0):
            unet(torch.cat([x, x]), 500, encoder_hidden_states=torch.cat([uncond, cond]))
            cfg_maps = {k: v.clone() for k, v in store.maps.items()}
        with torch.no_grad(), recording(store, cfg=False, step=0):
            unet(x, 500, encoder_hidden_states=cond)
            cond_maps = dict(store.maps)
    assert set(cfg_maps) == wanted
    for name, m in cfg_maps.items():
        assert m.shape == (1, unet.config.attention_head_dim, 256, 77)
        torch.testing.assert_close(m, cond_maps[name], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(m.sum(-1), torch.ones_like(m.sum(-1)), atol=1e-5, rtol=0)


def test_capture_processor_matches_sdpa_output(tiny_pipe, two_region_layout):
    unet = tiny_pipe.unet
    cond = tiny_pipe.encode_prompt([two_region_layout.prompt])
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = unet(x, 300, encoder_hidden_states=cond).sample
        store = AttentionStore()
        requests = [
            AttentionRequest("cross", None, ("down", "mid", "up")),
            AttentionRequest("self", None, ("down", "mid", "up")),
        ]
        with attention_control(unet, store, requests, latent_hw=(16, 16)), recording(store, cfg=False, step=0):
            captured = unet(x, 300, encoder_hidden_states=cond).sample
    torch.testing.assert_close(captured, reference, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "scheduler_cls", [DDIMScheduler, PNDMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler]
)
@pytest.mark.slow
def test_schedulers(tiny_pipe, two_region_layout, scheduler_cls):
    pipe = LayoutPipeline(
        **{**tiny_pipe.components, "scheduler": scheduler_cls.from_config(tiny_pipe.scheduler.config)}
    )
    out = run(pipe, two_region_layout, method="refocus", seed=0, output_type="np", return_attention=True)
    assert np.isfinite(out.images).all() and out.images.shape == (1, 64, 64, 3)
    assert len(out.attention) == len(pipe.scheduler.timesteps)
    assert any(out.guidance)


@pytest.mark.slow
def test_guidance_interval(tiny_pipe, two_region_layout):
    """CFG only inside [t_low, t_high]: the whole range is plain CFG, an empty one is the conditional model alone,
    and a partial one runs the unconditional forward on exactly the steps inside it."""
    full = run(tiny_pipe, two_region_layout, seed=4, output_type="np").images
    np.testing.assert_array_equal(
        full, run(tiny_pipe, two_region_layout, seed=4, output_type="np", guidance_interval=(0, 1000)).images
    )
    cond_only = run(tiny_pipe, two_region_layout, seed=4, output_type="np", guidance_scale=1.0).images
    np.testing.assert_array_equal(
        cond_only, run(tiny_pipe, two_region_layout, seed=4, output_type="np", guidance_interval=(2000, 3000)).images
    )
    batches = []
    hook = tiny_pipe.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        partial = run(
            tiny_pipe, two_region_layout, seed=4, output_type="np", method="refocus", guidance_interval=(0, 600)
        ).images
    finally:
        hook.remove()
    tiny_pipe.scheduler.set_timesteps(STEPS)
    guided_steps = [int(t) <= 600 for t in tiny_pipe.scheduler.timesteps]
    # refocus's gradient forwards have batch 1; the sampling forwards have 2 with CFG and 1 without
    assert batches.count(2) == sum(guided_steps) > 0
    assert not np.allclose(
        partial, run(tiny_pipe, two_region_layout, seed=4, output_type="np", method="refocus").images
    )
    with pytest.raises(ValueError, match="guidance_interval"):
        run(tiny_pipe, two_region_layout, guidance_interval=(800, 100))


def test_input_errors(tiny_pipe, two_region_layout):
    from layoutguide.methods import MethodOptionError
    from layoutguide.tokens import PhraseNotFoundError

    with pytest.raises(ValueError, match="needs a layout"):
        tiny_pipe(prompt="a red circle", method="refocus", num_inference_steps=2, progress=False)
    with pytest.raises(MethodOptionError, match="refocus.loss_scale"):
        run(tiny_pipe, two_region_layout, method="refocus", method_options={"loss_scale": -1})
    with pytest.raises(MethodOptionError, match="allowed options"):
        run(tiny_pipe, two_region_layout, method="refocus", method_options={"los_scale": 2})
    with pytest.raises(MethodOptionError, match="unknown method 'nope'"):
        run(tiny_pipe, two_region_layout, method="nope")
    with pytest.raises(PhraseNotFoundError):
        run(tiny_pipe, two_region_layout.replace(prompt="a green triangle"), method="refocus")
    with pytest.raises(ValueError, match="multiple of 4"):
        run(tiny_pipe, two_region_layout, height=30)


@pytest.mark.slow
def test_word_token_mask_and_masked_model(tiny_pipe, two_region_layout):
    from layoutguide.text_mask import word_token_mask

    mask = word_token_mask(tiny_pipe.tokenizer, ["a red circle", ""])
    assert mask[0, :4].tolist() == [1, 1, 1, 1]  # start + 3 words
    assert mask[0, 4:].sum() == 0  # end and padding masked
    assert mask[1, 0] == 1
    assert mask[1, 1:].sum() == 0
    plain = run(tiny_pipe, two_region_layout, seed=0, output_type="np").images
    tiny_pipe.model_defaults["text_mask"] = "words"
    try:
        masked = run(tiny_pipe, two_region_layout, seed=0, output_type="np", method="refocus").images
        masked_plain = run(tiny_pipe, two_region_layout, seed=0, output_type="np").images
    finally:
        del tiny_pipe.model_defaults["text_mask"]
    assert not np.allclose(plain, masked_plain)
    assert np.isfinite(masked).all()
