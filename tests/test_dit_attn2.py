"""SD3.5's image-only second attention (``attn2`` of its dual-attention blocks) as an ``image`` layer of source
``attn2``: captured exactly, read only when asked (a request's ``sources`` or ``layoutguide.json``
``image_attention``), never masked, the module's own processor on every call that does not record it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from diffusers.models.attention_processor import JointAttnProcessor2_0

from layoutguide.attention import AttentionRequest, AttentionStore, _select, recording
from layoutguide.errors import InputError
from layoutguide.joint_attention import joint_attention_control, joint_attention_layers
from layoutguide.layout import Layout
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
ATTN2 = "transformer_blocks.0.attn2:image"


@pytest.fixture(scope="module")
def pipe():
    return tiny_sd3_pipeline(sd35=True)


def run(pipe, method="none", **kwargs):
    args = dict(layout=LAYOUT, method=method, num_inference_steps=3, seed=1, output_type="latent", progress=False)
    return pipe(**{**args, **kwargs})


class CountingProcessor(JointAttnProcessor2_0):
    """diffusers' own processor, counting its calls."""

    calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return super().__call__(*args, **kwargs)


def test_attn2_is_an_image_layer_read_only_when_asked(pipe):
    layers = joint_attention_layers(pipe.transformer)
    dual = [layer for layer in layers if layer.source == "attn2"]
    assert [(d.name, d.kind, d.block, d.factor) for d in dual] == [(ATTN2, "self", 0, 2)]
    assert len(layers) == 3 * 2 + 1
    default = _select(layers, AttentionRequest("image"), (16, 16))
    assert [layer.name for layer in default] == ["transformer_blocks.0.attn:image", "transformer_blocks.1.attn:image"]
    assert [layer.name for layer in _select(layers, AttentionRequest("image", sources=["attn2"]), (16, 16))] == [ATTN2]
    both = _select(layers, AttentionRequest("image", sources=("joint", "attn2")), (16, 16))
    assert len(both) == 3
    store_default = _select(layers, AttentionRequest("image"), (16, 16), None, ("attn2",))
    assert [layer.name for layer in store_default] == [ATTN2]
    text = _select(layers, AttentionRequest("text"), (16, 16), None, ("attn2",))  # only image requests take it
    assert len(text) == 2 and all(layer.source == "joint" for layer in text)


def test_bad_sources_are_refused_with_one_line(pipe):
    layers = joint_attention_layers(pipe.transformer)
    with pytest.raises(InputError, match="AttentionRequest.sources must be .* for role 'text'"):
        AttentionRequest("text", sources=("attn2",))
    with pytest.raises(InputError, match="AttentionRequest.sources"):
        AttentionRequest("image", sources=("attn3",))
    with pytest.raises(InputError, match=r"blocks \[1\].*in blocks \[0\]"):
        _select(layers, AttentionRequest("image", sources=("attn2",), blocks=(1,)), (16, 16))
    flux = joint_attention_layers(tiny_flux_pipeline().transformer)
    with pytest.raises(InputError, match=r"this transformer has only \['joint'\]"):
        _select(flux, AttentionRequest("image", sources=("attn2",)), (16, 16))
    pipe.model_defaults = {"image_attention": "attn2"}  # a string, not a list
    try:
        with pytest.raises(InputError, match="layoutguide.json image_attention must be a non-empty list"):
            run(pipe)
    finally:
        pipe.model_defaults = {}


def _conditioning(pipe, batch=1):
    embeddings, added = pipe.encode_conditioning([LAYOUT.prompt] * batch, (128, 128))
    return embeddings, None, added


def _forward(pipe, x, record, on=True, cfg=False):
    embeddings, _, added = _conditioning(pipe, len(x))
    store = AttentionStore()
    with (
        joint_attention_control(pipe.transformer, store, record, None, latent_hw=(16, 16), layout=pipe.text_layout()),
        recording(store, cfg=cfg, step=0, on=on),
    ):
        out = pipe.denoise(x, 500.0, embeddings, added=added)
        return out, dict(store.maps)


