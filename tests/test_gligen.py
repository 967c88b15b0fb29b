"""GLIGEN conditioning and ReGround's parallel rewiring on a tiny gated UNet with non-zero gates."""

import pytest
import torch

from layoutguide.layout import Layout, LayoutError, Region
from layoutguide.methods import GuidanceContext, MethodOptionError, get_method
from layoutguide.methods.gligen import REGROUND_HOOK, grounded_blocks, grounding_inputs, parallel_grounding
from layoutguide.pipeline import LayoutPipeline


@pytest.fixture(scope="module")
def gated_pipe():
    from layoutguide.shapes.model import ModelConfig, build_components
    from layoutguide.testing import sd_scheduler

    parts = build_components(ModelConfig.tiny(), seed=0, gated=True)
    parts["scheduler"] = sd_scheduler()
    pipe = LayoutPipeline(**parts)
    torch.manual_seed(0)
    with torch.no_grad():
        for block in grounded_blocks(pipe.unet):
            block.fuser.alpha_attn.fill_(0.7)
            block.fuser.alpha_dense.fill_(-0.4)
    pipe.unet.requires_grad_(False)
    return pipe


def _block_inputs(pipe, block):
    torch.manual_seed(1)
    dim = block.norm1.normalized_shape[0]
    h = torch.randn(2, 16, dim)
    text = torch.randn(2, 7, pipe.unet.config.cross_attention_dim)
    objs = torch.randn(2, 30, pipe.unet.config.cross_attention_dim)
    return h, text, objs


def test_parallel_equals_hand_formula(gated_pipe):
    block = grounded_blocks(gated_pipe.unet)[0]
    h, text, objs = _block_inputs(gated_pipe, block)
    with torch.no_grad():
        v = h + block.attn1(block.norm1(h))
        expected = v + block.attn2(block.norm2(v), encoder_hidden_states=text) + (block.fuser(v, objs) - v)
        expected = expected + block.ff(block.norm3(expected))
        with parallel_grounding(gated_pipe.unet):
            got = block(h, encoder_hidden_states=text, cross_attention_kwargs={"gligen": {"objs": objs}})
        sequential = block(h, encoder_hidden_states=text, cross_attention_kwargs={"gligen": {"objs": objs}})
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(got, sequential, atol=1e-4)  # non-zero gates: the wiring matters
    # never the double-counting form v + fuser(v) + CA(v)
    double = v + block.fuser(v, objs) + block.attn2(block.norm2(v), encoder_hidden_states=text)
    assert not torch.allclose(got, double + block.ff(block.norm3(double)), atol=1e-3)


def test_parallel_equals_sequential_without_grounding(gated_pipe):
    block = grounded_blocks(gated_pipe.unet)[0]
    h, text, objs = _block_inputs(gated_pipe, block)
    with torch.no_grad():
        plain = block(h, encoder_hidden_states=text)
        with parallel_grounding(gated_pipe.unet):
            rewired = block(h, encoder_hidden_states=text)
        torch.testing.assert_close(rewired, plain, atol=1e-6, rtol=1e-5)
        saved = (block.fuser.alpha_attn.item(), block.fuser.alpha_dense.item())
        block.fuser.alpha_attn.zero_(), block.fuser.alpha_dense.zero_()
        try:
            seq = block(h, encoder_hidden_states=text, cross_attention_kwargs={"gligen": {"objs": objs}})
            with parallel_grounding(gated_pipe.unet):
                par = block(h, encoder_hidden_states=text, cross_attention_kwargs={"gligen": {"objs": objs}})
        finally:
            block.fuser.alpha_attn.fill_(saved[0]), block.fuser.alpha_dense.fill_(saved[1])
    torch.testing.assert_close(par, seq, atol=1e-6, rtol=1e-5)


def test_hook_removal_restores_forward_bit_for_bit(gated_pipe):
    unet = gated_pipe.unet
    block = grounded_blocks(unet)[0]
    h, text, objs = _block_inputs(gated_pipe, block)
    n_params = sum(p.numel() for p in unet.parameters())
    keys = list(unet.state_dict())
    with torch.no_grad():
        before = block(h, encoder_hidden_states=text, cross_attention_kwargs={"gligen": {"objs": objs}})
        with parallel_grounding(unet):
            assert sum(p.numel() for p in unet.parameters()) == n_params and list(unet.state_dict()) == keys
        after = block(h, encoder_hidden_states=text, cross_attention_kwargs={"gligen": {"objs": objs}})
    assert torch.equal(before, after)
    with pytest.raises(RuntimeError):
        with parallel_grounding(unet):
            raise RuntimeError("boom")
    with torch.no_grad():
        assert torch.equal(
            block(h, encoder_hidden_states=text, cross_attention_kwargs={"gligen": {"objs": objs}}), before
        )


