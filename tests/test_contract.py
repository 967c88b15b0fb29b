"""The method contract: a new gradient method in a few lines, kinds and their composition, per-call state, and the
pipeline leaving the caller's model as it found it."""

import pytest
import torch

from layoutguide.attention import AttentionRequest
from layoutguide.errors import InputError
from layoutguide.methods import (
    REGISTRY,
    Composite,
    GradientMethod,
    MethodOptionError,
    MethodOptions,
    SampleLoss,
    StepPlan,
    get_method,
)


class InBoxOptions(MethodOptions):
    step_size: float = 300.0
    iterations: int = 6


class InBoxMass(GradientMethod):
    """A toy gradient method: each phrase's text attention should fall inside its box."""

    name = "in-box-mass"
    needs_layout = True
    Options = InBoxOptions

    def attention_requests(self):
        return {"words": AttentionRequest("text", (16,), ("down", "up"))}

    def plan(self, state, step):
        return StepPlan(self.options.iterations, self.options.step_size) if step == 0 else None

    def sample_loss(self, view, step, plan):
        maps = view.phrase_maps("words")  # (R, h, w)
        masks = view.region_masks(maps.shape[-2:])
        inside = (maps * masks).flatten(1).sum(1) / maps.flatten(1).sum(1)
        return SampleLoss((1 - inside).mean())


def test_a_toy_gradient_method_runs_in_the_loop_and_lowers_its_loss(sharp_pipe, two_region_layout):
    out = sharp_pipe(
        layout=two_region_layout, method=InBoxMass(), num_inference_steps=4, guidance_scale=1.0, progress=False
    )
    losses = [step_losses[0] for step_losses in out.guidance[0]["losses"]]
    assert len(losses) == 6
    assert losses[-1] < 0.9 * losses[0], losses
    assert not any(out.guidance[1:])  # guided at step 0 only


@pytest.mark.slow
def test_a_toy_gradient_method_moves_phrase_attention_into_the_boxes(sharp_pipe, two_region_layout):
    def in_box_share(method):
        out = sharp_pipe(
            layout=two_region_layout,
            method=method,
            num_inference_steps=4,
            guidance_scale=1.0,
            progress=False,
            return_attention=True,
        )
        cross = out.attention[0][0]  # (h, w, 77): step 0's CFG pass, after the guidance updates
        masks = torch.from_numpy(two_region_layout.rasterize(*cross.shape[:2]))
        shares = [
            (cross[..., list(idx)].sum(-1) * mask).sum() / cross[..., list(idx)].sum()
            for idx, mask in zip(_tokens(sharp_pipe, two_region_layout).indices, masks)
        ]
        return float(torch.stack(shares).mean())

    assert in_box_share(InBoxMass()) > in_box_share(None) + 0.02


def test_every_registered_method_declares_its_kind():
    kinds = {name: cls.kind for name, cls in REGISTRY.items()}
    assert kinds == {
        "none": "none",
        "refocus": "gradient",
        "boxdiff": "gradient",
        "layout-guidance": "gradient",
        "attend-excite": "gradient",
        "zestguide": "gradient",
        "pww": "modulation",
        "densediffusion": "modulation",
        "gligen": "conditioning",
        "reground": "rewiring",
        "regional": "modulation",
    }


def test_composite_takes_one_gradient_member_and_any_modulators():
    combo = Composite([InBoxMass(), get_method("pww"), get_method("densediffusion")])
    assert combo.kind == "gradient"
    assert combo.guide is combo.members[0]
    assert combo.name == "in-box-mass+pww+densediffusion"


def test_composite_refuses_two_gradient_members():
    with pytest.raises(MethodOptionError, match="2 gradient methods"):
        Composite([InBoxMass(), get_method("refocus")])


def test_composite_refuses_two_grounding_members():
    with pytest.raises(MethodOptionError, match="GLIGEN's grounding tokens"):
        get_method("gligen+reground")


def test_composite_refuses_a_repeated_member():
    with pytest.raises(MethodOptionError, match="more than once"):
        get_method("pww+pww")


def test_spec_combinations_still_parse():
    combo = get_method("gligen+pww+refocus[refocus.tokens=last]")
    assert [m.name for m in combo.members] == ["gligen", "pww", "refocus"]
    assert combo.members[2].options.tokens == "last"


def test_attend_excite_without_layout_or_subjects_is_an_error(tiny_pipe):
    with pytest.raises(InputError, match="subjects"):
        tiny_pipe(
            prompt="a red circle and a blue square", method="attend-excite", num_inference_steps=2, progress=False
        )


def test_attend_excite_subjects_name_the_words_without_a_layout(sharp_pipe):
    out = sharp_pipe(
        prompt="a red circle and a blue square",
        method="attend-excite",
        method_options={"subjects": ["circle", "square"], "refine": False},
        num_inference_steps=4,
        progress=False,
    )
    guided = [g for g in out.guidance if g]
    assert len(guided) == 2  # the first half of the steps
    assert all(0 < losses[0] <= 1 for g in guided for losses in g["losses"])


def test_attend_excite_subjects_must_be_words_of_the_prompt(tiny_pipe):
    with pytest.raises(ValueError, match="triangle"):
        tiny_pipe(
            prompt="a red circle",
            method="attend-excite",
            method_options={"subjects": ["triangle"]},
            num_inference_steps=2,
            progress=False,
        )


@pytest.mark.slow
def test_a_call_restores_requires_grad(tiny_sd_pipe, two_region_layout):
    unet = tiny_sd_pipe.unet
    unet.requires_grad_(True)
    try:
        tiny_sd_pipe(
            layout=two_region_layout, method="refocus", num_inference_steps=2, height=128, width=128, progress=False
        )
        assert all(p.requires_grad for p in unet.parameters())
    finally:
        unet.requires_grad_(False)


def test_sample_view_owns_the_start_token_offset_and_phrase_sums(tiny_pipe, two_region_layout):
    from layoutguide.attention import AttentionStore, attention_control, recording
    from layoutguide.methods import GuidanceContext, MethodState

    tiny_pipe.scheduler.set_timesteps(10)
    tokens = _tokens(tiny_pipe, two_region_layout)
    ctx = GuidanceContext(
        [two_region_layout],
        [tokens],
        10,
        (16, 16),
        torch.device("cpu"),
        tiny_pipe.scheduler.alphas_cumprod,
        tiny_pipe.scheduler.timesteps,
    )
    requests = {"cross": AttentionRequest("text", (16,), ("down", "up"))}
    store = AttentionStore()
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    cond = tiny_pipe.encode_prompt([two_region_layout.prompt])
    with torch.no_grad(), attention_control(tiny_pipe.unet, store, requests, latent_hw=(16, 16)):
        with recording(store, cfg=False, step=0):
            tiny_pipe.unet(x, ctx.timesteps[0], encoder_hidden_states=cond)
        maps = store.read(requests)
        (view,) = ctx.views(maps, MethodState(ctx))
        cross = maps.averaged("cross")[0]  # (h, w, 77)
        head = tokens.indices[1][-1]  # "square"
        expected = torch.softmax(cross[..., 1:-1] * 10.0, dim=-1)[..., head - 1]
        torch.testing.assert_close(view.token_map("cross", head, temperature=10.0, smoothing=False), expected)
        phrases = view.phrase_maps("cross")
        assert phrases.shape == (2, 16, 16)
        torch.testing.assert_close(phrases[1], cross[..., list(tokens.indices[1])].sum(-1))


def _tokens(pipe, layout):
    from layoutguide.tokens import map_phrases

    return map_phrases(pipe.tokenizer, layout.prompt, layout.phrases)