@pytest.mark.parametrize("cfg", [False, True])
def test_captured_attn2_equals_its_projections_and_leaves_the_output(pipe, cfg):
    module = pipe.transformer.transformer_blocks[0].attn2
    inputs = []
    hook = module.register_forward_pre_hook(
        lambda m, args, kwargs: inputs.append(kwargs["hidden_states"]), with_kwargs=True
    )
    batch = 2 if cfg else 1  # a CFG batch [uncond, cond]: only the conditional half is recorded
    x = torch.randn(batch, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            plain = pipe.denoise(x, 500.0, *_conditioning(pipe, batch))
            out, maps = _forward(pipe, x, {"self": AttentionRequest("image", sources=("attn2",))}, cfg=cfg)
    finally:
        hook.remove()
    assert set(maps) == {ATTN2} and maps[ATTN2].shape == (1, 2, 64, 64)
    hidden = inputs[-1][-1:]  # the conditional sample's input to attn2

    def heads(t):
        return t.view(1, -1, module.heads, t.shape[-1] // module.heads).transpose(1, 2)

    q, k = module.norm_q(heads(module.to_q(hidden))), module.norm_k(heads(module.to_k(hidden)))
    reference = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)
    assert torch.allclose(maps[ATTN2], reference, atol=1e-5)
    assert torch.allclose(out, plain, atol=1e-5)  # recording computes the same attention as the module's SDPA


def test_attn2_runs_its_own_processor_unless_recorded_and_gets_it_back(pipe):
    module = pipe.transformer.transformer_blocks[0].attn2
    own = CountingProcessor()
    module.set_processor(own)
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    request = {"self": AttentionRequest("image", sources=("joint", "attn2"))}
    with torch.no_grad():
        _, maps = _forward(pipe, x, request, on=False)  # installed but not recording
        assert own.calls == 1 and not maps
        _, maps = _forward(pipe, x, request)
        assert own.calls == 1 and ATTN2 in maps and "transformer_blocks.1.attn:image" in maps
    assert module.processor is own
    run(pipe, "regional")  # regional masks joint attention only: attn2 keeps its own processor on every forward
    assert own.calls == 1 + 3  # the unrecorded forward above, then one CFG-batched forward per step
    module.set_processor(JointAttnProcessor2_0())


def test_regional_masks_are_unaffected_by_attn2(pipe):
    plain, masked = run(pipe, num_inference_steps=2).images, run(pipe, "regional", num_inference_steps=2).images
    pipe.model_defaults = {"image_attention": ["attn2"]}
    try:
        with_attn2 = run(pipe, "regional", num_inference_steps=2).images
    finally:
        pipe.model_defaults = {}
    assert not torch.allclose(plain, masked)
    assert torch.equal(masked, with_attn2)


def one_refocus_step(pipe):
    """One refocus guidance iteration at the first of two steps: the smallest run that reads the image maps."""
    from layoutguide.methods import StepPlan
    from layoutguide.methods.refocus import Refocus
    from layoutguide.testing import one_step_guidance

    method = one_step_guidance(Refocus(loss_scale=1.0), 0, StepPlan(1, 20.0, {"reference_step": 0}))
    return run(pipe, method, num_inference_steps=2).images


def test_refocus_reads_attn2_only_when_the_model_asks(pipe):
    default = one_refocus_step(pipe)
    try:
        pipe.model_defaults = {"image_attention": ["joint"]}
        joint = one_refocus_step(pipe)
        pipe.model_defaults = {"image_attention": ["attn2"]}
        attn2 = one_refocus_step(pipe)
    finally:
        pipe.model_defaults = {}
    assert torch.equal(default, joint) and not torch.allclose(default, attn2, atol=1e-4)


@pytest.mark.slow
def test_image_attention_survives_save_reload(pipe, tmp_path):
    from layoutguide.loading import load_pipeline

    pipe.model_defaults = {"image_attention": ["attn2"]}
    try:
        attn2 = one_refocus_step(pipe)
        pipe.save_pretrained(tmp_path / "sd35")
    finally:
        pipe.model_defaults = {}
    assert json.loads((tmp_path / "sd35" / "layoutguide.json").read_text())["image_attention"] == ["attn2"]
    loaded = load_pipeline(tmp_path / "sd35", device="cpu")
    assert [layer.name for layer in joint_attention_layers(loaded.transformer) if layer.source == "attn2"] == [ATTN2]
    assert torch.allclose(one_refocus_step(loaded), attn2, atol=1e-5)
    assert not torch.allclose(one_refocus_step(pipe), attn2, atol=1e-4)  # the saved file, not the pipeline, chose
