"""SDXL backbone (issue 20): conditioning equal to diffusers' SDXL pipeline, every method on a tiny random SDXL
pipeline, save/reload, loading rules, the two tokenizers, GLIGEN refused, the CLI on an SDXL folder."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from layoutguide.backbones.sdxl import LayoutXLPipeline, time_ids
from layoutguide.cli import app
from layoutguide.layout import Layout, Region
from layoutguide.methods import MethodOptionError, runnable_methods
from layoutguide.pipeline import LayoutPipeline
from layoutguide.testing import tiny_sdxl_components, tiny_sdxl_pipeline

runner = CliRunner()
LAYOUT = Layout(
    prompt="a red circle and a blue square",
    regions=[
        Region(phrase="red circle", box=(0.05, 0.05, 0.5, 0.55)),
        Region(phrase="blue square", box=(0.5, 0.45, 0.95, 0.95)),
    ],
)
# one guided iteration per step where the method's options allow it (fast on a tiny pipeline)
FAST = {
    "attend-excite": {"max_refinement": 1},
    "layout-guidance": {"max_iterations": 2},
}


@pytest.fixture(scope="module")
def xl() -> LayoutXLPipeline:
    pipe = tiny_sdxl_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def xl_folder(tmp_path_factory, xl):
    folder = tmp_path_factory.mktemp("sdxl") / "model"
    xl.save_pretrained(folder)
    return folder


def _latents(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def plain(xl) -> torch.Tensor:
    return xl(layout=LAYOUT, num_inference_steps=2, latents=_latents(), output_type="latent").images


@pytest.mark.parametrize("negative", [None, "a green triangle"])
def test_plain_sampling_equals_diffusers_sdxl(xl, negative):
    """Same components, latents and scheduler: our loop with its SDXL conditioning hook reproduces diffusers'
    StableDiffusionXLPipeline (penultimate states of both encoders, pooled text, time ids, zero negatives)."""
    from diffusers import StableDiffusionXLPipeline

    reference = StableDiffusionXLPipeline(**tiny_sdxl_components(), add_watermarker=False)
    reference.set_progress_bar_config(disable=True)
    x = _latents()
    ours = xl(
        LAYOUT.prompt, negative_prompt=negative, num_inference_steps=3, latents=x, output_type="latent", progress=False
    ).images
    theirs = reference(
        LAYOUT.prompt,
        negative_prompt=negative,
        num_inference_steps=3,
        guidance_scale=5.0,
        latents=x.clone(),
        output_type="latent",
    ).images
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_a_non_empty_negative_prompt_changes_the_image(xl):
    """Guards the test above against a negative prompt that never reaches the UNet."""
    runs = [
        xl(LAYOUT.prompt, negative_prompt=n, num_inference_steps=2, latents=_latents(), output_type="latent").images
        for n in (None, "a green triangle")
    ]
    assert not torch.allclose(runs[0], runs[1])


def test_conditioning_carries_pooled_text_and_time_ids(xl):
    embeddings, added = xl.encode_conditioning(["a red circle", ""], (96, 128))
    assert embeddings.shape == (2, 77, 16 + 32)  # both encoders' widths, concatenated
    assert added is not None and added["text_embeds"].shape == (2, 16)
    assert added["time_ids"].tolist() == [[96, 128, 0, 0, 96, 128]] * 2
    assert embeddings[1].abs().sum() == 0 and added["text_embeds"][1].abs().sum() == 0  # empty: zeros
    assert embeddings[0].abs().sum() > 0
    assert time_ids((1, 2), (3, 4), (5, 6)).tolist() == [[1, 2, 3, 4, 5, 6]]


def test_sdxl_defaults(xl):
    from layoutguide.bench.resume import sampling_defaults

    assert xl.default_guidance_scale == 5.0 and sampling_defaults(xl)["guidance_scale"] == 5.0
    seen = []
    xl(LAYOUT.prompt, num_inference_steps=1, output_type="latent", callback=seen.append, progress=False)
    assert seen[0]["latents"].shape[-1] == xl.unet.config.sample_size  # native size: sample_size x vae factor
    assert type(xl.scheduler).__name__ == "EulerDiscreteScheduler"


METHODS = [
    "refocus",
    "boxdiff",
    "layout-guidance",
    "attend-excite",
    "zestguide",
    "pww",
    "densediffusion",
    "zestguide+pww",
    "pww+refocus",
    "densediffusion+boxdiff",
]


@pytest.mark.parametrize("name", METHODS)
def test_every_method_runs_and_acts_on_sdxl(xl, plain, name):
    members = name.split("+")
    options = {m: FAST[m] for m in members if m in FAST}
    out = xl(
        layout=LAYOUT,
        method=name,
        method_options=(options if "+" in name else options.get(name)) or None,
        num_inference_steps=2,
        latents=_latents(),
        output_type="latent",
    )
    assert isinstance(out.images, torch.Tensor) and torch.isfinite(out.images).all()
    assert not torch.allclose(out.images, plain), f"{name} left the SDXL sample unchanged"
    gradient = any(m not in ("pww", "densediffusion") for m in members)
    iterations = sum(len(g.get("losses", [])) for g in out.guidance or [])
    assert (iterations > 0) == gradient


@pytest.mark.parametrize("name", ["gligen", "reground", "gligen+refocus", "reground+refocus"])
def test_gligen_and_reground_are_refused_on_sdxl(xl, name):
    with pytest.raises(MethodOptionError, match="no SDXL|none for SDXL") as err:
        xl(layout=LAYOUT, method=name, num_inference_steps=1, output_type="latent")
    assert "\n" not in str(err.value)


def test_runnable_methods_on_an_sdxl_unet(xl):
    names = runnable_methods(xl.unet)
    assert names[0] == "none" and {"refocus", "zestguide+pww", "densediffusion"} <= set(names)
    assert not any("gligen" in n or "reground" in n for n in names)


def test_save_and_reload_round_trip(xl, plain, xl_folder):
    from layoutguide.loading import load_pipeline

    index = json.loads((xl_folder / "model_index.json").read_text())
    assert index["text_encoder_2"][1] == "CLIPTextModelWithProjection" and index["force_zeros_for_empty_prompt"]
    assert not list(xl_folder.glob("*/*.bin")), "weights must be safetensors"
    assert isinstance(LayoutPipeline.from_pretrained(xl_folder), LayoutXLPipeline)
    reloaded = load_pipeline(xl_folder, device="cpu")
    assert isinstance(reloaded, LayoutXLPipeline) and reloaded.tokenizer_2.pad_token == "!"
    for name in ("unet", "text_encoder", "text_encoder_2", "vae"):
        ours, theirs = getattr(xl, name).state_dict(), getattr(reloaded, name).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), name
    again = reloaded(layout=LAYOUT, num_inference_steps=2, latents=_latents(), output_type="latent").images
    torch.testing.assert_close(again, plain, rtol=0, atol=0)


def test_from_pipe_of_a_diffusers_sdxl_pipeline():
    from diffusers import StableDiffusionXLPipeline

    source = StableDiffusionXLPipeline(**tiny_sdxl_components(), add_watermarker=False)
    pipe = LayoutPipeline.from_pipe(source)
    assert isinstance(pipe, LayoutXLPipeline) and pipe.text_encoder_2 is source.text_encoder_2
    assert pipe(layout=LAYOUT, method="pww", num_inference_steps=1, output_type="latent").images.shape[1] == 4


def _edit_index(folder, **changes):
    index = json.loads((folder / "model_index.json").read_text())
    index.update(changes)
    (folder / "model_index.json").write_text(json.dumps(index))


def test_refiner_and_incomplete_sdxl_folders_are_refused(tmp_path, xl_folder):
    import shutil

    from layoutguide.loading import UnsupportedModelError, load_pipeline

    refiner = tmp_path / "refiner"
    shutil.copytree(xl_folder, refiner)
    _edit_index(refiner, text_encoder=[None, None], tokenizer=[None, None], requires_aesthetics_score=True)
    with pytest.raises(UnsupportedModelError, match="refiner"):
        load_pipeline(refiner, device="cpu")
    half = tmp_path / "half"
    shutil.copytree(xl_folder, half)
    _edit_index(half, tokenizer_2=[None, None])
    with pytest.raises(UnsupportedModelError, match="tokenizer_2"):
        load_pipeline(half, device="cpu")
    with pytest.raises(ValueError, match="refiner"):  # from_pipe / direct construction of a refiner
        LayoutXLPipeline(**{**tiny_sdxl_components(), "text_encoder": None})


def test_a_unet_without_text_time_conditioning_is_refused():
    parts = tiny_sdxl_components()
    parts["unet"].register_to_config(projection_class_embeddings_input_dim=99)
    with pytest.raises(ValueError, match="projection_class_embeddings_input_dim"):
        LayoutXLPipeline(**parts)


@pytest.mark.slow
def test_cli_generate_on_an_sdxl_folder(tmp_path, xl_folder):
    layout = tmp_path / "layout.json"
    layout.write_text(LAYOUT.to_json())
    out = tmp_path / "img.png"
    args = ["generate", "--layout", str(layout), "--model", str(xl_folder), "--out", str(out), "--steps", "2"]
    args += ["-n", "2", "--negative-prompt", "blurry", "--guidance-interval", "0,900", "--overlay"]
    args += ["--method", "refocus", "--set", "refocus.loss_scale=2", "--save-attention", str(tmp_path / "att")]
    args += ["--height", "96", "--width", "128", "--device", "cpu", "--dtype", "fp32"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    from PIL import Image

    for j in (0, 1):
        assert Image.open(tmp_path / f"img_{j}.png").size == (128, 96)
        assert (tmp_path / f"img_{j}_overlay.png").exists()
    assert len(list((tmp_path / "att").glob("*.png"))) == 4


def test_cli_refuses_gligen_on_an_sdxl_folder_in_one_line(tmp_path, xl_folder):
    layout = tmp_path / "layout.json"
    layout.write_text(LAYOUT.to_json())
    args = ["generate", "--layout", str(layout), "--model", str(xl_folder), "--method", "gligen", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "SDXL" in errors[0], result.output
