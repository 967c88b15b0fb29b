"""The peer methods (Attend-and-Excite, BoxDiff, Layout-guidance, ZestGuide, Paint-with-Words,
DenseDiffusion), combinations and the registry, on tiny pipelines."""

import math

import numpy as np
import pytest
import torch

from layoutguide.attention import AttentionRequest, AttentionStore, attention_control, recording
from layoutguide.methods import REGISTRY, Composite, GuidanceContext, MethodOptionError, MethodState, get_method
from layoutguide.methods.boxdiff import BoxDiffOptions, boxdiff_terms
from layoutguide.testing import guide_losses
from layoutguide.tokens import map_phrases


def state_for(pipe, layout, steps=50):
    """The state a stateless method's hooks receive: the call's context (built as the pipeline builds it)."""
    pipe.scheduler.set_timesteps(steps)
    tokens = map_phrases(pipe.tokenizer, layout.prompt, layout.phrases)
    return MethodState(
        GuidanceContext(
            [layout],
            [tokens],
            steps,
            (16, 16),
            torch.device("cpu"),
            pipe.scheduler.alphas_cumprod,
            pipe.scheduler.timesteps,
        )
    )


@pytest.mark.parametrize(
    "name, options, step_size",
    [
        # level 0: the sharp pipeline's 16x16 layers, the ones its attention was made sharp on (the shapes model's)
        ("attend-excite", {"refine": False, "level": 0}, 300.0),
        ("boxdiff", {"level": 0}, 100.0),
        ("layout-guidance", {"level": 0}, 300.0),
        ("zestguide", {}, 0.5),
    ],
)
@pytest.mark.slow
def test_loss_falls_under_own_guidance(sharp_pipe, two_region_layout, name, options, step_size):
    losses = guide_losses(
        sharp_pipe, get_method(name, **options), two_region_layout, iterations=8, step_size=step_size
    )
    assert losses[-1] < 0.95 * losses[0], losses
    assert min(losses[4:]) < losses[0]


def test_attend_excite_schedule(tiny_pipe, two_region_layout):
    state = state_for(tiny_pipe, two_region_layout)
    method = get_method("attend-excite")
    plans = [method.plan(state, i) for i in range(50)]
    assert [i for i, p in enumerate(plans) if p] == list(range(25))
    ratios = np.linspace(1.0, 0.5, 50)
    for i in (0, 7, 24):
        assert plans[i].step_size == pytest.approx(20 * math.sqrt(ratios[i]))
    refine = {i: (p.iterations, p.info["target"]) for i, p in enumerate(plans) if p and p.iterations > 1}
    assert refine == {0: (21, 0.05), 10: (21, 0.5), 20: (21, 0.8)}
    assert not get_method("attend-excite").needs_layout


def test_boxdiff_schedule_and_terms(tiny_pipe, two_region_layout):
    state = state_for(tiny_pipe, two_region_layout)
    plans = [get_method("boxdiff").plan(state, i) for i in range(50)]
    assert [i for i, p in enumerate(plans) if p] == list(range(25))
    assert all(p.iterations == 1 for p in plans if p)
    m = torch.zeros(8, 8)
    m[2:6, 2:6] = 1
    perfect = m.clone()
    o = BoxDiffOptions()
    assert boxdiff_terms(perfect, m, o).item() == pytest.approx(0.0, abs=1e-6)
    shifted = torch.roll(m, shifts=(0, 2), dims=(0, 1))
    assert boxdiff_terms(shifted, m, o).item() > 0.5
    assert boxdiff_terms(shifted, m, BoxDiffOptions(corner=False, outer=False)).item() == pytest.approx(
        0.0, abs=1e-6
    )  # top 20% inside is still 1


def test_layout_guidance_schedule(tiny_pipe, two_region_layout):
    state = state_for(tiny_pipe, two_region_layout, steps=51)
    ctx = state.ctx
    method = get_method("layout-guidance")
    plans = [method.plan(state, i) for i in range(51)]
    assert [i for i, p in enumerate(plans) if p] == list(range(10))
    t = int(ctx.timesteps[3])
    assert plans[3].step_size == pytest.approx(30 * float(1 - ctx.alphas_cumprod[t]))
    assert plans[3].iterations == 5
    assert [r.places for r in method.attention_requests()["cross"]] == [("up",), ("mid",)]