def _layout():
    return Layout(
        "a red circle and a blue square",
        (Region("red circle", box=(0.05, 0.1, 0.45, 0.6)), Region("blue square", box=(0.55, 0.4, 0.95, 0.9))),
        width=64,
        height=64,
    )


def test_gligen_in_the_loop_and_scheduled_sampling(gated_pipe):
    seen = []
    method = get_method("gligen", beta=0.5)
    original = method.unet_kwargs

    def spy(state, step, *, cfg):
        out = original(state, step, cfg=cfg)
        seen.append((step, cfg, "gligen" in out))
        if out and cfg:
            assert (
                out["gligen"]["masks"][:1].sum() == 0 and out["gligen"]["masks"][1:].sum() == 2
            )  # null grounding on uncond
        return out

    method.unet_kwargs = spy
    plain = gated_pipe(
        layout=_layout(), num_inference_steps=6, guidance_scale=3, progress=False, output_type="np"
    ).images
    grounded = gated_pipe(
        layout=_layout(), method=method, num_inference_steps=6, guidance_scale=3, progress=False, output_type="np"
    ).images
    assert [s for s, cfg, on in seen if on] == [0, 1, 2]
    assert not torch.allclose(torch.from_numpy(plain), torch.from_numpy(grounded))
    assert all(block.fuser.enabled for block in grounded_blocks(gated_pipe.unet))
    assert all(
        getattr(block, "_diffusers_hook", None) is None or block._diffusers_hook.get_hook(REGROUND_HOOK) is None
        for block in grounded_blocks(gated_pipe.unet)
    )


@pytest.mark.parametrize(
    "name", ["reground", "gligen+refocus", "reground+refocus", "gligen+pww+refocus", "gligen+layout-guidance"]
)
@pytest.mark.slow
def test_compositions_run(gated_pipe, name):
    out = gated_pipe(layout=_layout(), method=name, num_inference_steps=4, guidance_scale=3, progress=False)
    assert out.images[0].size == (64, 64)
    if "refocus" in name or "layout-guidance" in name:
        assert any(out.guidance)


@pytest.mark.slow
def test_pww_modulates_gligen_refocus(gated_pipe):
    # the relation benchmark's best combination: the modulation must reach the UNet beside GLIGEN's inputs and
    # refocus's gradient
    def run(name, **options):
        return torch.from_numpy(
            gated_pipe(
                layout=_layout(),
                method=name,
                method_options=options,
                num_inference_steps=4,
                guidance_scale=3,
                progress=False,
                output_type="np",
                seed=3,
            ).images
        )

    reference = run("gligen+refocus")
    torch.testing.assert_close(run("gligen+pww+refocus", pww={"weight": 0.0}), reference)
    assert not torch.allclose(run("gligen+pww+refocus"), reference, atol=1e-5)


def test_reground_differs_from_gligen(gated_pipe):
    a = gated_pipe(
        layout=_layout(),
        method="gligen",
        method_options={"beta": 1.0},
        num_inference_steps=4,
        progress=False,
        output_type="np",
    ).images
    b = gated_pipe(layout=_layout(), method="reground", num_inference_steps=4, progress=False, output_type="np").images
    assert not torch.allclose(torch.from_numpy(a), torch.from_numpy(b), atol=1e-4)


def test_errors(tiny_pipe):
    with pytest.raises(MethodOptionError, match="needs a GLIGEN UNet"):
        tiny_pipe(layout=_layout(), method="gligen", num_inference_steps=2, progress=False)
    with pytest.raises(LayoutError, match="maximum of 30"):
        Layout("x", tuple(Region("x", box=(0, 0, 0.5, 0.5)) for _ in range(31)))


