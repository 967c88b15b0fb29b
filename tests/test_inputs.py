"""Pipeline call arguments (issue #17, defects 1, 2, 11, 13): refused with an InputError naming the argument before
anything runs; 0 is not "the default"; long prompts are cut with a warning naming the dropped words."""

import math

import pytest

from layoutguide.errors import InputError, LayoutguideError
from layoutguide.inputs import PromptTruncatedWarning, default_image_size
from layoutguide.layout import Layout, Region


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"guidance_scale": float("inf")}, "guidance_scale"),
        ({"guidance_scale": -math.inf}, "guidance_scale"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_inference_steps": -3}, "num_inference_steps"),
        ({"num_inference_steps": 2.5}, "num_inference_steps"),
        ({"num_inference_steps": 10**9}, "num_inference_steps"),
        ({"height": 0}, "height"),
        ({"height": -64}, "height"),
        ({"width": 63}, "width"),
        ({"width": True}, "width"),
        ({"num_images_per_prompt": True}, "num_images_per_prompt"),
        ({"num_images_per_prompt": 0}, "num_images_per_prompt"),
        ({"seed": 1.5}, "seed"),
        ({"attention_resolution": 0}, "attention_resolution"),
        ({"method": "refocus", "method_options": {"inside_threshold": float("nan")}}, "inside_threshold"),
        ({"method": "refocus", "method_options": {"inside_threshold": float("inf")}}, "inside_threshold"),
        ({"method": "refocus", "method_options": {"inside_threshold": "-inf"}}, "inside_threshold"),
    ],
)
def test_bad_call_arguments_are_one_clear_error(tiny_pipe, two_region_layout, kwargs, field):
    with pytest.raises(InputError, match=field) as info:
        tiny_pipe(layout=two_region_layout, progress=False, **kwargs)
    assert isinstance(info.value, LayoutguideError) and "\n" not in str(info.value)


def test_prompts_beyond_the_window_warn_naming_the_cut_words(tiny_pipe):
    prompt = "a red circle " + "and a blue square " * 40 + "and a lonely green triangle"
    with pytest.warns(PromptTruncatedWarning, match="lonely green triangle"):
        tiny_pipe(prompt=prompt, num_inference_steps=1, output_type="latent", progress=False)


def test_short_prompts_do_not_warn(tiny_pipe, recwarn):
    tiny_pipe(prompt="a red circle", num_inference_steps=1, output_type="latent", progress=False)
    assert not [w for w in recwarn if issubclass(w.category, PromptTruncatedWarning)]


def test_none_still_means_the_default_size(tiny_pipe):
    latents = tiny_pipe(prompt="a red circle", num_inference_steps=1, output_type="latent", progress=False).images
    assert tuple(latents.shape[-2:]) == (tiny_pipe.unet.config.sample_size,) * 2


def test_default_image_size_follows_the_layout_aspect_within_the_native_pixels():
    wide = Layout("a cat", (Region("cat", box=(0.1, 0.1, 0.5, 0.5)),), width=1024, height=512)
    height, width = default_image_size(wide, 512, 8)
    assert (height % 8, width % 8) == (0, 0)
    assert height * width <= 512 * 512
    assert abs(width / height - 2.0) < 0.05
    assert default_image_size(None, 64, 8) == (64, 64)
    assert default_image_size(Layout("a cat", width=300, height=300), 768, 8) == (768, 768)
    tall = Layout("a cat", width=100, height=10000)
    assert default_image_size(tall, 64, 8)[1] == 8  # never below one VAE cell
