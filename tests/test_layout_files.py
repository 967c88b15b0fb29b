"""Layout files in every format, told apart by their content (layoutguide.layout_files): each one saved and loaded
back, the zipped mask PNG with its colours, a text format without a prompt refused with the fix."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from layoutguide import layout_files
from layoutguide.layout import Layout, LayoutError, Region

LAYOUT = Layout(
    "a red circle and a blue square",
    (Region("red circle", box=(0.1, 0.1, 0.45, 0.5)), Region("blue square", box=(0.55, 0.5, 0.9, 0.9))),
    width=64,
    height=64,
)


@pytest.mark.parametrize("fmt", sorted(layout_files.FORMATS))
def test_every_format_saves_and_loads_back(fmt, tmp_path):
    path = layout_files.save_layout(LAYOUT, fmt, tmp_path)
    assert path.parent == tmp_path and path.name == layout_files.FORMATS[fmt][0]
    loaded = layout_files.load_layout(path, LAYOUT.prompt, width=64, height=64)
    assert loaded.phrases == LAYOUT.phrases
    # text formats use their own pixel canvas (64 px for LayoutGPT): boxes agree to one pixel of it
    assert np.allclose(loaded.boxes, LAYOUT.boxes, atol=1 / 64 + 1e-6)


def test_mask_bundle_holds_a_png_and_its_colours(tmp_path):
    path = layout_files.save_layout(LAYOUT, "mask", tmp_path)
    with zipfile.ZipFile(path) as z:
        info = json.loads(z.read("layout_mask.json"))
    assert sorted(info["colours"].values()) == sorted(LAYOUT.phrases) and info["prompt"] == LAYOUT.prompt


def test_text_format_without_prompt_is_refused_with_the_fix(tmp_path):
    path = layout_files.save_layout(LAYOUT, "refocus", tmp_path)
    with pytest.raises(LayoutError, match="type the prompt first"):
        layout_files.load_layout(path, "")


def test_painted_masks_survive_the_mask_png_round_trip():
    disc = np.hypot(*np.mgrid[-32:32, -32:32]) < 12  # a painted region no box describes
    ring = ~disc & (np.hypot(*np.mgrid[-32:32, -32:32]) < 20)
    layout = Layout(LAYOUT.prompt, (Region("red circle", mask=disc), Region("blue square", mask=ring)), 64, 64)
    png, colours = layout_files.mask_png(layout)
    back = Layout.from_mask_png(np.asarray(Image.open(io.BytesIO(png))), colours, layout.prompt)
    assert back.phrases == layout.phrases
    for mine, theirs in zip(layout.rasterize(64, 64), back.rasterize(64, 64)):
        assert np.array_equal(mine > 0, theirs > 0)
