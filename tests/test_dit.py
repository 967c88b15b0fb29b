"""The flow-matching transformer loop (SD3, FLUX) on tiny random pipelines built in code: sampling, seeds, every
method that applies, region masks on joint attention, refocus on joint attention, save/reload, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from layoutguide.attention import AttentionRequest
from layoutguide.cli import app
from layoutguide.joint_attention import JointLayout, joint_attention_layers
from layoutguide.layout import Layout
from layoutguide.methods import MethodOptionError
from layoutguide.methods.refocus import Refocus
from layoutguide.methods.regional import allowed_pairs
from layoutguide.testing_dit import tiny_flux_pipeline, tiny_sd3_pipeline

LAYOUT = Layout.from_dict(
    {
        "prompt": "a red circle and a blue square",
        "regions": [
            {"phrase": "red circle", "box": [0.0, 0.0, 0.5, 0.5]},
            {"phrase": "blue square", "box": [0.5, 0.5, 1.0, 1.0]},
        ],
    }
)
FAMILIES = {"sd3": tiny_sd3_pipeline, "flux": tiny_flux_pipeline}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def pipe(request):
    return FAMILIES[request.param]()


def run(pipe, method="none", **kwargs):
    args = dict(layout=LAYOUT, method=method, num_inference_steps=3, seed=1, output_type="latent", progress=False)
    return pipe(**{**args, **kwargs})


def test_seeds_are_per_prompt_and_image(pipe):
    alone = run(pipe, seed=5).images
    batch = run(pipe, layout=[LAYOUT, LAYOUT], seed=[7, 5]).images
    assert torch.allclose(batch[1], alone[0], atol=1e-5)
    assert not torch.allclose(batch[0], batch[1])


def test_images_decode(pipe):
    images = run(pipe, output_type="np").images
    assert images.shape == (1, 128, 128, 3) and 0 <= images.min() and images.max() <= 1


@pytest.mark.parametrize(
    "method",
    ["regional"]
    + [pytest.param(m, marks=pytest.mark.slow) for m in ("refocus", "regional+refocus", "boxdiff")]
    + [pytest.param("layout-guidance", marks=pytest.mark.slow)],
)
def test_methods_change_the_sample(pipe, method):
    plain = run(pipe).images
    guided = run(pipe, method, method_options={"loss_scale": 50} if method == "refocus" else None)
    assert guided.images.shape == plain.shape and not torch.allclose(guided.images, plain)


@pytest.mark.parametrize("region_text", ["in_place", "separate"])
def test_background_reading_the_prompt_changes_regional(pipe, region_text):
    own = {"region_text": region_text, "base_ratio": 0.0}
    closed = run(pipe, "regional", method_options=own).images
    opened = run(pipe, "regional", method_options={**own, "background_text": "prompt"}).images
    assert opened.shape == closed.shape and not torch.allclose(opened, closed)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["attend-excite", "zestguide"])
def test_other_gradient_methods_run(pipe, method):
    out = run(pipe, method)
    assert torch.isfinite(out.images).all() and any(log for log in out.guidance)


@pytest.mark.parametrize("method", ["gligen", "reground", "pww", "densediffusion", "gligen+refocus"])
def test_unet_methods_refuse_with_a_reason(pipe, method):
    with pytest.raises(MethodOptionError, match="cannot run on a DiT: .*(GLIGEN|UNet)"):
        run(pipe, method)


def test_regional_refuses_a_unet():
    from layoutguide.testing import tiny_pipeline

    with pytest.raises(MethodOptionError, match="cannot run on a UNet: .*DiT"):
        tiny_pipeline()(layout=LAYOUT, method="regional", num_inference_steps=1, output_type="latent", progress=False)


def test_joint_layers_are_presented_by_role(pipe):
    layers = joint_attention_layers(pipe.transformer)
    blocks = len(pipe.transformer.transformer_blocks) + len(getattr(pipe.transformer, "single_transformer_blocks", []))
    assert len(layers) == 3 * blocks and {layer.kind for layer in layers} == {"cross", "self", "joint"}
    assert all(layer.factor == 2 for layer in layers)


def test_text_maps_are_distributions_over_the_token_columns(pipe):
    out = run(pipe, return_attention=True)
    assert torch.allclose(out.images, run(pipe).images, atol=1e-5)  # recording leaves the sample as it was
    maps = out.attention[0]  # (B, 8, 8, K)
    layout = pipe.text_layout()
    assert maps.shape == (1, 8, 8, len(layout.text_columns))
    assert torch.allclose(maps.sum(-1), torch.ones(1, 8, 8), atol=1e-4)
    if None in layout.text_columns:  # FLUX's empty start column
        assert maps[..., 0].abs().max() == 0


@pytest.mark.parametrize("text_first", [False, True])
def test_part_logits_are_the_parts_of_the_whole_square(text_first):
    """Unmasked recording computes only the recorded part of joint attention (the text map: image queries x text
    keys); it must be exactly that part of the whole square the masked path slices."""
    from layoutguide.joint_attention import JointCaptureProcessor, _part

    layout = JointLayout(5, text_first=text_first, text_columns=tuple(range(5)))
    q, k = torch.randn(2, 3, 21, 8), torch.randn(2, 3, 21, 8)
    whole = (q @ k.transpose(-1, -2)) / 8**0.5
    image, text = layout.slices(21)
    for role in ("text", "image", "joint"):
        part = JointCaptureProcessor._part_logits(role, q, k, image, text)
        assert torch.allclose(part, _part(role, whole, image, text), atol=1e-6)


@pytest.mark.parametrize("masks_maps", [True, False])
@pytest.mark.parametrize("text_first", [False, True])
def test_masked_attention_matches_the_materialised_blend(text_first, masks_maps):
    """The capture's fused path against the softmax it replaces, on a CFG batch: unconditional samples unmasked,
    conditional ones ``base x unmasked + (1 - base) x masked``, the recorded text map the masked one's where the mask
    asks for it (``masks_maps``), else the model's own (unmasked) one."""
    from layoutguide.attention import AttentionStore, LayerInfo
    from layoutguide.joint_attention import JointCaptureProcessor, JointMask

    torch.manual_seed(0)
    n_text, n = 5, 21
    layout = JointLayout(n_text, text_first=text_first, text_columns=tuple(range(1, n_text)))
    q, k, v = (torch.randn(4, 3, n, 8, requires_grad=True) for _ in range(3))
    allowed = torch.rand(2, n, n) > 0.4
    allowed |= torch.eye(n, dtype=torch.bool)  # every query keeps a key
    image, text = layout.slices(n)
    allowed[:, image, text.start + 1] = True  # and every image query a text column the map presents
    store = AttentionStore()
    store.cfg = True
    roles = {"text": "cross", "image": "self", "joint": "joint"}
    layers = {role: LayerInfo(f"m:{role}", "mid", kind, 2, 0) for role, kind in roles.items()}  # type: ignore[arg-type]
    processor = JointCaptureProcessor(store, "m", layers, original=None, flux=text_first)
    mask = JointMask(lambda layer, lay, m: allowed, lambda step: True, base_ratio=0.3, masks_maps=masks_maps)
    out = processor._attend(q, k, v, layout, ["text"], [mask])
    (bias,) = [entry[1] for entry in store.joint_mask_bias.values()]
    processor._attend(q, k, v, layout, [], [mask])  # another block under the same mask
    assert [entry[1] for entry in store.joint_mask_bias.values()] == [bias]  # its additive form built once

    logits = (q @ k.transpose(-1, -2)) / 8**0.5
    masked = logits[2:].masked_fill(~allowed[:, None], float("-inf"))
    probs = torch.cat([logits[:2].softmax(-1), 0.3 * logits[2:].softmax(-1) + 0.7 * masked.softmax(-1)])
    assert torch.allclose(out, probs @ v, atol=1e-5)
    text_map = (masked if masks_maps else logits[2:])[:, :, image, text][..., list(layout.text_columns)].softmax(-1)
    assert torch.allclose(store.maps["m:text"], text_map, atol=1e-6)
    grads = torch.autograd.grad(out.sum() + store.maps["m:text"].pow(2).sum(), (q, k))
    expected = torch.autograd.grad((probs @ v).sum() + text_map.pow(2).sum(), (q, k))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads, expected))