def test_zestguide_schedule_and_normalised_step(tiny_pipe, two_region_layout):
    state = state_for(tiny_pipe, two_region_layout)
    ctx = state.ctx
    method = get_method("zestguide")
    plans = [method.plan(state, i) for i in range(50)]
    assert [i for i, p in enumerate(plans) if p] == list(range(25))
    t = int(ctx.timesteps[0])
    assert plans[0].step_size == pytest.approx(math.sqrt(float(1 - ctx.alphas_cumprod[t])))
    grad = torch.randn(2, 4, 16, 16)
    x = torch.zeros(2, 4, 16, 16)
    moved = method.update(state, 5, plans[5], x, grad)
    assert moved.flatten(1).abs().amax(1).tolist() == pytest.approx(
        [plans[5].step_size] * 2
    )  # L-inf normalised per sample


def _maps(pipe, layout, method, role="text"):
    state = state_for(pipe, layout, steps=10)
    ctx = state.ctx
    store = AttentionStore()
    request = AttentionRequest(role, (16,), ("down", "up"))
    cond = method.condition(state, pipe.encode_prompt([layout.prompt]), pipe.encode_prompt)
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    with (
        torch.no_grad(),
        attention_control(pipe.unet, store, {"maps": request}, method.modulations(state), latent_hw=(16, 16)),
    ):
        with recording(store, cfg=False, step=0):
            pipe.unet(x, ctx.timesteps[0], encoder_hidden_states=cond)
            return {k: v.clone() for k, v in store.read({"maps": request}).layers("maps").items()}, ctx


@pytest.mark.parametrize("name", ["pww", "densediffusion"])
def test_modulation_moves_attention_into_regions(sharp_pipe, two_region_layout, name):
    plain, ctx = _maps(sharp_pipe, two_region_layout, get_method("none"))
    modulated, _ = _maps(sharp_pipe, two_region_layout, get_method(name, **({"weight": 2.0} if name == "pww" else {})))
    masks = ctx.region_masks(0, (16, 16)).flatten(1)

    def inside(maps, idx, mask):
        return (maps[0].mean(0)[:, list(idx)].sum(-1) * mask).sum() / mask.sum()

    for layer in plain:
        for r, idx in enumerate(ctx.token_maps[0].indices):
            assert inside(modulated[layer], idx, masks[r]) > inside(plain[layer], idx, masks[r]) + 1e-3, (layer, r)


def test_densediffusion_self_attention_and_standalone_text(sharp_pipe, two_region_layout):
    plain, ctx = _maps(sharp_pipe, two_region_layout, get_method("none"), role="image")
    modulated, _ = _maps(
        sharp_pipe, two_region_layout, get_method("densediffusion", standalone_text=False), role="image"
    )
    masks = ctx.region_masks(0, (16, 16)).flatten(1)
    same = (masks.T @ masks > 0).float()

    def share(maps):
        return (maps[0].mean(0) * same).sum() / same.sum(1).gt(0).sum()

    for layer in plain:
        assert share(modulated[layer]) > share(plain[layer]), layer
    method = get_method("densediffusion")
    cond = sharp_pipe.encode_prompt([two_region_layout.prompt])
    edited = method.condition(MethodState(ctx), cond, sharp_pipe.encode_prompt)
    changed = (edited - cond).abs().sum(-1)[0].nonzero().flatten().tolist()
    assert changed
    assert set(changed) <= {i for idx in ctx.token_maps[0].indices for i in idx}


def test_combinations(tiny_pipe, two_region_layout):
    combo = get_method("zestguide+pww", zestguide={"eta": 0.5}, pww={"weight": 0.2})
    assert isinstance(combo, Composite)
    assert combo.guide is combo.members[0] and combo.guide.options.eta == 0.5
    out = tiny_pipe(
        layout=two_region_layout,
        method="zestguide+pww",
        method_options={"pww": {"weight": 0.3}},
        num_inference_steps=4,
        progress=False,
    )
    assert any(out.guidance)
    with pytest.raises(MethodOptionError, match="at most one"):
        get_method("refocus+boxdiff")
    with pytest.raises(MethodOptionError, match="key options by member"):
        get_method("zestguide+pww", eta=1.0)


def test_registry_lists_every_method():
    assert set(REGISTRY) == {
        "none",
        "refocus",
        "boxdiff",
        "layout-guidance",
        "attend-excite",
        "zestguide",
        "pww",
        "densediffusion",
        "gligen",
        "reground",
        "regional",
    }
    for name, cls in REGISTRY.items():
        assert cls.summary and cls().name == name
