"""Issue 16's fidelity fixes: layer choice relative to the latent, refocus's L_G gate and scaled early stop, SD 2.x
padding out of the token softmax; the shipped shapes models keep the layers they were calibrated on."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from layoutguide.attention import AttentionRequest, AttentionStore, LayerInfo, RecordedMaps, select_layers
from layoutguide.layout import Layout, Region
from layoutguide.methods import get_method
from layoutguide.methods.base import GuidanceContext, MethodState, SampleView, StepPlan
from layoutguide.shapes.model import build_tokenizer
from layoutguide.testing import sd_shaped_unet, sdxl_shaped_unet
from layoutguide.tokens import map_phrases


@pytest.fixture(scope="module")
def sd2_unets():
    """SD 2.x's UNet layout at tiny widths with SD's two layers per block, at 512 and 768 px (64 / 96 latents)."""
    return {side: sd_shaped_unet(sample_size=side, layers_per_block=2, sd2=True) for side in (64, 96)}


def _chosen(unet, method, latent: int) -> set[str]:
    return {layer.name for r in method.requests() for layer in select_layers(unet, r, (latent, latent))}


def _blocks(*prefixes: str, attn: str = "attn2") -> set[str]:
    """SD's layer names under the given attention blocks (``down_blocks.2`` has 2, up blocks 3; one transformer)."""
    names = set()
    for prefix in prefixes:
        count = 2 if prefix.startswith("down") else 3 if prefix.startswith("up") else 1
        names |= {f"{prefix}.attentions.{i}.transformer_blocks.0.{attn}" for i in range(count)}
    return names


QUARTER = _blocks("down_blocks.2", "up_blocks.1")  # SD's five 16x16 layers at 512 px, 24x24 at 768 px


@pytest.mark.parametrize("latent", [64, 96])
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("boxdiff", QUARTER),  # at 768 px the absolute rule read the 12x12 mid block alone
        ("attend-excite", QUARTER),
        ("zestguide", QUARTER | _blocks("up_blocks.2")),  # at 768 px it dropped the 48x48 layers
        ("refocus", QUARTER | _blocks("down_blocks.2", "up_blocks.1", attn="attn1")),
        ("layout-guidance", _blocks("up_blocks.1", "mid_block")),
    ],
)
def test_sd2_layers_are_the_published_levels_at_512_and_768(sd2_unets, latent, name, expected):
    assert _chosen(sd2_unets[latent], get_method(name), latent) == expected


def test_refocus_reads_the_quarter_level_at_256_px():
    unet = sd_shaped_unet(sample_size=32, layers_per_block=2)
    # a 32x32 latent: level 2 is 8x8; the absolute side 16 read the 1/2 level instead
    assert _chosen(unet, get_method("refocus"), 32) == QUARTER | _blocks("down_blocks.2", "up_blocks.1", attn="attn1")


def test_sdxl_layers_by_the_same_rule():
    unet = sdxl_shaped_unet()
    chosen = _chosen(unet, get_method("boxdiff"), 128)
    assert chosen and all(n.startswith(("down_blocks.2", "up_blocks.0", "mid_block")) for n in chosen)
    zest = _chosen(unet, get_method("zestguide"), 128)
    assert {n.split(".attentions")[0] for n in zest} == {"down_blocks.2", "up_blocks.0", "up_blocks.1"}


def test_absolute_resolution_still_available(sd2_unets):
    chosen = _chosen(sd2_unets[96], get_method("boxdiff", resolution=16), 96)
    assert chosen == _blocks("mid_block")  # the old rule, now only on request


@pytest.mark.slow
def test_returned_attention_is_the_methods_level(tiny_sd_pipe, two_region_layout):
    out = tiny_sd_pipe(
        layout=two_region_layout, return_attention=True, num_inference_steps=1, output_type="latent", progress=False
    )
    assert out.attention[0].shape[1:3] == (4, 4)  # level 2 of a 16x16 latent (was the 16x16 level 0)
    out = tiny_sd_pipe(
        layout=two_region_layout,
        return_attention=True,
        attention_resolution=8,
        num_inference_steps=1,
        output_type="latent",
        progress=False,
    )
    assert out.attention[0].shape[1:3] == (8, 8)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["shipped", "shipped_gligen"])
def test_shipped_models_keep_their_calibrated_layers(model, request):
    """The shapes models (16x16 latents) were calibrated on their 16x16 layers: their layoutguide.json pins level 0,
    which selects exactly what the absolute side 16 (and ZestGuide's (16, 32)) did."""
    pipe = request.getfixturevalue(model)
    old = {
        "refocus": [AttentionRequest(role, (16,), ("down", "up")) for role in ("text", "image")],
        "boxdiff": [AttentionRequest("text", (16,), ("down", "mid", "up"))],
        "attend-excite": [AttentionRequest("text", (16,), ("down", "mid", "up"))],
        "layout-guidance": [AttentionRequest("text", (16,), ("up",)), AttentionRequest("text", None, ("mid",))],
        "zestguide": [AttentionRequest("text", (16,), ("down", "up")), AttentionRequest("text", (32,), ("up",))],
    }
    for name, requests in old.items():
        method = pipe.method_with_defaults(name)
        before = {layer.name for r in requests for layer in select_layers(pipe.unet, r, (16, 16))}
        assert _chosen(pipe.unet, method, 16) == before, name
    assert pipe.method_with_defaults("refocus").options.early_stop_on == "raw"
    assert pipe.model_defaults["attention_level"] == 0


