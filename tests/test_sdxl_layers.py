"""Each method's attention layers on SDXL's block layout, as levels of the UNet (grid factor relative to the latent).

The published choices on SD 1.x at 512 px (64x64 latent) are the 16x16 layers (factor 4) and, for ZestGuide, also
the 32x32 up layers (factor 2). On SDXL the same levels are the 32x32 and 64x64 layers at 1024 px and the 16x16 and
32x32 at 512 px; SDXL's mid block sits at factor 4 too, so methods that read the mid block on SD (where it is 8x8
and dropped by the resolution) read it on SDXL. docs/methods.md ("SDXL") gives the reasons.
"""

from __future__ import annotations

import pytest

from layoutguide.attention import attention_layers, select_layers
from layoutguide.methods import get_method
from layoutguide.testing import tiny_sdxl_components

# method -> {(role, place, factor)} it should read on SDXL
EXPECTED = {
    "refocus": {(role, place, 4) for role in ("text", "image") for place in ("down", "up")},
    "boxdiff": {("text", place, 4) for place in ("down", "mid", "up")},
    "attend-excite": {("text", place, 4) for place in ("down", "mid", "up")},
    "layout-guidance": {("text", "up", 4), ("text", "mid", 4)},
    "zestguide": {("text", "down", 4), ("text", "up", 4), ("text", "up", 2)},
}


@pytest.fixture(scope="module")
def unet():
    return tiny_sdxl_components()["unet"]


def _read(unet, name: str, latent: int) -> set[tuple[str, str, int]]:
    method = get_method(name)
    return {
        (layer.role, layer.place, layer.factor)
        for request in method.requests()
        for layer in select_layers(unet, request, (latent, latent))
    }


def test_sdxl_layout_has_attention_at_two_levels_only(unet):
    factors = {(layer.place, layer.factor) for layer in attention_layers(unet)}
    assert factors == {("down", 2), ("down", 4), ("mid", 4), ("up", 4), ("up", 2)}  # none in the first down block


@pytest.mark.parametrize("name", ["refocus", "boxdiff", "attend-excite", "layout-guidance", "zestguide"])
def test_layers_at_512_px(unet, name):
    assert _read(unet, name, 64) == EXPECTED[name]


@pytest.mark.parametrize(
    "name",
    [
        "refocus",
        "boxdiff",
        "attend-excite",
        "layout-guidance",
        "zestguide",
    ],
)
def test_layers_at_1024_px(unet, name):
    assert _read(unet, name, 128) == EXPECTED[name]