@pytest.mark.slow
def test_grounding_token_loss(gated_pipe):

    method = get_method(
        "gligen+refocus", refocus={"grounding_weight": 3.0, "car": False, "sar": False, "early_stop": False}
    )
    assert {name: r.role for name, r in method.attention_requests().items()} == {"grounding": "grounding"}
    # the loss runs inside the method's activation (GLIGEN inputs present): use the pipeline end to end
    out = gated_pipe(layout=_layout(), method=method, num_inference_steps=10, guidance_scale=3, progress=False)
    guided = [g for g in out.guidance if g]
    assert len(guided) >= 3
    assert all(losses[0] > 1e-3 for g in guided[:2] for losses in g["losses"])  # fusers run in the first 30% of steps
    assert all(losses[0] == 0 for losses in guided[-1]["losses"])  # grounding off later: no fuser maps, no loss


def test_grounding_text_head_embeds_the_last_word(gated_pipe):
    layout = Layout(
        "a red circle and two blue squares",
        (Region("red circle", box=(0.1, 0.1, 0.4, 0.4)), Region("blue squares", box=(0.5, 0.5, 0.9, 0.9))),
        width=64,
        height=64,
    )
    ctx = GuidanceContext([layout], [], 1, (16, 16), torch.device("cpu"), torch.ones(1), torch.zeros(1))

    def pooled(words):
        ids = gated_pipe.tokenizer(words, padding=True, return_tensors="pt").input_ids
        return gated_pipe.text_encoder(ids).pooler_output

    with torch.no_grad():
        head = grounding_inputs(gated_pipe, ctx, "head")["positive_embeddings"][0, :2]
        phrase = grounding_inputs(gated_pipe, ctx, "phrase")["positive_embeddings"][0, :2]
        torch.testing.assert_close(head, pooled(["circle", "squares"]))
        torch.testing.assert_close(phrase, pooled(["red circle", "blue squares"]))


def test_gligen_keeps_no_call_state_on_the_instance(gated_pipe):
    method = get_method("gligen")
    before = dict(vars(method))
    gated_pipe(layout=_layout(), method=method, num_inference_steps=2, guidance_scale=3, progress=False)
    assert vars(method) == before


def test_position_code_rows_are_distinct_and_follow_the_token_order():
    from layoutguide.methods.gligen import position_code

    code = position_code(3, 5, 16)  # non-square grid: 3 rows, 5 columns, row-major tokens
    assert code.shape == (15, 16)
    assert torch.cdist(code, code).add(torch.eye(15) * 99).min() > 0.1  # every cell has its own code
    x_half, y_half = code[:, :8], code[:, 8:]
    torch.testing.assert_close(x_half[0], x_half[5])  # same column, next row: same x code
    torch.testing.assert_close(y_half[0], y_half[4])  # same row: same y code
    assert not torch.allclose(x_half[0], x_half[1])


def test_fuser_position_code_adds_the_code_to_visual_tokens_only_and_is_removed(gated_pipe):
    from layoutguide.methods.gligen import MAX_OBJECTS, fuser_position_code, position_code

    unet = gated_pipe.unet
    side = unet.config.sample_size
    block = grounded_blocks(unet)[0]
    seen = []
    handle = block.fuser.attn.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    h, _, objs = _block_inputs(gated_pipe, block)
    h = torch.randn(2, side * side, h.shape[-1])
    try:
        with torch.no_grad():
            plain = block.fuser(h, objs)
            with fuser_position_code(unet, (side, side)):
                coded = block.fuser(h, objs)
            again = block.fuser(h, objs)
    finally:
        handle.remove()
    expected = position_code(side, side, h.shape[-1])
    torch.testing.assert_close(seen[1][:, : side * side] - seen[0][:, : side * side], expected.expand(2, -1, -1))
    torch.testing.assert_close(seen[1][:, -MAX_OBJECTS:], seen[0][:, -MAX_OBJECTS:])  # grounding tokens untouched
    assert not torch.allclose(plain, coded)
    torch.testing.assert_close(plain, again, rtol=0, atol=0)  # hook gone: bit for bit


def test_gligen_position_code_option_changes_grounded_samples(gated_pipe):
    def run(**o):
        return gated_pipe(
            layout=_layout(),
            method="gligen",
            method_options={"beta": 1.0, **o},
            num_inference_steps=3,
            progress=False,
            output_type="np",
        ).images

    plain, coded = run(), run(position_code=True)
    assert not torch.allclose(torch.from_numpy(plain), torch.from_numpy(coded), atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(run()), torch.from_numpy(plain))  # nothing left installed