# ------------------------------------------------------------------------------------------- refocus L_G and stop
@dataclasses.dataclass
class GroundingView:
    """The slice of a SampleView that L_G reads: fuser maps per layer and the region masks."""

    ctx: GuidanceContext
    maps: list[tuple[tuple[int, int], torch.Tensor]]
    masks: torch.Tensor

    def layer_maps(self, name):
        return self.maps

    def region_masks(self, grid, **_):
        return self.masks


def _grounding_view() -> GroundingView:
    g = torch.Generator().manual_seed(3)
    masks = torch.zeros(2, 4, 4)
    masks[0, :2, :2] = 1
    masks[1, 2:, 1:] = 1
    maps = [((4, 4), torch.randn(2, 16 + 30, 16 + 30, generator=g).mul(3).softmax(-1)) for _ in range(3)]
    ctx = GuidanceContext([], [], 50, (4, 4), torch.device("cpu"), torch.ones(1000), torch.arange(50))
    return GroundingView(ctx, maps, masks)


@pytest.mark.parametrize(("reference_step", "active"), [(0, True), (14, True), (15, False), (35, False)])
def test_grounding_loss_only_on_the_official_early_steps(reference_step, active):
    method = get_method("refocus", car=False, sar=False, grounding_weight=3.0)
    plan = StepPlan(1, 4.0, {"reference_step": reference_step})
    out = method.sample_loss(_grounding_view(), 0, plan)
    assert (float(out.loss) > 0) is active
    ungated = get_method("refocus", car=False, sar=False, grounding_weight=3.0, grounding_until=None)
    assert float(ungated.sample_loss(_grounding_view(), 0, plan).loss) > 0


@pytest.mark.slow
def test_early_stop_compares_the_step_size_scaled_loss(sharp_pipe):
    """At reference step 0 (s = 4, up to 2 iterations) a threshold of twice the first loss stops the raw comparison
    after one iteration; the official comparison of 4 x loss goes on."""
    layout = Layout("a red circle", (Region("red circle", box=(0.1, 0.1, 0.6, 0.6)),), width=64, height=64)
    kwargs = {"layout": layout, "method": "refocus", "num_inference_steps": 1, "guidance_scale": 1.0}
    kwargs |= {"output_type": "latent", "progress": False}
    base = {"sar": False, "inside_threshold": 2.0}  # never peaked: only the loss threshold can stop
    probe = sharp_pipe(**kwargs, method_options={**base, "early_stop": False}).guidance[0]["losses"][0][0]
    threshold = 2 * probe

    def iterations(on: str) -> int:
        options = {**base, "loss_threshold": threshold, "early_stop_on": on}
        return len(sharp_pipe(**kwargs, method_options=options).guidance[0]["losses"])

    assert iterations("raw") == 1
    assert iterations("scaled") == 2


# ------------------------------------------------------------------------------------------- SD 2.x padding
def sd2_tokenizer():
    """A CLIP tokenizer that pads with "!" (a real vocabulary token), as SD 2.x's OpenCLIP tokenizer."""
    tokenizer = build_tokenizer()
    tokenizer.pad_token = "!"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    return tokenizer


def _view_of(token_map, cross: torch.Tensor) -> SampleView:
    layout = Layout(token_map.prompt, (Region("red circle", box=(0.0, 0.0, 0.5, 0.5)),), width=64, height=64)
    ctx = GuidanceContext([layout], [token_map], 50, (4, 4), torch.device("cpu"), torch.ones(1000), torch.arange(50))
    store = AttentionStore()
    store.layers = {"l": LayerInfo("l", "down", "cross", 1)}
    store.maps = {"l": cross}
    store.latent_hw = (4, 4)
    maps = RecordedMaps(store, {"cross": AttentionRequest("text", None, ("down",))})
    return SampleView(0, ctx, maps, MethodState(ctx))


@pytest.mark.parametrize("name", ["attend-excite", "boxdiff"])
def test_sd2_padding_stays_out_of_the_token_softmax(name):
    """The official Attend-and-Excite/BoxDiff ``normalize_eot`` (their SD 2.1 setting) softmaxes only the prompt's
    own tokens; SD 2.x's "!" padding would otherwise take most of the x100 softmax."""
    prompt = "a red circle"
    cross = torch.rand(1, 2, 16, 77, generator=torch.Generator().manual_seed(0))
    cross[..., 5:] += 0.05  # padding positions attend a little more than the words, as "!" does on SD 2.x
    cross = cross / cross.sum(-1, keepdim=True)
    last = len(sd2_tokenizer()(prompt).input_ids) - 1  # the official last_idx
    reference = torch.softmax(cross.mean(1)[0, :, 1:last] * 100, -1)  # (16, words)
    method = get_method(name, smoothing=False)
    sd2 = map_phrases(sd2_tokenizer(), prompt, ["red circle"])
    assert not sd2.pads_with_end
    maps = _view_of(sd2, cross).token_maps(
        "cross", [2, 3], smoothing=False, token_softmax=method.options.token_softmax
    )
    torch.testing.assert_close(maps.flatten(1).T, reference[:, 1:3], atol=1e-6, rtol=1e-5)
    # SD 1.x (pads with its end token) keeps the official 1:-1 softmax
    sd1 = map_phrases(build_tokenizer(), prompt, ["red circle"])
    assert sd1.pads_with_end
    maps = _view_of(sd1, cross).token_maps("cross", [2, 3], smoothing=False, token_softmax="auto")
    all_positions = torch.softmax(cross.mean(1)[0, :, 1:-1] * 100, -1)
    torch.testing.assert_close(maps.flatten(1).T, all_positions[:, 1:3], atol=1e-6, rtol=1e-5)


def test_refocus_keeps_the_official_softmax_by_default():
    assert get_method("refocus").options.token_softmax == "all"  # the official code softmaxes 1:-1 on SD 1.4
