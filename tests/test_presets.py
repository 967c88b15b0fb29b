"""Presets (official / paper / tuned), backbone-family defaults, the official box rasterisation and the sources
``layoutguide methods`` reports (issue 16: items 1, 2, 3, 7, 9, 12)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import PNDMScheduler, UNet2DConditionModel
from typer.testing import CliRunner

from layoutguide.cli import app
from layoutguide.defaults import backbone_family
from layoutguide.layout import Layout, Region
from layoutguide.loading import load_pipeline
from layoutguide.methods import GradientMethod, MethodState, SampleLoss, get_method
from layoutguide.methods.base import TokenMapOptions
from layoutguide.methods.context import GuidanceContext
from layoutguide.methods.gligen import prefixed
from layoutguide.presets import AR_NEGATIVE, ZG_NEGATIVE, layered_options, layered_sampling, preset_options
from layoutguide.spec import MethodOptionError, MethodSpec
from layoutguide.testing import tiny_pipeline, tiny_sd_pipeline

BOXES = [(0.1, 0.1, 0.55, 0.55), (0.3, 0.05, 0.93, 0.62), (0.02, 0.6, 0.21, 0.99), (0.5, 0.5, 0.56, 0.53)]


def official_mask(box, side: int = 16) -> np.ndarray:
    """The official Attention Refocusing rasterisation, as its code writes it: ``int(b*16)`` for both edges."""
    x0, y0, x1, y1 = (int(v * side) for v in box)
    mask = np.zeros((side, side), dtype=np.float32)
    mask[y0:y1, x0:x1] = 1
    return mask


@pytest.mark.parametrize("box", BOXES[:3])
def test_truncate_is_the_official_int_rasterisation_and_cover_keeps_every_touched_cell(box):
    layout = Layout(prompt="a cat", regions=(Region("cat", box=box),))
    truncated = layout.rasterize(16, 16, box_edges="truncate")[0]
    covered = layout.rasterize(16, 16)[0]
    np.testing.assert_array_equal(truncated, official_mask(box))
    x0, y0, x1, y1 = box
    cells = (math.ceil(x1 * 16) - math.floor(x0 * 16)) * (math.ceil(y1 * 16) - math.floor(y0 * 16))
    assert covered.sum() == cells > truncated.sum()


def test_truncate_keeps_one_cell_of_a_box_narrower_than_a_cell():
    layout = Layout(prompt="a cat", regions=(Region("cat", box=BOXES[3]),))
    assert official_mask(BOXES[3]).sum() == 0  # the official slice is empty
    assert layout.rasterize(16, 16, box_edges="truncate")[0].sum() == 1


class EdgeProbeOptions(TokenMapOptions):
    pass


class EdgeProbe(GradientMethod):
    """Records the masks its views hand the loss."""

    name = "edge-probe"
    Options = EdgeProbeOptions
    seen: list[torch.Tensor] = []

    def sample_loss(self, view, step, plan):
        self.seen.append(view.region_masks((16, 16)))
        return SampleLoss(torch.zeros(()))


def test_a_methods_box_edges_option_reaches_the_masks_its_loss_reads():
    layout = Layout(prompt="a cat", regions=(Region("cat", box=BOXES[0]),))
    ctx = GuidanceContext([layout], [None], 1, (16, 16), torch.device("cpu"), torch.ones(1000), torch.arange(1))
    for edges in ("truncate", "cover"):
        probe = EdgeProbe(box_edges=edges)
        probe.seen = []
        probe.loss(MethodState(ctx), 0, None, None)
        np.testing.assert_array_equal(probe.seen[0][0].numpy(), layout.rasterize(16, 16, box_edges=edges)[0])
    assert not np.array_equal(*(layout.rasterize(16, 16, box_edges=e)[0] for e in ("truncate", "cover")))


def test_spec_brackets_carry_a_preset_and_a_bad_preset_is_named():
    spec = MethodSpec.parse("refocus[preset=official,loss_scale=2]")
    assert (spec.method, spec.preset, spec.options) == ("refocus", "official", {"loss_scale": 2})
    combo = MethodSpec.parse("gligen+refocus[preset=paper;refocus.tokens=last]")
    assert combo.preset == "paper" and combo.options == {"refocus": {"tokens": "last"}}
    assert MethodSpec.parse("refocus").with_preset("paper").preset == "paper"
    assert spec.with_preset("paper").preset == "official"  # the entry's own preset wins over --preset
    with pytest.raises(MethodOptionError, match="unknown preset 'oficial'.*tuned, official, paper"):
        MethodSpec.parse("refocus[preset=oficial]")


def test_official_refocus_on_plain_sd_layers_family_preset_explicit_and_brackets():
    pipe = tiny_pipeline()  # no layoutguide.json: family defaults apply
    assert backbone_family(pipe.unet) == "sd1"
    tuned = pipe.method_with_defaults("refocus").options
    assert (tuned.loss_scale, tuned.variant, tuned.box_edges) == (10.0, "paper", "cover")  # family sd1: 10x
    official = pipe.method_with_defaults("refocus", preset="official").options
    assert (official.variant, official.box_edges, official.temperature, official.loss_scale) == (
        "official",
        "truncate",
        100.0,
        10.0,
    )
    assert pipe.method_with_defaults("refocus", {"loss_scale": 2.0}, preset="official").options.loss_scale == 2.0
    bracketed = pipe.method_with_defaults("refocus[preset=paper,loss_scale=3]", {"loss_scale": 2.0}, preset="official")
    assert (bracketed.options.variant, bracketed.options.loss_scale) == ("paper", 3.0)


def test_a_models_layoutguide_json_replaces_the_family_defaults():
    pipe = tiny_pipeline()
    pipe.model_defaults = {"methods": {"refocus": {"loss_scale": 3.0}}}
    assert pipe.method_with_defaults("refocus").options.loss_scale == 3.0
    assert pipe.method_with_defaults("zestguide").options.eta == 1.0  # the method's default, not the family's 0.3
    assert pipe.method_with_defaults("zestguide", preset="official").options.eta == 0.3  # the preset still applies


def test_official_refocus_on_gligen_turns_on_lg_scheduled_sampling_and_the_a_prefix():
    pipe = tiny_pipeline(gated=True)
    assert backbone_family(pipe.unet) == "gligen"
    combo = pipe.method_with_defaults("gligen+refocus", preset="official")
    gligen, refocus = combo.members
    assert (gligen.options.beta, gligen.options.grounding_prefix) == (0.3, "a ")
    assert (refocus.options.loss_scale, refocus.options.grounding_weight) == (1.0, 3.0)
    paper = pipe.method_with_defaults("gligen+refocus", preset="paper").members[1]
    assert (paper.options.variant, paper.options.grounding_weight) == ("paper", 0.0)  # L_G is code-only
    alone = pipe.method_with_defaults("refocus", preset="official")  # no GLIGEN member: no L_G
    assert alone.options.grounding_weight == 0.0
    # a model's training choices are never a preset's to change
    pipe.model_defaults = {"methods": {"gligen": {"grounding_text": "head"}}}
    assert pipe.method_with_defaults("gligen", preset="official").options.grounding_text == "head"


def test_zestguide_official_is_the_sd14_code_and_paper_the_papers_text():
    options = preset_options("official", ["zestguide"], "sd1")["zestguide"]
    assert (options["eta"], options["variant"]) == (0.3, "code")
    # the code guides timesteps i <= int(len(timesteps) * (1 - tau)) of SD-1.4's PNDM (51 for 50 steps): 26
    pndm = PNDMScheduler.from_config(tiny_pipeline().scheduler.config, skip_prk_steps=True)
    pndm.set_timesteps(50)
    count = len(pndm.timesteps)
    code = [i for i in range(count) if i <= int(count * (1 - 0.5))]
    ours = get_method("zestguide", **options)
    ctx = GuidanceContext([], [], count, (16, 16), torch.device("cpu"), pndm.alphas_cumprod, pndm.timesteps)
    assert count == 51 and len(code) == 26
    assert [i for i in range(count) if ours.plan(MethodState(ctx), i) is not None] == code
    assert preset_options("paper", ["zestguide"], "sd1")["zestguide"]["eta"] == 1.0
    assert layered_sampling({}, "zestguide", "official")["negative_prompt"].value == ZG_NEGATIVE
    paper = layered_sampling({}, "zestguide", "paper")
    assert (paper["guidance_scale"].value, paper["sampler"].value) == (3.0, "ddim")


def test_a_preset_runs_its_sampler_and_negative_prompt_and_explicit_arguments_win(two_region_layout):
    pipe = tiny_pipeline()
    seen: dict[str, list] = {"schedulers": [], "prompts": []}
    encode = pipe.encode_prompt

    def recording_encode(prompts):
        seen["prompts"].append(list(prompts))
        return encode(prompts)

    pipe.encode_prompt = recording_encode
    own = pipe.scheduler
    out = pipe(
        layout=two_region_layout,
        method="refocus[preset=official]",
        num_inference_steps=2,
        seed=0,
        progress=False,
        output_type="latent",
        callback=lambda info: seen["schedulers"].append(type(pipe.scheduler)),
    )
    assert set(seen["schedulers"]) == {PNDMScheduler} and pipe.scheduler is own  # the model's is put back
    assert len(out.guidance) == len(seen["schedulers"]) >= 2  # explicit steps win over the preset's 50
    assert [AR_NEGATIVE] in seen["prompts"]
    seen["prompts"].clear()
    pipe(
        layout=two_region_layout,
        method="refocus",
        preset="official",
        negative_prompt="blurry",
        num_inference_steps=1,
        progress=False,
        output_type="latent",
    )
    assert ["blurry"] in seen["prompts"] and [AR_NEGATIVE] not in seen["prompts"]


@pytest.mark.slow
def test_a_guidance_interval_flag_wins_over_the_presets_every_step(tiny_folder, two_region_layout):
    """``--guidance-interval`` (given at load time) is explicit: the official preset's CFG-on-every-step must not
    replace it (bench shapes --preset official --guidance-interval 0,500 ran CFG on every step before the fix)."""
    pipe = load_pipeline(tiny_folder, device="cpu", guidance_interval="0,500")
    batches: list[int] = []
    steps: list[tuple[int, int]] = []  # (timestep, batch of the step's last UNet call: 2 with CFG, 1 without)
    pipe.unet.register_forward_hook(lambda _module, args, _out: batches.append(args[0].shape[0]))
    pipe(
        layout=two_region_layout,
        method="refocus[preset=official]",
        num_inference_steps=4,
        seed=0,
        progress=False,
        output_type="latent",
        callback=lambda info: steps.append((int(info["timestep"]), batches[-1])),
    )
    assert len(steps) >= 4 and pipe.model_defaults["guidance_interval"] == [0.0, 500.0]
    assert [batch for _, batch in steps] == [2 if t <= 500 else 1 for t, _ in steps]
    assert {batch for _, batch in steps} == {1, 2}  # both sides of the interval were sampled


def test_sources_name_every_layer():
    options = layered_options({}, "sd1", "refocus", "official", {"loss_scale": 2.0})["refocus"]
    assert options["loss_scale"].source.startswith("explicit")
    assert options["variant"].source == "preset official"
    assert options["car_foreground"].source == "method default"
    tuned = layered_options({}, "sd1", "refocus")["refocus"]
    assert tuned["loss_scale"].value == 10.0 and tuned["loss_scale"].source.startswith("family default (sd1")
    shipped_like = layered_options({"methods": {"refocus": {"loss_scale": 10.0}}}, "sd1", "refocus")["refocus"]
    assert shipped_like["loss_scale"].source == "model (layoutguide.json)"
    sampling = layered_sampling({"num_inference_steps": 30}, "refocus", "official", {"num_inference_steps": 8})
    assert (sampling["num_inference_steps"].value, sampling["num_inference_steps"].source) == (8, "explicit")
    assert sampling["guidance_scale"].source == "preset official"


def test_backbone_family_of_real_architecture_configs_built_without_weights():
    sd15 = dict(
        sample_size=64,
        cross_attention_dim=768,
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )
    with torch.device("meta"):
        assert backbone_family(UNet2DConditionModel(**sd15)) == "sd1"
        sd2 = UNet2DConditionModel(**{**sd15, "cross_attention_dim": 1024, "attention_head_dim": (5, 10, 20, 20)})
        assert backbone_family(sd2) == "sd2"
        assert backbone_family(UNet2DConditionModel(**sd15, attention_type="gated")) == "gligen"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sd", "shapes", "gligen"])
def test_a_saved_folder_without_layoutguide_json_gets_its_familys_step_sizes(tmp_path, kind):
    built = tiny_sd_pipeline() if kind == "sd" else tiny_pipeline(gated=kind == "gligen")
    built.save_pretrained(tmp_path)
    assert not (tmp_path / "layoutguide.json").exists()
    pipe = load_pipeline(str(tmp_path), device="cpu")
    assert backbone_family(pipe.unet) == ("gligen" if kind == "gligen" else "sd1")
    refocus = pipe.method_with_defaults("refocus").options
    assert refocus.loss_scale == (1.0 if kind == "gligen" else 10.0)
    assert pipe.method_with_defaults("zestguide").options.eta == 0.3


def test_gligen_prefix_is_the_official_a_form():
    assert prefixed("cat", "a ") == "a cat"
    assert prefixed("A cat", "a ") == "A cat"
    assert prefixed("cat", "") == "cat"
    assert get_method("gligen", grounding_prefix="a ").options.grounding_prefix == "a "


def test_methods_command_lists_presets_and_refuses_a_preset_without_a_model():
    runner = CliRunner()
    listing = runner.invoke(app, ["methods", "--method", "refocus"])
    assert listing.exit_code == 0, listing.output
    assert "preset official" in listing.output and "box_edges='truncate'" in listing.output
    assert "explicit always wins" in listing.output
    refused = runner.invoke(app, ["methods", "--preset", "official"])
    assert refused.exit_code == 2 and "give --model too" in refused.output
    bad = runner.invoke(app, ["generate", "--prompt", "a cat", "--preset", "offical"])
    assert bad.exit_code == 2 and "--preset: unknown preset 'offical'" in bad.output


@pytest.mark.slow
def test_methods_command_with_a_model_shows_each_values_source():
    result = CliRunner().invoke(
        app,
        ["methods", "--model", "shapes", "--method", "refocus", "--preset", "official", "--set", "refocus.sar=false"],
    )
    assert result.exit_code == 0, result.output
    assert "loss_scale = 10.0  [preset official]" in result.output  # plain SD family: the authors' 10x
    assert "sar = False  [explicit" in result.output
    assert "the model's layoutguide.json replaces the family defaults" in result.output


def test_the_ui_shows_the_family_default_that_runs_when_a_field_is_left_alone():
    from layoutguide.ui.options import changed_options, option_fields

    fields = {f.name: f for f in option_fields("refocus", {}, "sd1")}
    assert fields["loss_scale"].default == 10.0
    calibrated = {f.name: f for f in option_fields("refocus", {"methods": {"refocus": {"loss_scale": 3.0}}}, "sd1")}
    assert calibrated["loss_scale"].default == 3.0
    # choosing the schema's 1.0 on an SD folder is a change the run must carry
    assert changed_options(list(fields.values()), {fields["loss_scale"].key: 1.0}) == {"refocus": {"loss_scale": 1.0}}


@pytest.mark.slow
def test_generate_runs_a_preset_on_a_model_folder(tmp_path, tiny_folder):
    layout = Layout(prompt="a red circle", regions=(Region("red circle", box=(0.1, 0.1, 0.6, 0.6)),))
    layout_file = tmp_path / "layout.json"
    layout.to_json(layout_file)
    args = ["generate", "--model", tiny_folder, "--layout", str(layout_file), "--steps", "2", "--device", "cpu"]
    result = CliRunner().invoke(
        app, [*args, "--method", "refocus", "--preset", "official", "--out", str(tmp_path / "a.png")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a.png").is_file()