def test_regional_masks_what_the_layout_says():
    # 2 regions on a 2x2 grid: cell 0 in region 0, cell 3 in region 1, cells 1 and 2 background; 4 text tokens:
    # 0 base, 1 region 0's phrase, 2 region 1's phrase, 3 base
    image = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 1, 0]], dtype=torch.bool)
    text = torch.tensor([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    sd3 = allowed_pairs(image, text, JointLayout(4, False, ()), free_images=False)  # [image, text]
    img, txt = list(range(4)), [4 + t for t in range(4)]
    assert sd3[img[0], txt[1]] and not sd3[img[0], txt[2]] and sd3[img[0], txt[0]] and sd3[img[0], txt[3]]
    assert sd3[txt[2], img[3]] and not sd3[txt[2], img[0]] and not sd3[txt[1], txt[2]] and sd3[txt[0], img[0]]
    assert not sd3[img[0], img[3]] and sd3[img[1], img[2]] and not sd3[img[1], txt[1]]
    flux = allowed_pairs(image, text, JointLayout(4, True, ()), free_images=True)  # [text, image]
    assert flux[:4, :4].equal(sd3[4:, 4:]) and flux[4:, :4].equal(sd3[:4, 4:]) and flux[4:, 4:].all()
    # background_text="prompt": background cells (1, 2) read every text token, phrases included; nothing else moves
    opened = allowed_pairs(image, text, JointLayout(4, False, ()), free_images=False, reads_all_text=image[2])
    assert opened[img[1]][txt].all() and opened[img[2]][txt].all()
    changed = (opened != sd3).nonzero().tolist()
    assert changed == [[img[1], txt[1]], [img[1], txt[2]], [img[2], txt[1]], [img[2], txt[2]]]


def test_regional_can_hide_the_end_tokens_from_image_tokens(pipe):
    """``end_tokens="hidden"``: no image token reads an end/padding token (they summarise the whole prompt); the
    start token and the words outside phrases stay base tokens; every query still has a key."""
    from layoutguide.backbones.dit import JointContext
    from layoutguide.methods.regional import token_groups

    token_map = pipe.token_map(LAYOUT.prompt, LAYOUT.phrases)
    words = pipe.text_words(token_map)
    layout = pipe.text_layout()
    regions = pipe.text_regions(token_map, LAYOUT.phrases)
    assert set().union(*map(set, regions)) <= set(words) and len(words) < layout.n_text
    if hasattr(pipe, "tokenizer_3"):  # SD3: the CLIP segment (start token included), then T5's
        segments = [(pipe.tokenizer, 0), (pipe.tokenizer_3, pipe.tokenizer.model_max_length)]
    else:  # FLUX: T5's
        segments = [(pipe.tokenizer_2, 0)]
    for tokenizer, start in segments:  # each segment's words end right before its end token
        ids = tokenizer(LAYOUT.prompt).input_ids
        segment = [p - start for p in words if start <= p < start + len(ids)]
        assert ids[len(segment)] == tokenizer.eos_token_id and ids[len(segment) - 1] != tokenizer.eos_token_id
    ctx = JointContext([LAYOUT], [token_map], 1, (16, 16), torch.device("cpu"), torch.ones(1001), torch.ones(1),
                       text_regions=[regions], text_words=[words])  # fmt: skip
    image, text = token_groups(ctx, 0, (8, 8), layout.n_text, hide_end=True)
    allowed = allowed_pairs(image, text, layout, free_images=False)
    img, txt = layout.slices(allowed.shape[0])
    img_rows = allowed[img][:, txt]
    ends = [p for p in range(layout.n_text) if p not in words]
    base = [p for p in words if not any(p in r for r in regions)]
    assert not img_rows[:, ends].any() and img_rows[:, base].all() and allowed.any(1).all()
    shared = allowed_pairs(*token_groups(ctx, 0, (8, 8), layout.n_text), layout, free_images=False)
    assert shared[img][:, txt][:, ends].all()
    default = run(pipe, "regional").images
    assert torch.allclose(default, run(pipe, "regional", method_options={"end_tokens": "hidden"}).images)
    assert not torch.allclose(default, run(pipe, "regional", method_options={"end_tokens": "shared"}).images)


def test_regional_with_hidden_end_tokens_leaves_no_nan_when_the_prompt_is_all_phrase(pipe):
    """FLUX has no start token: with every word in a phrase and the end tokens hidden, a background cell reads no text
    key; its recorded text map is zeros (not NaN) and a gradient method on top stays finite."""
    alone = Layout.from_dict({"prompt": "red circle", "regions": [{"phrase": "red circle", "box": [0, 0, 0.5, 0.5]}]})
    out = run(pipe, "regional", layout=alone, return_attention=True)
    assert torch.isfinite(out.images).all() and all(torch.isfinite(a).all() for a in out.attention)
    guided = run(pipe, "regional+refocus", layout=alone, num_inference_steps=2)
    assert torch.isfinite(guided.images).all()


@pytest.mark.slow
def test_refocus_under_regional_reads_the_attention_guide_maps_names(pipe):
    """While regional's masks act, refocus reads the model's own attention by default and the masked one with
    ``guide_maps="masked"`` (where a phrase reads nothing outside its region: CAR's background term is zero and its
    peak term mostly met): the two give different images; regional's own images do not depend on the option."""
    alone = run(pipe, "regional").images
    assert torch.equal(run(pipe, "regional[guide_maps=masked]").images, alone)
    masked = run(pipe, "regional+refocus[regional.guide_maps=masked]").images
    default = run(pipe, "regional+refocus").images
    assert torch.equal(run(pipe, "regional+refocus[regional.guide_maps=unmasked]").images, default)
    assert not torch.allclose(masked, default, atol=1e-3)


@pytest.mark.slow
def test_regional_acts_only_in_its_steps_and_blocks(pipe):
    plain = run(pipe).images
    never = run(pipe, "regional", method_options={"mask_inject_steps": 0}).images
    assert torch.allclose(never, plain)
    all_base = run(pipe, "regional", method_options={"base_ratio": 1.0}).images
    assert torch.allclose(all_base, plain, atol=1e-5)
    first = run(pipe, "regional", method_options={"blocks": [0]}).images
    every = run(pipe, "regional").images
    assert not torch.allclose(first, plain) and not torch.allclose(first, every)
    with pytest.raises(MethodOptionError, match="regional.blocks"):
        run(pipe, "regional", method_options={"blocks": [99]})


@pytest.mark.slow
def test_refocus_on_joint_attention_lowers_its_loss(pipe):
    losses = guide_losses_dit(pipe, Refocus(loss_scale=1.0), iterations=5, step_size=20.0)
    assert losses[-1] < losses[0]


def guide_losses_dit(pipe, method, iterations, step_size):
    from layoutguide.methods import StepPlan
    from layoutguide.testing import one_step_guidance

    plan = StepPlan(iterations, step_size, {"reference_step": 0})
    out = run(pipe, one_step_guidance(method, 0, plan), guidance_scale=1.0)
    return [losses[0] for losses in out.guidance[0]["losses"]]


def test_request_blocks_choose_dit_layers(pipe):
    from layoutguide.attention import _select

    layers = joint_attention_layers(pipe.transformer)
    chosen = _select(layers, AttentionRequest("text", blocks=(1,)), (16, 16))
    assert [layer.name for layer in chosen] == [layers[3].name]


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_save_reload_and_cli_generate(family, tmp_path):
    from layoutguide.loading import load_pipeline

    pipe = FAMILIES[family]()
    folder = tmp_path / family
    pipe.save_pretrained(folder)
    (folder / "layoutguide.json").write_text(json.dumps({"image_size": 128}))
    loaded = load_pipeline(folder, device="cpu")
    assert type(loaded) is type(pipe)
    before = run(pipe, "regional+refocus").images
    after = run(loaded, "regional+refocus").images
    assert torch.allclose(before, after, atol=1e-5)
    layout_file = tmp_path / "layout.json"
    layout_file.write_text(json.dumps(LAYOUT.to_dict()))
    out = tmp_path / "out.png"
    result = CliRunner().invoke(
        app,
        ["generate", "--model", str(folder), "--layout", str(layout_file), "--method", "regional+refocus"]
        + ["--steps", "2", "--out", str(out), "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_plain_sampling_matches_diffusers_sd3():
    from diffusers import StableDiffusion3Pipeline

    from layoutguide.testing_dit import T5_TOKENS, tiny_sd3_components

    ours = tiny_sd3_pipeline()
    theirs = StableDiffusion3Pipeline(**{name: getattr(ours, name) for name in tiny_sd3_components()})
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    mine = ours(prompt=LAYOUT.prompt, latents=x, num_inference_steps=3, output_type="latent", progress=False).images
    ref = theirs(
        prompt=LAYOUT.prompt,
        latents=x.clone(),
        num_inference_steps=3,
        guidance_scale=7.0,
        max_sequence_length=T5_TOKENS,
        output_type="latent",
    ).images
    assert torch.allclose(mine, ref, atol=1e-5)


def test_plain_sampling_matches_diffusers_flux():
    from diffusers import FluxPipeline

    from layoutguide.backbones.dit_families import pack, unpack
    from layoutguide.testing_dit import T5_TOKENS, tiny_flux_components

    ours = tiny_flux_pipeline()
    theirs = FluxPipeline(**{name: getattr(ours, name) for name in tiny_flux_components()})
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    mine = ours(prompt=LAYOUT.prompt, latents=x, num_inference_steps=3, output_type="latent", progress=False).images
    ref = theirs(
        prompt=LAYOUT.prompt,
        latents=pack(x.clone()),
        height=128,
        width=128,
        num_inference_steps=3,
        guidance_scale=3.5,
        max_sequence_length=T5_TOKENS,
        output_type="latent",
    ).images
    assert torch.allclose(mine, unpack(ref, (16, 16)), atol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_from_pipe_gives_the_family_pipeline(family):
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    from layoutguide.pipeline import LayoutPipeline
    from layoutguide.testing_dit import tiny_flux_components, tiny_sd3_components

    ours = FAMILIES[family]()
    cls, names = (
        (StableDiffusion3Pipeline, tiny_sd3_components) if family == "sd3" else (FluxPipeline, tiny_flux_components)
    )
    theirs = cls(**{name: getattr(ours, name) for name in names()})
    again = LayoutPipeline.from_pipe(theirs)
    assert type(again) is type(ours) and again.transformer is ours.transformer


def test_layoutguide_json_chooses_the_blocks_methods_read(pipe):
    before = dict(pipe.model_defaults)
    maps = []
    try:
        for blocks in ([0], [1]):
            pipe.model_defaults = {**before, "attention_blocks": blocks}
            maps.append(run(pipe, return_attention=True).attention[0])
    finally:
        pipe.model_defaults = before
    every = run(pipe, return_attention=True).attention[0]
    assert not torch.allclose(maps[0], maps[1])
    if len(joint_attention_layers(pipe.transformer)) == 6:  # two blocks: every block = the mean of both
        assert torch.allclose(every, (maps[0] + maps[1]) / 2, atol=1e-5)


def test_a_preset_with_a_unet_sampler_is_refused(pipe):
    from layoutguide.errors import InputError

    with pytest.raises(InputError, match="preset 'official' samples with 'pndm'.*flow-matching"):
        run(pipe, "refocus", preset="official")
    with pytest.raises(InputError, match="flow-matching transformer samples with its own scheduler"):
        run(pipe, sampler="ddim")


def test_regional_takes_masks_as_well_as_boxes():
    import numpy as np

    from layoutguide.layout import Region
    from layoutguide.methods.regional import token_groups

    triangle = np.tril(np.ones((512, 512), dtype=bool))  # the lower-left half of the canvas, not a box
    masked = LAYOUT.replace(regions=(Region("red circle", mask=triangle), LAYOUT.regions[1]))
    pipe = tiny_sd3_pipeline()
    box_run, mask_run = run(pipe, "regional").images, run(pipe, "regional", layout=masked).images
    assert not torch.allclose(box_run, mask_run)
    from layoutguide.backbones.dit import JointContext

    ctx = JointContext([masked], [pipe.token_map(masked.prompt, masked.phrases)], 1, (16, 16), torch.device("cpu"),
                       torch.ones(1001), torch.ones(1), text_regions=[((1,), (2,))])  # fmt: skip
    image, _ = token_groups(ctx, 0, (8, 8), 4)
    assert image[0].view(8, 8).float().triu(1).sum() == 0 and image[0].sum() > 20  # the triangle, cell by cell


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_listing_and_bench_record_show_the_dit_defaults(family):
    """``layoutguide methods --model DIT`` and ``bench``'s run record name the steps and guidance that run on a DiT
    (28 steps; CFG 7.0 on SD3, guidance 3.5 on FLUX), not the UNet pipeline's 50 and 7.5."""
    from layoutguide.bench.resume import sampling_defaults
    from layoutguide.method_listing import model_listing

    pipe = tiny_sd3_pipeline() if family == "sd3" else tiny_flux_pipeline()
    scale = 7.0 if family == "sd3" else 3.5
    listing = model_listing(pipe, "regional")
    assert "num_inference_steps = 28  [pipeline default]" in listing
    assert f"guidance_scale = {scale!r}  [pipeline default]" in listing
    assert sampling_defaults(pipe) == {"steps": 28, "guidance_scale": scale}
