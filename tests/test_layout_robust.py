"""Hostile layout input (issue #17, defects 11, 12, 14, 15): each case is a clear LayoutError or a valid result."""

import os
import stat
import tracemalloc

import numpy as np
import pytest

from layoutguide.errors import LayoutguideError
from layoutguide.layout import Layout, LayoutError, Region, atomic_write_bytes, atomic_write_text


@pytest.mark.parametrize("box", ["0011", [True, False, True, True], [0, 0, True, 1], b"\x00\x00\x01\x01", "0.1"])
def test_text_and_boolean_boxes_are_refused(box):
    with pytest.raises(LayoutError, match="field 'box' must be 4 numbers"):
        Layout.from_dict({"prompt": "a red circle", "regions": [{"phrase": "red circle", "box": box}]})


def test_numeric_boxes_of_any_number_type_still_load():
    layout = Layout("a red circle", (Region("red circle", box=np.array([0.1, 0.2, 0.5, 0.6], dtype=np.float32)),))
    assert layout.boxes[0] == pytest.approx((0.1, 0.2, 0.5, 0.6))
    assert Layout("a red circle", (Region("red circle", box=[0, 0, 1, 1]),)).boxes[0] == (0, 0, 1, 1)


def test_a_layout_file_whose_name_starts_with_a_brace_is_read_as_a_file(tmp_path):
    layout = Layout("a red circle", (Region("red circle", box=(0.1, 0.1, 0.5, 0.5)),))
    path = tmp_path / "{odd name}.json"
    layout.to_json(path)
    assert Layout.from_json(path) == layout  # a Path is always a file
    os.chdir(tmp_path)
    assert Layout.from_json("{odd name}.json") == layout  # an existing file wins over JSON text
    assert Layout.from_json(layout.to_json()) == layout  # JSON text still works


def test_json_text_too_long_for_a_file_name_is_parsed_as_json():
    text = '{"prompt": "' + "a " * 5000 + 'x", "regions": []}'
    assert Layout.from_json(text).regions == ()


@pytest.mark.parametrize("key", ["(1e999, 0, 0)", "(-1e999, 0, 0)", "(nan, 0, 0)", "(300, 0, 0)", "(1, 2)", "x"])
def test_bad_mask_colour_keys_are_one_clear_error(key):
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(LayoutError, match="colour key"):
        Layout.from_mask_png(rgb, {key: "red circle"}, "a red circle")


def test_soft_box_masks_are_rasterised_at_the_grid_not_the_canvas():
    """Defect 12: three boxes on a 16384 px canvas under ZestGuide's soft masks used to allocate canvas-size arrays
    (2.9 GB peak for a 64 px image)."""
    layout = Layout(
        "a red circle, a blue square and a green triangle",
        (
            Region("red circle", box=(0.1, 0.1, 0.4, 0.4)),
            Region("blue square", box=(0.5, 0.1, 0.9, 0.5)),
            Region("green triangle", box=(0.2, 0.6, 0.7, 0.95)),
        ),
        width=16384,
        height=16384,
    )
    tracemalloc.start()
    masks = layout.rasterize(8, 8, soft=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000, f"peak {peak / 1e6:.1f} MB"  # one canvas-size bool mask alone is 268 MB
    assert masks.shape == (3, 8, 8)
    assert masks[0, 1, 1] == 1.0 and masks[0, 5, 5] == 0.0


@pytest.mark.parametrize(("canvas", "grid"), [((64, 64), (16, 16)), ((100, 77), (16, 16)), ((480, 640), (7, 13))])
def test_soft_box_masks_equal_the_box_filter_of_the_canvas_mask(canvas, grid):
    """Bit-identical to the previous canvas-size computation (PIL's BOX resize of the box's pixel mask), so the
    published ZestGuide figures do not move."""
    from PIL import Image

    height, width = canvas
    rng = np.random.default_rng(0)
    for _ in range(20):
        x0, x1 = np.sort(rng.uniform(0, 1, 2))
        y0, y1 = np.sort(rng.uniform(0, 1, 2))
        if x1 - x0 < 0.02 or y1 - y0 < 0.02:
            continue
        layout = Layout("a b", (Region("a", box=(x0, y0, x1, y1)),), width=width, height=height)
        hard = layout.rasterize(height, width)[0]
        expected = np.asarray(Image.fromarray(hard).resize(grid[::-1], Image.BOX), dtype=np.float32).clip(0, 1)
        np.testing.assert_array_equal(layout.rasterize(*grid, soft=True)[0], expected)


def test_atomic_writes_honour_the_umask(tmp_path):
    """Defect 15: mkstemp creates 0600 files; outputs must get the mode a plain open() gives."""
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        atomic_write_bytes(tmp_path / "b.png", b"x")
        os.umask(0o027)
        atomic_write_text(tmp_path / "c.md", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.png").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "c.md").stat().st_mode) == 0o640


def test_layout_errors_are_layoutguide_errors():
    with pytest.raises(LayoutguideError):
        Layout.from_dict({"prompt": "x", "regions": [{"phrase": "x", "box": "0011"}]})
