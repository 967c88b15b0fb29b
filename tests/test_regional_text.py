"""Regional attention with separately encoded region prompts (``region_text="separate"``, the original's regional
prompts) on tiny random SD3 and FLUX pipelines: what the masks allow, that the region prompts reach nothing but their
regions, that padding between samples with different phrase counts is invisible, and that they leave with the masks."""

from __future__ import annotations

import pytest
import torch

from layoutguide.layout import Layout
from layoutguide.methods.regional import in_module_order, separate_text_pairs
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
ONE = Layout.from_dict(
    {"prompt": "a blue square", "regions": [{"phrase": "blue square", "box": [0.2, 0.2, 0.8, 0.8]}]}
)
SEPARATE = {"region_text": "separate"}


@pytest.fixture(scope="module", params=["sd3", "flux"])
def pipe(request):
    return tiny_sd3_pipeline() if request.param == "sd3" else tiny_flux_pipeline()


def run(pipe, method="none", **kwargs):
    args = dict(layout=LAYOUT, method=method, num_inference_steps=3, seed=1, output_type="latent", progress=False)
    return pipe(**{**args, **kwargs}).images


def test_separate_text_pairs_mask_what_the_layout_says():
    # 4 cells: cell 0 in region 0, cells 1 and 3 in region 1 and region 2 (one phrase for both), cell 2 background;
    # text of length 2 per prompt: the prompt [0, 2), phrase 0 [2, 4), phrase 1 [4, 6), padding [6, 8)
    masks = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.bool)
    masked, base = separate_text_pairs(masks, [[0], [1, 2]], length=2, n_text=8, free_images=False)
    cell = [8 + i for i in range(4)]
    prompt, phrase0, phrase1, pad = [0, 1], [2, 3], [4, 5], [6, 7]
    # under the masks a cell reads its phrase's prompt and its region's cells, never the prompt's text
    assert masked[cell[0]][phrase0].all() and not masked[cell[0]][phrase1].any() and not masked[cell[0]][prompt].any()
    assert masked[cell[1]][phrase1].all() and masked[cell[1], cell[3]] and not masked[cell[1], cell[0]]
    assert masked[cell[2], cell[2]] and not masked[cell[2]][:8].any()  # background: background cells only
    # a phrase's prompt reads itself and its cells; the prompt's text reads itself and every cell (the base pass)
    assert masked[phrase1[0]][[cell[1], cell[3]]].all() and not masked[phrase1[0]][[cell[0], cell[2]]].any()
    assert not masked[phrase0[0]][phrase1].any() and masked[prompt[0]][cell].all() and masked[prompt[0]][prompt].all()
    # base attention: cells and the prompt's text read each other; no cell reads a region prompt
    assert base[cell[0]][prompt].all() and base[cell[0]][cell].all() and not base[8:, 2:8].any()
    assert torch.equal(base[2:6], masked[2:6])  # a region prompt's rows are the same in both: blending leaves them
    # padding reads only itself and nobody reads it
    for pairs in (masked, base):
        assert not pairs[:, pad][[*range(6), *cell]].any() and pairs[6, 6] and pairs.any(1).all()
    # background_text="prompt": the background cell reads the prompt's text too, and only that changes
    opened, opened_base = separate_text_pairs(masks, [[0], [1, 2]], 2, 8, False, background_reads_prompt=True)
    assert opened[cell[2]][prompt].all() and (opened != masked).nonzero().tolist() == [[cell[2], 0], [cell[2], 1]]
    assert torch.equal(opened_base, base)
    sd3 = in_module_order(masked, 8, text_first=False)  # [image, text]
    assert torch.equal(sd3[:4, :4], masked[8:, 8:]) and torch.equal(sd3[:4, 4:], masked[8:, :8])


def test_at_full_base_the_region_prompts_change_nothing(pipe):
    """``base_ratio=1``: only the base attention, where the region prompts are hidden, so the image is plain
    sampling's (on SD3 with CFG: the unconditional samples' padding is hidden from them too)."""
    plain = run(pipe)
    assert torch.allclose(run(pipe, "regional", method_options={**SEPARATE, "base_ratio": 1.0}), plain, atol=1e-5)
    separate = run(pipe, "regional", method_options=SEPARATE)
    assert not torch.allclose(separate, plain, atol=1e-3)
    assert not torch.allclose(separate, run(pipe, "regional"), atol=1e-3)  # not the in-place phrases' masks


def test_region_prompts_leave_with_the_masks(pipe, monkeypatch):
    """No masked step: the region prompts are never in the sequence, the image is plain sampling's. With two masked
    steps, the forwards take the prompt and one prompt per phrase for those, then the prompt alone."""
    plain = run(pipe)
    assert torch.allclose(run(pipe, "regional", method_options={**SEPARATE, "mask_inject_steps": 0}), plain)
    lengths, denoise = [], pipe.denoise

    def spy(x, t, embeddings, *args, **kwargs):
        lengths.append(embeddings.shape[1])
        return denoise(x, t, embeddings, *args, **kwargs)

    monkeypatch.setattr(pipe, "denoise", spy)
    run(pipe, "regional", method_options={**SEPARATE, "mask_inject_steps": 2})
    prompt = pipe.encode_prompt(["x"]).shape[1]
    assert lengths == [3 * prompt, 3 * prompt, prompt]


def test_padding_between_samples_is_invisible(pipe):
    """A batch of a two-phrase and a one-phrase layout: the second sample's text is padded to the first's; each
    image is the one it has alone (seeds are per sample)."""
    batch = run(pipe, "regional", layout=[LAYOUT, ONE], seed=[1, 2], method_options=SEPARATE)
    alone = run(pipe, "regional", layout=ONE, seed=2, method_options=SEPARATE)
    assert torch.allclose(batch[1], alone[0], atol=1e-5)
    assert torch.allclose(batch[0], run(pipe, "regional", method_options=SEPARATE)[0], atol=1e-5)


@pytest.mark.slow
def test_regional_refocus_with_region_prompts_runs(pipe):
    rr = run(pipe, "regional+refocus", method_options={"regional.region_text": "separate"})
    assert torch.isfinite(rr).all()
    assert not torch.allclose(rr, run(pipe, "regional", method_options=SEPARATE), atol=1e-3)
