"""Tests for ``layoutguide.layout``: the pure-data Layout/Region model, validation and format conversions.

Format conventions follow methods.md section 8. Pixel formats round corners to whole pixels (LMD and AR on 512,
LayoutGPT on 64) or to 1e-3 px (COCO), so round trips compare boxes within that rounding.
"""

from __future__ import annotations

import ast
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from layoutguide import layout as layout_module
from layoutguide.layout import (
    FORMAT_VERSION,
    MAX_REGIONS,
    Layout,
    LayoutError,
    Region,
    atomic_write_bytes,
    atomic_write_text,
)

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_boxes_close(got, expected, tol):
    assert len(got) == len(expected), (got, expected)
    for g, e in zip(got, expected):
        assert np.max(np.abs(np.asarray(g, dtype=float) - np.asarray(e, dtype=float))) <= tol, (g, e, tol)


def one(phrase="a cat", box=(0.1, 0.2, 0.5, 0.6), **kw):
    return Layout(prompt=kw.pop("prompt", f"{phrase} on a sofa"), regions=(Region(phrase, box=box),), **kw)


def pixel_tol(box, canvas_w, canvas_h, unit=1.0):
    """Max corner error of a rounded export: half a unit, or 1.5 units when the min-extent rule pushes a corner."""
    w = (box[2] - box[0]) * canvas_w
    h = (box[3] - box[1]) * canvas_h
    per_unit = 0.5 if min(w, h) >= 2 * unit else 1.5
    return per_unit * unit / min(canvas_w, canvas_h) + 1e-9


# ============================================================================================ strategies
SAFE_ALPHABET = st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters=" -'", max_codepoint=0x24F)
safe_text = st.text(SAFE_ALPHABET, min_size=1, max_size=20).map(str.strip).filter(bool)
unit_floats = st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False)


@st.composite
def norm_boxes(draw, min_extent=0.0):
    x0, x1 = sorted(draw(st.tuples(unit_floats, unit_floats).filter(lambda t: abs(t[0] - t[1]) > min_extent)))
    y0, y1 = sorted(draw(st.tuples(unit_floats, unit_floats).filter(lambda t: abs(t[0] - t[1]) > min_extent)))
    return (x0, y0, x1, y1)


@st.composite
def masks(draw, height, width):
    m = draw(hnp.arrays(np.bool_, (height, width)))
    r, c = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
    m[r, c] = True  # never empty
    return m


@st.composite
def layouts(draw, with_masks=True, max_regions=6):
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    regions = []
    for _ in range(draw(st.integers(0, max_regions))):
        phrase = draw(safe_text)
        kind = draw(st.sampled_from(["box", "mask", "both"] if with_masks else ["box"]))
        box = draw(norm_boxes()) if kind in ("box", "both") else None
        mask = draw(masks(height, width)) if kind in ("mask", "both") else None
        regions.append(Region(phrase, box=box, mask=mask))
    return Layout(
        prompt=draw(safe_text),
        regions=tuple(regions),
        width=width,
        height=height,
        background=draw(st.none() | safe_text),
        negative_prompt=draw(st.none() | safe_text),
    )


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_like = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=6), c, max_size=5),
    max_leaves=20,
)
garbage = json_like | st.dictionaries(st.integers() | st.text(max_size=4), json_like, max_size=4)


# ============================================================================================ module hygiene
def test_module_does_not_import_torch():
    tree = ast.parse(Path(layout_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "torch" not in imported
    assert imported <= {
        "__future__",
        "ast",
        "dataclasses",
        "json",
        "math",
        "os",
        "re",
        "tempfile",
        "pathlib",
        "typing",
        "numpy",
        "PIL",
        "collections",
        "errors",  # layoutguide.errors: the error base, no torch
    }


def test_layout_error_is_value_error():
    assert issubclass(LayoutError, ValueError)


# ============================================================================================ model basics
def test_basic_properties_and_equality():
    lay = Layout("a cat and a dog", (Region("a cat", box=[0, 0, 0.5, 0.5]), Region("a dog", box=(0.5, 0.5, 1, 1))))
    assert lay.phrases == ["a cat", "a dog"]
    assert lay.boxes == [(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)]
    assert isinstance(lay.regions, tuple) and isinstance(lay.regions[0].box, tuple)  # lists normalised
    assert all(isinstance(v, float) for v in lay.regions[0].box)
    assert lay == Layout(
        "a cat and a dog", [Region("a cat", box=(0, 0, 0.5, 0.5)), Region("a dog", box=(0.5, 0.5, 1, 1))]
    )
    assert lay != lay.replace(prompt="a cat and a big dog")
    assert lay != Layout("a cat and a dog", (Region("a cat", box=(0, 0, 0.5, 0.5)),))
    assert Region("a", box=(0, 0, 1, 1)) != Region("a", box=(0, 0, 1, 0.9))
    assert Region("a", box=(0, 0, 1, 1)) != Region("b", box=(0, 0, 1, 1))


def test_replace_revalidates():
    with pytest.raises(LayoutError, match="'prompt'"):
        one().replace(prompt="   ")
    with pytest.raises(LayoutError, match="'width'"):
        one().replace(width=0)


def test_mask_only_region_bbox_is_mask_extent():
    mask = np.zeros((4, 8), bool)
    mask[1:3, 3:6] = True
    lay = Layout("a cat", (Region("a cat", mask=mask),), width=8, height=4)
    assert lay.boxes == [(3 / 8, 1 / 4, 6 / 8, 3 / 4)]


def test_binary_non_bool_mask_is_converted_to_bool():
    mask = np.zeros((4, 4), np.float32)
    mask[0, 0] = 1.0
    lay = Layout("a cat", (Region("a cat", mask=mask),), width=4, height=4)
    assert lay.regions[0].mask.dtype == bool and lay.regions[0].mask.sum() == 1


# ============================================================================================ validation
def _region_error(box=None, mask=None, *, width=512, height=512, phrase="a dog"):
    regions = (Region("a cat", box=(0, 0, 0.5, 0.5)), Region(phrase, box=box, mask=mask))
    with pytest.raises(LayoutError) as info:
        Layout("a cat and a dog", regions, width=width, height=height)
    return str(info.value)


@pytest.mark.parametrize(
    "box, words",
    [
        ((0.1, 0.1, 1.2, 0.5), "outside [0, 1]"),
        ((-0.1, 0.1, 0.5, 0.5), "outside [0, 1]"),
        ((0.5, 0.1, 0.2, 0.5), "inverted or has zero area"),
        ((0.1, 0.6, 0.5, 0.2), "inverted or has zero area"),
        ((0.3, 0.1, 0.3, 0.5), "inverted or has zero area"),
        ((0.1, 0.4, 0.5, 0.4), "inverted or has zero area"),
        ((0.1, float("nan"), 0.5, 0.5), "NaN or infinity"),
        ((0.1, 0.1, float("inf"), 0.5), "NaN or infinity"),
        ((0.1, 0.1, 0.5), "4 numbers"),
        ((0.1, 0.1, 0.5, 0.5, 0.6), "4 numbers"),
        ("abcd", "4 numbers"),
        (7, "4 numbers"),
        ((0.1, None, 0.5, 0.5), "4 numbers"),
        ((10**400, 0, 1, 1), "4 numbers"),
    ],
)
def test_bad_box_names_region_and_field(box, words):
    msg = _region_error(box=box)
    assert "region 1 ('a dog')" in msg and "field 'box'" in msg and words in msg, msg


@pytest.mark.parametrize("phrase", ["", "   ", None, 3])
def test_empty_or_non_text_phrase(phrase):
    msg = _region_error(box=(0.1, 0.1, 0.2, 0.2), phrase=phrase)
    assert "region 1" in msg and "field 'phrase'" in msg, msg


@pytest.mark.parametrize("prompt", ["", "  \n ", None])
def test_empty_prompt(prompt):
    with pytest.raises(LayoutError, match="field 'prompt'"):
        Layout(prompt, (Region("a cat", box=(0, 0, 1, 1)),))


@pytest.mark.parametrize(
    "name, value", [("width", 0), ("height", -3), ("width", 1.5), ("height", True), ("width", "512")]
)
def test_bad_canvas_size(name, value):
    with pytest.raises(LayoutError, match=f"field '{name}'"):
        one(**{name: value})


@pytest.mark.parametrize("name", ["background", "negative_prompt"])
def test_background_and_negative_must_be_text(name):
    assert getattr(one(**{name: "blurry"}), name) == "blurry"
    with pytest.raises(LayoutError, match=f"field '{name}'"):
        one(**{name: ["blurry"]})


def test_region_count_limit():
    regions = [Region(f"thing {i}", box=(0, 0, 1, 1)) for i in range(MAX_REGIONS)]
    assert len(Layout("many things", regions).regions) == MAX_REGIONS == 30
    with pytest.raises(LayoutError, match=r"31 regions.*maximum of 30"):
        Layout("many things", regions + [Region("one more", box=(0, 0, 1, 1))])


def test_mask_errors_name_region_and_field():
    msg = _region_error(mask=np.ones((4, 5), bool), width=4, height=4)
    assert "region 1 ('a dog')" in msg and "field 'mask'" in msg and "(4, 5)" in msg and "(4, 4)" in msg, msg
    msg = _region_error(mask=np.zeros((4, 4), bool), width=4, height=4)
    assert "region 1 ('a dog')" in msg and "field 'mask'" in msg and "empty" in msg, msg
    msg = _region_error(mask=np.full((4, 4), 2, np.uint8), width=4, height=4)
    assert "region 1 ('a dog')" in msg and "field 'mask'" in msg and "binary" in msg, msg
    msg = _region_error(mask=np.full((4, 4), 0.5), width=4, height=4)
    assert "binary" in msg, msg


def test_region_needs_box_or_mask():
    msg = _region_error()
    assert "region 1 ('a dog')" in msg and "'box'" in msg and "'mask'" in msg, msg


def test_non_region_item_rejected():
    with pytest.raises(LayoutError, match="region 0: expected a Region"):
        Layout("a cat", ({"phrase": "a cat", "box": (0, 0, 1, 1)},))


# ============================================================================================ rasterising
def _expected(h, w, rows, cols):
    out = np.zeros((h, w), np.float32)
    out[rows, cols] = 1
    return out


def test_rasterize_known_box_non_square_grids():
    lay = one(box=(0.25, 0.5, 0.75, 1.0))
    np.testing.assert_array_equal(lay.rasterize(16, 24)[0], _expected(16, 24, slice(8, 16), slice(6, 18)))
    np.testing.assert_array_equal(lay.rasterize(24, 16)[0], _expected(24, 16, slice(12, 24), slice(4, 12)))
    # partial cells count: rows [floor(0.2*7), ceil(0.6*7)) = [1, 5), cols [floor(0.1*5), ceil(0.5*5)) = [0, 3)
    lay = one(box=(0.1, 0.2, 0.5, 0.6))
    np.testing.assert_array_equal(lay.rasterize(7, 5)[0], _expected(7, 5, slice(1, 5), slice(0, 3)))
    np.testing.assert_array_equal(lay.rasterize(64, 64)[0], _expected(64, 64, slice(12, 39), slice(6, 32)))


def test_rasterize_dtype_shape_and_order():
    lay = Layout("a cat and a dog", (Region("a cat", box=(0, 0, 0.5, 1)), Region("a dog", box=(0.5, 0, 1, 1))))
    out = lay.rasterize(8, 6)
    assert out.shape == (2, 8, 6) and out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert out[0, :, :3].all() and not out[0, :, 3:].any() and out[1, :, 3:].all() and not out[1, :, :3].any()
    empty = Layout("nothing").rasterize(5, 7)
    assert empty.shape == (0, 5, 7) and empty.dtype == np.float32


@pytest.mark.parametrize("hw", [(1, 1), (7, 5), (16, 24), (64, 64), (3, 100)])
def test_full_canvas_box_covers_everything(hw):
    assert one(box=(0, 0, 1, 1)).rasterize(*hw).all()


@pytest.mark.parametrize("hw", [(1, 1), (7, 5), (16, 24), (64, 64)])
@pytest.mark.parametrize("box", [(0.5, 0.5, 0.5001, 0.5001), (0.0, 0.0, 1e-9, 1e-9), (1 - 1e-12, 1 - 1e-12, 1.0, 1.0)])
def test_tiny_box_covers_exactly_one_cell(hw, box):
    out = one(box=box).rasterize(*hw)[0]
    assert out.sum() == 1
    r, c = np.argwhere(out)[0]
    assert r == min(int(box[1] * hw[0]), hw[0] - 1) and c == min(int(box[0] * hw[1]), hw[1] - 1)


def test_rasterize_box_from_pixels_has_no_float_rounding_extra_row():
    # 0.29 * 100 == 28.999999999999996 and 71 / 100 * 100 == 71.00000000000001: no extra row or column
    lay = Layout.from_pixels("a cat", [("a cat", (29, 29, 71, 71))], 100, 100)
    out = lay.rasterize(100, 100)[0]
    np.testing.assert_array_equal(out, _expected(100, 100, slice(29, 71), slice(29, 71)))
    np.testing.assert_array_equal(lay.rasterize(50, 50)[0], _expected(50, 50, slice(14, 36), slice(14, 36)))


def test_rasterize_rejects_bad_grid():
    with pytest.raises(LayoutError, match="grid size"):
        one().rasterize(0, 8)


def test_rasterize_masks_by_area():
    mask = np.zeros((4, 4), bool)
    mask[:, :2] = True
    mask[0, 2] = True  # a quarter of the top-right cell: stays off
    lay = Layout("a cat", (Region("a cat", mask=mask),), width=4, height=4)
    np.testing.assert_array_equal(lay.rasterize(2, 2)[0], [[1, 0], [1, 0]])
    np.testing.assert_array_equal(lay.rasterize(4, 4)[0], mask.astype(np.float32))  # same size: identity
    np.testing.assert_array_equal(lay.rasterize(8, 8)[0], np.kron(mask, np.ones((2, 2))).astype(np.float32))
    half = np.zeros((2, 2), bool)
    half[0, :] = True  # exactly half of the single cell: on
    assert Layout("a", (Region("a", mask=half),), width=2, height=2).rasterize(1, 1)[0, 0, 0] == 1


def test_rasterize_vanishing_mask_keeps_most_covered_cell():
    mask = np.zeros((8, 8), bool)
    mask[6, 1] = True  # in the bottom-left quadrant
    out = Layout("a dot", (Region("a dot", mask=mask),), width=8, height=8).rasterize(2, 2)[0]
    np.testing.assert_array_equal(out, [[0, 0], [1, 0]])


def test_rasterize_mask_wins_over_box_unless_boxes_only():
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = mask[3, 3] = True
    lay = Layout("a cat", (Region("a cat", box=(0.5, 0, 1, 0.5), mask=mask),), width=4, height=4)
    np.testing.assert_array_equal(lay.rasterize(4, 4)[0], mask.astype(np.float32))
    np.testing.assert_array_equal(lay.rasterize(4, 4, boxes_only=True)[0], _expected(4, 4, slice(0, 2), slice(2, 4)))
    mask_only = Layout("a cat", (Region("a cat", mask=mask),), width=4, height=4)
    assert mask_only.rasterize(4, 4, boxes_only=True)[0].all()  # the mask's bbox is the whole canvas


@FAST
@given(box=norm_boxes(), h=st.integers(1, 40), w=st.integers(1, 40))
def test_rasterized_box_is_the_covering_rectangle(box, h, w):
    out = one(box=box).rasterize(h, w)[0]
    rows, cols = np.nonzero(out.any(axis=1))[0], np.nonzero(out.any(axis=0))[0]
    assert out.sum() == len(rows) * len(cols) >= 1  # one filled rectangle
    assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1)) and np.array_equal(
        cols, np.arange(cols[0], cols[-1] + 1)
    )
    x0, y0, x1, y1 = box
    eps = 1e-6
    for lo, hi, idx, n in ((y0, y1, rows, h), (x0, x1, cols, w)):
        first, last = idx[0], idx[-1]
        assert first <= lo * n + eps and (first + 1 > lo * n - eps or first == n - 1)  # first cell holds lo
        assert last + 1 >= hi * n - eps  # reaches hi
        assert last < hi * n + eps or last == first  # no cell entirely past hi (except the one-cell minimum)


# ============================================================================================ JSON
def test_json_round_trip_with_masks_and_file(tmp_path):
    mask_a = np.zeros((6, 5), bool)
    mask_a[0, 0] = mask_a[2:4, 1:4] = True  # starts with a True run
    mask_b = np.zeros((6, 5), bool)
    mask_b[5, 4] = True  # ends with a True run
    lay = Layout(
        "a cat and a dog on grass",
        (
            Region("a cat", box=(0.1, 0.2, 0.3, 0.4)),
            Region("a dog", mask=mask_a),
            Region("grass", box=(0, 0.5, 1, 1), mask=mask_b),
        ),
        width=5,
        height=6,
        background="a meadow",
        negative_prompt="blurry",
    )
    data = lay.to_dict()
    assert data["version"] == FORMAT_VERSION and (data["width"], data["height"]) == (5, 6)
    assert data["regions"][1]["mask_rle"][0] == 0  # leading True run is encoded after an empty False run
    assert sum(data["regions"][1]["mask_rle"]) == 30
    assert "mask_rle" not in data["regions"][0] and "box" not in data["regions"][1]
    text = lay.to_json()
    assert json.loads(text) == data
    back = Layout.from_json(text)
    assert (
        back == lay and np.array_equal(back.regions[1].mask, mask_a) and np.array_equal(back.regions[2].mask, mask_b)
    )
    path = tmp_path / "nested" / "dir" / "layout.json"
    assert lay.to_json(path) == text
    assert path.read_text() == text + "\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["layout.json"]  # no temporary files left
    assert Layout.from_json(path) == lay and Layout.from_json(str(path)) == lay


def test_rle_known_encoding():
    mask = np.array([[0, 1, 1], [0, 0, 1]], bool)
    lay = Layout("a", (Region("a", mask=mask),), width=3, height=2)
    assert lay.to_dict()["regions"][0]["mask_rle"] == [1, 2, 2, 1]
    full = Layout("a", (Region("a", mask=np.ones((2, 3), bool)),), width=3, height=2)
    assert full.to_dict()["regions"][0]["mask_rle"] == [0, 6]
    assert Layout.from_dict(full.to_dict()) == full


def test_json_keeps_sub_micro_boxes_valid():
    lay = one(box=(0.1, 0.1, 0.1000001, 0.1000004))
    assert Layout.from_json(lay.to_json()).boxes == lay.boxes
    assert one(box=(0.1234567891, 0.2, 0.5, 0.6)).to_dict()["regions"][0]["box"][0] == 0.123457  # normal boxes: 6 dp


def test_json_minimal_input_uses_defaults():
    lay = Layout.from_json('{"prompt": "a cat", "regions": [{"phrase": "a cat", "box": [0, 0, 0.5, 0.5]}]}')
    assert (lay.width, lay.height, lay.background, lay.negative_prompt) == (512, 512, None, None)
    assert lay.boxes == [(0.0, 0.0, 0.5, 0.5)]


@pytest.mark.parametrize(
    "data, words",
    [
        ([1, 2], "must be an object"),
        ({"regions": []}, "field 'prompt' is missing"),
        ({"prompt": "a", "colour": 1}, "unknown field(s) ['colour']"),
        (
            {"prompt": "a", "regions": [{"phrase": "a", "box": [0, 0, 1, 1], "bbox": 1}]},
            "region 0: unknown field(s) ['bbox']",
        ),
        ({"prompt": "a", "regions": [{1: 2, "a": 3}]}, "region 0: unknown field(s)"),
        ({"prompt": "a", "version": 2}, "field 'version'"),
        ({"prompt": "a", "width": "x"}, "field 'width'"),
        ({"prompt": "a", "height": 2.5}, "field 'height'"),
        ({"prompt": "a", "width": None}, "field 'width'"),
        ({"prompt": "a", "regions": {"phrase": "a"}}, "field 'regions' must be a list"),
        ({"prompt": "a", "regions": ["a cat"]}, "region 0: must be an object"),
        ({"prompt": "a", "regions": [{"box": [0, 0, 1, 1]}]}, "region 0: field 'phrase'"),
        ({"prompt": "a", "regions": [{"phrase": "a", "box": [0, 0, 2, 1]}]}, "region 0 ('a'): field 'box'"),
        (
            {"prompt": "a", "width": 2, "height": 2, "regions": [{"phrase": "a", "mask_rle": [1, 2]}]},
            "region 0: field 'mask_rle'",
        ),
        (
            {"prompt": "a", "width": 2, "height": 2, "regions": [{"phrase": "a", "mask_rle": ["a", 4]}]},
            "field 'mask_rle'",
        ),
        (
            {"prompt": "a", "width": 2, "height": 2, "regions": [{"phrase": "a", "mask_rle": [5, -1]}]},
            "field 'mask_rle'",
        ),
        (
            {"prompt": "a", "width": 2, "height": 2, "regions": [{"phrase": "a", "mask_rle": [4]}]},
            "field 'mask' is empty",
        ),
        ({"prompt": "a", "background": 5}, "field 'background'"),
    ],
)
def test_from_dict_errors(data, words):
    with pytest.raises(LayoutError) as info:
        Layout.from_dict(data)
    assert words in str(info.value), str(info.value)


def test_from_json_errors(tmp_path):
    with pytest.raises(LayoutError, match="not valid JSON"):
        Layout.from_json('{"prompt": "a",')
    with pytest.raises(LayoutError, match="does not exist"):
        Layout.from_json(tmp_path / "missing.json")
    with pytest.raises(LayoutError, match="cannot be read"):
        Layout.from_json(tmp_path)  # a directory
    with pytest.raises(LayoutError):
        Layout.from_json("x" * 5000)  # name too long for the filesystem
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LayoutError):
        Layout.from_json(bad)


@pytest.mark.slow
@MANY
@given(data=garbage)
def test_from_dict_garbage_only_raises_layout_error(data):
    try:
        lay = Layout.from_dict(data)
    except LayoutError:
        return
    assert Layout.from_json(lay.to_json()) == lay


@FAST
@given(
    data=st.fixed_dictionaries(
        {"prompt": json_scalars | safe_text},
        optional={
            "width": st.integers(-2, 6) | json_scalars,
            "height": st.integers(-2, 6) | json_scalars,
            "version": st.just(1) | json_scalars,
            "background": json_scalars,
            "regions": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "phrase": json_scalars | safe_text,
                        "box": st.lists(st.floats() | st.integers(-2, 2) | json_scalars, max_size=5) | json_scalars,
                        "mask_rle": st.lists(st.integers(-1, 40) | json_scalars, max_size=6) | json_scalars,
                    },
                ),
                max_size=4,
            )
            | json_like,
        },
    )
)
def test_from_dict_structured_garbage_only_raises_layout_error(data):
    try:
        lay = Layout.from_dict(data)
    except LayoutError:
        return
    for x0, y0, x1, y1 in lay.boxes:
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert Layout.from_json(lay.to_json()) == lay


@FAST
@given(
    box=st.lists(st.floats(), max_size=6) | st.tuples(st.floats(), st.floats(), st.floats(), st.floats()) | json_like
)
def test_region_box_of_arbitrary_floats(box):
    try:
        lay = Layout("a cat", (Region("a cat", box=box),))
    except LayoutError as e:
        assert "region 0 ('a cat')" in str(e) and "'box'" in str(e), str(e)
        return
    x0, y0, x1, y1 = lay.regions[0].box
    assert all(math.isfinite(v) for v in (x0, y0, x1, y1))
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


@pytest.mark.slow
@FAST
@given(lay=layouts())
def test_generated_layouts_survive_json(lay):
    back = Layout.from_json(lay.to_json())
    assert back == lay
    for a, b in zip(back.regions, lay.regions):
        assert (a.mask is None) == (b.mask is None)
        if a.box is not None:
            assert_boxes_close([a.box], [b.box], 5e-7)


# ============================================================================================ GLIGEN
def test_gligen_example_round_trip():
    phrases = ["a waterfall", "a modern high speed train running through the tunnel"]
    boxes = [[0.1387, 0.2051, 0.4277, 0.7090], [0.4980, 0.4355, 0.8516, 0.7266]]
    prompt = "a waterfall and a modern high speed train running through the tunnel in a beautiful forest"
    lay = Layout.from_gligen(prompt, phrases, boxes)
    out = lay.to_gligen()
    assert out == {"prompt": prompt, "gligen_phrases": phrases, "gligen_boxes": boxes}
    assert Layout.from_gligen(out["prompt"], out["gligen_phrases"], out["gligen_boxes"]) == lay


def test_gligen_count_mismatch():
    with pytest.raises(LayoutError, match="2 phrases but 1 boxes"):
        Layout.from_gligen("a cat and a dog", ["a cat", "a dog"], [[0, 0, 1, 1]])


def test_gligen_bad_box_names_region():
    with pytest.raises(LayoutError, match=r"region 1 \('a dog'\): field 'box'"):
        Layout.from_gligen("a cat and a dog", ["a cat", "a dog"], [[0, 0, 1, 1], [0, 0, 512, 512]])


@pytest.mark.slow
@FAST
@given(lay=layouts())
def test_generated_layouts_survive_gligen(lay):
    out = lay.to_gligen()
    json.dumps(out)  # serialisable (mask bboxes are numpy floats)
    back = Layout.from_gligen(out["prompt"], out["gligen_phrases"], out["gligen_boxes"])
    assert back.phrases == lay.phrases
    assert_boxes_close(back.boxes, lay.boxes, 1e-12)


# ============================================================================================ LMD
LMD_EXAMPLE = (
    "[('a green car', [21, 281, 211, 159]), ('a blue truck', [269, 283, 209, 160])]\n"
    "Background prompt: A realistic landscape scene\n"
    "Negative prompt: "
)


def test_lmd_example():
    lay = Layout.from_lmd(LMD_EXAMPLE)
    assert lay.phrases == ["a green car", "a blue truck"]
    assert_boxes_close(
        lay.boxes, [(21 / 512, 281 / 512, 232 / 512, 440 / 512), (269 / 512, 283 / 512, 478 / 512, 443 / 512)], 1e-12
    )
    assert lay.background == "A realistic landscape scene" and lay.negative_prompt is None
    assert (lay.width, lay.height) == (512, 512)
    assert lay.prompt == "a green car, a blue truck"  # default prompt when none is given
    assert lay.to_lmd() == LMD_EXAMPLE  # exact re-export
    assert (
        lay.to_lmd().splitlines()[0]
        == "[('a green car', [21, 281, 211, 159]), ('a blue truck', [269, 283, 209, 160])]"
    )


def test_lmd_with_negative_prompt_and_explicit_prompt():
    text = "[('a cat', [0, 0, 256, 512])]\nBackground prompt: a kitchen\nNegative prompt: blurry, low quality"
    lay = Layout.from_lmd(text, prompt="a cat in a kitchen")
    assert (
        lay.prompt == "a cat in a kitchen"
        and lay.background == "a kitchen"
        and lay.negative_prompt == "blurry, low quality"
    )
    assert lay.boxes == [(0.0, 0.0, 0.5, 1.0)]
    only_bg = Layout.from_lmd("[]\nBackground prompt: an empty beach\nNegative prompt:")
    assert only_bg.regions == () and only_bg.prompt == "an empty beach" and only_bg.background == "an empty beach"


def test_lmd_object_list_and_canvas():
    lay = Layout.from_lmd([("a cat", [64, 0, 64, 128])], prompt="a cat", canvas=256)
    assert lay.boxes == [(0.25, 0.0, 0.5, 0.5)] and (lay.width, lay.height) == (256, 256)
    assert Layout.from_lmd(lay.to_lmd(canvas=256), prompt="a cat", canvas=256) == lay


def test_lmd_overflow_is_clamped():
    lay = Layout.from_lmd(
        "[('a car', [400, 100, 450, 200]), ('a tree', [-20, 10, 100, 600])]", prompt="a car and a tree"
    )
    assert_boxes_close(lay.boxes, [(400 / 512, 100 / 512, 1.0, 300 / 512), (0.0, 10 / 512, 80 / 512, 1.0)], 1e-12)


def test_lmd_overflow_that_degenerates_is_rejected():
    with pytest.raises(LayoutError, match=r"region 1 \('a tree'\): field 'box'.*zero area"):
        Layout.from_lmd("[('a car', [0, 0, 100, 100]), ('a tree', [520, 10, 50, 50])]")
    with pytest.raises(LayoutError, match=r"region 0 \('a car'\): field 'box'.*zero area"):
        Layout.from_lmd("[('a car', [10, -90, 50, 60])]")  # entirely above the canvas
    with pytest.raises(LayoutError, match="outside"):
        Layout.from_lmd("[('a car', [400, 100, 450, 200])]", clamp=False)


@pytest.mark.parametrize(
    "text, words",
    [
        ("[('a green car', [21, 281, 211])]", "region 0: LMD objects"),
        ("[('a car', [1, 2, 3, 4]), ('a truck', 5)]", "region 1: LMD objects"),
        ("[('a car', ['a', 'b', 'c', 'd'])]", "region 0: LMD objects"),
        ("[('a car', '1234')]", "region 0: LMD objects"),
        ("[(None, [1, 2, 3, 4])]", "region 0: LMD objects"),
        ("[('a car', [1, 2, 3j, 4])]", "region 0: LMD objects"),
        ("[('a car', [1, 2, 3, 4])", "not a Python literal"),
        ("a green car at the left", "not a Python literal"),
        ("{[]: 1}", "not a Python literal"),
        ("5", "expected a list"),
        ("'a car'", "expected a list"),
        ("[('a car', [1, 2, 3, 4]), ('', [1, 2, 3, 4])]", "region 1: field 'phrase'"),
        ("[('a car', [10, 10, 0, 10])]", "region 0 ('a car'): field 'box'"),
        ("", "field 'prompt'"),
    ],
)
def test_lmd_malformed(text, words):
    with pytest.raises(LayoutError) as info:
        Layout.from_lmd(text)
    assert words in str(info.value), str(info.value)


def test_lmd_phrase_mentioning_a_marker_survives():
    lay = Layout(
        "a sign", (Region("a sign saying Background prompt: none", box=(0.1, 0.1, 0.5, 0.5)),), background="a wall"
    )
    back = Layout.from_lmd(lay.to_lmd(), prompt="a sign")
    assert back.phrases == lay.phrases and back.background == "a wall"


@pytest.mark.slow
@FAST
@given(lay=layouts())
def test_generated_layouts_survive_lmd(lay):
    back = Layout.from_lmd(lay.to_lmd(), prompt=lay.prompt)
    assert back.phrases == lay.phrases
    assert back.background == lay.background and back.negative_prompt == lay.negative_prompt
    for got, box in zip(back.boxes, lay.boxes):
        assert_boxes_close([got], [box], pixel_tol(box, 512, 512))


# ============================================================================================ LayoutGPT
def test_layoutgpt_example():
    lay = Layout.from_layoutgpt("toilet {height: 16px; width: 12px; top: 14px; left: 0px; }", prompt="a toilet")
    assert lay.phrases == ["toilet"]
    assert_boxes_close(lay.boxes, [(0.0, 14 / 64, 12 / 64, 30 / 64)], 1e-12)
    assert lay.to_layoutgpt() == "toilet {height: 16px; width: 12px; top: 14px; left: 0px; }"


def test_layoutgpt_multi_line_order_and_overflow():
    text = (
        "\n  sink {width: 20px; height: 10px; left: 40px; top: 0px;}\n\n"
        "big mirror {height: 40px; width: 30px; top: 50px; left: 50px; }\n"
    )
    lay = Layout.from_layoutgpt(text, prompt="a sink and a big mirror")
    assert lay.phrases == ["sink", "big mirror"]
    # property order does not matter; l + w and t + h are cut at the 64 px canvas
    assert_boxes_close(lay.boxes, [(40 / 64, 0.0, 60 / 64, 10 / 64), (50 / 64, 50 / 64, 1.0, 1.0)], 1e-12)


@pytest.mark.parametrize(
    "text, words",
    [
        ("toilet height: 16px; width: 12px; top: 14px; left: 0px;", "region 0: not a LayoutGPT CSS line"),
        ("toilet {height: 16px; width: 12px; top: 14px; left: 0px; } extra", "region 0: not a LayoutGPT CSS line"),
        (
            "sink {height: 1px; width: 1px; top: 1px; left: 1px; }\ntoilet {height: 16px; width: 12px; top: 14px; }",
            "region 1: LayoutGPT line needs",
        ),
        ("toilet {height: tall; width: 12px; top: 14px; left: 0px; }", "region 0: LayoutGPT line needs"),
        ("toilet {height: 0px; width: 12px; top: 14px; left: 0px; }", "region 0 ('toilet'): field 'box'"),
        ("toilet {height: 16px; width: 12px; top: 70px; left: 0px; }", "region 0 ('toilet'): field 'box'"),
        ("{height: 16px; width: 12px; top: 14px; left: 0px; }", "region 0: field 'phrase'"),
    ],
)
def test_layoutgpt_malformed(text, words):
    with pytest.raises(LayoutError) as info:
        Layout.from_layoutgpt(text, prompt="a toilet")
    assert words in str(info.value), str(info.value)


def test_layoutgpt_export_rejects_unwritable_phrase():
    lay = Layout("a cat", (Region("a {cat}", box=(0, 0, 1, 1)),))
    with pytest.raises(LayoutError, match=r"region 0 \('a \{cat\}'\): field 'phrase'"):
        lay.to_layoutgpt()
    with pytest.raises(LayoutError, match="field 'phrase'"):
        Layout("a cat", (Region("a\ncat", box=(0, 0, 1, 1)),)).to_layoutgpt()


@FAST
@given(lay=layouts())
def test_generated_layouts_survive_layoutgpt(lay):
    back = Layout.from_layoutgpt(lay.to_layoutgpt(), prompt=lay.prompt)
    assert back.phrases == lay.phrases
    for got, box in zip(back.boxes, lay.boxes):
        assert_boxes_close([got], [box], pixel_tol(box, 64, 64))


# ============================================================================================ Attention Refocusing
def test_refocus_example():
    lay = Layout.from_refocus("cat: (245, 176, 345, 336)", prompt="a cat")
    assert lay.phrases == ["cat"] and (lay.width, lay.height) == (512, 512)
    assert_boxes_close(lay.boxes, [(245 / 512, 176 / 512, 345 / 512, 336 / 512)], 1e-12)
    assert lay.to_refocus() == "cat: (245, 176, 345, 336)"


def test_refocus_lines_variants():
    text = "\n  cat: (245, 176, 345, 336),\n\nred car : [0,0,100,50] \n car: ( 1.5 , 2 , 300 , 400 ) ,\n"
    lay = Layout.from_refocus(text, prompt="a cat, a red car and a car")
    assert lay.phrases == ["cat", "red car", "car"]
    assert_boxes_close(
        lay.boxes,
        [
            (245 / 512, 176 / 512, 345 / 512, 336 / 512),
            (0, 0, 100 / 512, 50 / 512),
            (1.5 / 512, 2 / 512, 300 / 512, 400 / 512),
        ],
        1e-12,
    )
    assert Layout.from_refocus("cat: (16, 0, 32, 16)", "a cat", canvas=64).boxes == [(0.25, 0.0, 0.5, 0.25)]


def test_refocus_overflow_is_clamped_and_degenerate_rejected():
    lay = Layout.from_refocus("cat: (400, 100, 850, 300)\ndog: (-12, 300, 200, 700)", prompt="a cat and a dog")
    assert_boxes_close(lay.boxes, [(400 / 512, 100 / 512, 1.0, 300 / 512), (0.0, 300 / 512, 200 / 512, 1.0)], 1e-12)
    with pytest.raises(LayoutError, match=r"region 0 \('cat'\): field 'box'.*zero area"):
        Layout.from_refocus("cat: (600, 100, 850, 300)", prompt="a cat")
    with pytest.raises(LayoutError, match=r"region 1 \('dog'\): field 'box'.*zero area"):
        Layout.from_refocus("cat: (0, 0, 10, 10)\ndog: (10, 520, 20, 850)", prompt="a cat and a dog")
    with pytest.raises(LayoutError, match="outside"):
        Layout.from_refocus("cat: (400, 100, 850, 300)", prompt="a cat", clamp=False)


@pytest.mark.parametrize(
    "text, words",
    [
        ("cat (245, 176, 345, 336)", "region 0: expected 'name: (x0, y0, x1, y1)'"),
        ("cat: (245, 176, 345)", "region 0: expected"),
        ("cat: (1, 2, 3, 4)\ndog: (245, 176, 345, 336, 1)", "region 1: expected"),
        ("cat: (1, 2, e, 4)", "region 0: expected"),
        ("cat: (1, 2, -, .)", "region 0: expected"),
        ("cat: 1, 2, 3, 4", "region 0: expected"),
        ("cat: (1, 2, 3, 4) and more", "region 0: expected"),
        ("cat: (a, b, c, d)", "region 0: expected"),
        (": (1, 2, 3, 4)", "region 0: field 'phrase'"),
        ("cat: (345, 176, 245, 336)", "region 0 ('cat'): field 'box'"),
    ],
)
def test_refocus_malformed(text, words):
    with pytest.raises(LayoutError) as info:
        Layout.from_refocus(text, prompt="a cat and a dog")
    assert words in str(info.value), str(info.value)


def test_refocus_export_rejects_unwritable_phrase():
    with pytest.raises(LayoutError, match=r"region 0 \('cat: big'\): field 'phrase'"):
        Layout("a cat", (Region("cat: big", box=(0, 0, 1, 1)),)).to_refocus()


def test_line_parsers_are_linear_time_on_long_lines():
    # the previous regexes backtracked for minutes on lines like these (seconds already at 2,000 characters)
    lines = [" " * 20000 + "a", "a: (" + " " * 20000 + "x", " " * 5000 + "a" + " " * 5000 + ": (" + "1 " * 3000 + "x"]
    start = time.perf_counter()
    for line in lines:
        with pytest.raises(LayoutError):
            Layout.from_refocus(line, prompt="a")
        with pytest.raises(LayoutError):
            Layout.from_layoutgpt(line, prompt="a")
    assert time.perf_counter() - start < 2.0


@pytest.mark.slow
@FAST
@given(lay=layouts())
def test_generated_layouts_survive_refocus(lay):
    back = Layout.from_refocus(lay.to_refocus(), prompt=lay.prompt)
    assert back.phrases == lay.phrases
    for got, box in zip(back.boxes, lay.boxes):
        assert_boxes_close([got], [box], pixel_tol(box, 512, 512))


# ======================================================================================= arbitrary text to the parsers
TOKENS = [
    "cat",
    "a dog",
    ":",
    ": ",
    "(",
    ")",
    "[",
    "]",
    ",",
    " ",
    "  ",
    "\n",
    "\r\n",
    "0",
    "1",
    "12",
    "245",
    "512",
    "850",
    "-3",
    "1.5",
    "1e",
    "1e999",
    "-",
    ".",
    "e",
    "E",
    "+",
    "nan",
    "inf",
    "{",
    "}",
    "height",
    "width",
    "top",
    "left",
    "px",
    ";",
    "'",
    '"',
    "Background prompt:",
    "Negative prompt:",
    "[('a car', [",
    "])]",
    "None",
    "j",
]
token_text = st.lists(st.sampled_from(TOKENS), max_size=30).map("".join)
names = st.sampled_from(["cat", "red car", " dog ", "", "a:b", "x{"]) | st.text(max_size=6)
number_ish = (
    st.integers(-600, 900).map(str)
    | st.floats().map(repr)
    | st.sampled_from(["e", "E", "-", "+", ".", "1e", "1e999", "-1e999", "1.5e2", "--1", "1-2", "", " "])
)
ar_lines = st.builds(
    lambda name, opener, nums, closer, tail: f"{name}: {opener}{', '.join(nums)}{closer}{tail}",
    names,
    st.sampled_from(["(", "[", " ", "(("]),
    st.lists(number_ish, min_size=3, max_size=5),
    st.sampled_from([")", "]", " ", "))"]),
    st.sampled_from(["", ",", " , ", " x", ";"]),
)
css_lines = st.builds(
    lambda name, props, end: f"{name} {{{'; '.join(f'{k}: {v}' for k, v in props)}{end}",
    names,
    st.lists(
        st.tuples(
            st.sampled_from(["height", "width", "top", "left", "colour"]),
            number_ish.map(lambda v: v + "px") | number_ish,
        ),
        max_size=6,
    ),
    st.sampled_from(["; }", "}", "", "} x", ";}}"]),
)
any_text = st.text(max_size=80) | token_text
ar_text = any_text | st.lists(ar_lines, max_size=4).map("\n".join)
css_text = any_text | st.lists(css_lines, max_size=4).map("\n".join)


def _check_parsed(lay):
    assert isinstance(lay, Layout)
    for x0, y0, x1, y1 in lay.boxes:
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


@MANY
@given(text=ar_text)
def test_from_refocus_arbitrary_text(text):
    try:
        _check_parsed(Layout.from_refocus(text, prompt="a prompt"))
    except LayoutError:
        pass


@MANY
@given(text=css_text)
def test_from_layoutgpt_arbitrary_text(text):
    try:
        _check_parsed(Layout.from_layoutgpt(text, prompt="a prompt"))
    except LayoutError:
        pass


LMD_TOKENS = st.sampled_from(
    [
        "[",
        "]",
        "(",
        ")",
        ",",
        " ",
        "'a car'",
        "'x'",
        "0",
        "12",
        "850",
        "-40",
        "1e999",
        "-1e999",
        "1.5",
        "None",
        "{",
        "}",
        "3j",
        "'1234'",
        "True",
        "\n",
    ]
)
lmd_text = st.lists(LMD_TOKENS, max_size=30).map("".join) | st.builds(
    lambda objs, bg, neg: f"{objs!r}\nBackground prompt: {bg}\nNegative prompt: {neg}",
    st.lists(
        st.tuples(st.text(max_size=5) | st.integers(), st.lists(st.integers(-600, 900) | st.floats(), max_size=5)),
        max_size=4,
    ),
    st.text(max_size=10),
    st.text(max_size=10),
)


@pytest.mark.slow
@MANY
@given(text=st.text(max_size=80) | lmd_text)
def test_from_lmd_arbitrary_text(text):
    try:
        _check_parsed(Layout.from_lmd(text))
    except LayoutError:
        pass


@FEW
@given(objects=json_like)
def test_from_lmd_arbitrary_objects(objects):
    try:
        _check_parsed(Layout.from_lmd(objects, prompt="a prompt"))
    except LayoutError:
        pass


# ============================================================================================ COCO
def test_coco_example():
    anns = [{"bbox": [334.95, 172.26, 177.05, 680.67], "category_id": 18}, {"bbox": [0, 0, 64, 100], "category_id": 1}]
    cats = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
    lay = Layout.from_coco(anns, cats, prompt="a dog and a person", width=640, height=853)
    assert lay.phrases == ["dog", "person"] and (lay.width, lay.height) == (640, 853)
    assert_boxes_close(
        lay.boxes, [(334.95 / 640, 172.26 / 853, 512 / 640, 852.93 / 853), (0, 0, 0.1, 100 / 853)], 1e-12
    )
    assert Layout.from_coco(anns, {1: "person", 18: "dog"}, "a dog and a person", 640, 853) == lay
    out = lay.to_coco(image_id=7)
    assert out["images"] == [{"id": 7, "width": 640, "height": 853}]
    assert [a["bbox"] for a in out["annotations"]] == [[334.95, 172.26, 177.05, 680.67], [0.0, 0.0, 64.0, 100.0]]
    assert all(a["image_id"] == 7 for a in out["annotations"])


def test_coco_categories_are_deduplicated():
    lay = Layout(
        "two cats",
        (
            Region("cat", box=(0, 0, 0.5, 0.5)),
            Region("cat", box=(0.5, 0.5, 1, 1)),
            Region("dog", box=(0, 0.5, 0.5, 1)),
        ),
    )
    out = lay.to_coco()
    assert out["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    assert [a["category_id"] for a in out["annotations"]] == [1, 1, 2] and [a["id"] for a in out["annotations"]] == [
        1,
        2,
        3,
    ]


def test_coco_overflow_clamped():
    lay = Layout.from_coco([{"bbox": [600, 800, 100, 100], "category_id": 1}], {1: "dog"}, "a dog", 640, 853)
    assert_boxes_close(lay.boxes, [(600 / 640, 800 / 853, 1.0, 1.0)], 1e-12)


@pytest.mark.parametrize(
    "ann, words",
    [
        ({"category_id": 1}, "region 0: COCO annotation needs 'bbox' and 'category_id'"),
        ({"bbox": [0, 0, 1, 1], "category_id": 5}, "region 0: category_id 5"),
        ({"bbox": [0, 0, 1], "category_id": 1}, "region 0: COCO 'bbox'"),
        ({"bbox": ["a", 0, 1, 1], "category_id": 1}, "region 0: COCO 'bbox'"),
        ({"bbox": [0, 0, 0, 10], "category_id": 1}, "region 0 ('dog'): field 'box'"),
    ],
)
def test_coco_malformed(ann, words):
    with pytest.raises(LayoutError) as info:
        Layout.from_coco([ann], [{"id": 1, "name": "dog"}], "a dog", 100, 100)
    assert words in str(info.value), str(info.value)


@pytest.mark.slow
@FAST
@given(lay=layouts())
def test_generated_layouts_survive_coco(lay):
    out = json.loads(json.dumps(lay.to_coco()))
    back = Layout.from_coco(
        out["annotations"], out["categories"], lay.prompt, out["images"][0]["width"], out["images"][0]["height"]
    )
    assert back.phrases == lay.phrases and (back.width, back.height) == (lay.width, lay.height)
    for got, box in zip(back.boxes, lay.boxes):
        tol = max(pixel_tol(box, lay.width, lay.height, unit=1e-3), 1e-9)
        assert_boxes_close([got], [box], tol)


# ============================================================================================ pixels
def test_from_pixels():
    lay = Layout.from_pixels("a cat", [("a cat", (128, 0, 384, 256))], width=512, height=256, background="a room")
    assert lay.boxes == [(0.25, 0.0, 0.75, 1.0)] and (lay.width, lay.height, lay.background) == (512, 256, "a room")
    with pytest.raises(LayoutError, match="outside"):
        Layout.from_pixels("a cat", [("a cat", (0, 0, 600, 10))], width=512, height=512)


# ============================================================================================ mask PNG + colours
COLOURS = {"(244, 54, 32)": "Brown tabby cat", "(54, 245, 32)": "blue vase"}


def _paint(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[1:4, 0:3] = (244, 54, 32)
    rgb[2:6, 5:8] = (54, 245, 32)
    rgb[0, 7] = (244, 54, 33)  # a near miss must not count
    path = tmp_path / "masks.png"
    Image.fromarray(rgb).save(path)
    return rgb, path


def test_mask_png_with_json_file_text_and_dict(tmp_path):
    rgb, png = _paint(tmp_path)
    colours_path = tmp_path / "colours.json"
    colours_path.write_text(json.dumps(COLOURS))
    expected_cat = np.zeros((6, 8), bool)
    expected_cat[1:4, 0:3] = True
    expected_vase = np.zeros((6, 8), bool)
    expected_vase[2:6, 5:8] = True
    for png_source, colours in [
        (png, colours_path),
        (str(png), str(colours_path)),
        (png, json.dumps(COLOURS)),
        (rgb, COLOURS),
    ]:
        lay = Layout.from_mask_png(png_source, colours, prompt="a brown tabby cat next to a blue vase")
        assert lay.phrases == ["Brown tabby cat", "blue vase"] and (lay.width, lay.height) == (8, 6)
        assert np.array_equal(lay.regions[0].mask, expected_cat) and np.array_equal(lay.regions[1].mask, expected_vase)
        assert_boxes_close(lay.boxes, [(0, 1 / 6, 3 / 8, 4 / 6), (5 / 8, 2 / 6, 1.0, 1.0)], 1e-12)
    # an RGBA PNG works the same
    Image.fromarray(np.dstack([rgb, np.full((6, 8), 255, np.uint8)])).save(tmp_path / "rgba.png")
    assert Layout.from_mask_png(tmp_path / "rgba.png", COLOURS, prompt="a cat") == lay.replace(prompt="a cat")


def test_mask_png_errors(tmp_path):
    rgb, png = _paint(tmp_path)
    with pytest.raises(LayoutError, match=r"region 1 \('a dog'\): field 'mask' is empty"):
        Layout.from_mask_png(png, {"(244, 54, 32)": "a cat", "(1, 2, 3)": "a dog"}, prompt="a cat and a dog")
    for key in ["(1, 2)", "(300, 0, 0)", "red", "5", "(1, 2, 3, 4)"]:
        with pytest.raises(LayoutError, match=r"region 0 \('a cat'\): colour key"):
            Layout.from_mask_png(png, {key: "a cat"}, prompt="a cat")
    with pytest.raises(LayoutError, match="colours"):
        Layout.from_mask_png(png, "{not json", prompt="a cat")
    with pytest.raises(LayoutError, match="colours"):
        Layout.from_mask_png(png, tmp_path / "missing.json", prompt="a cat")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(LayoutError, match="JSON object"):
        Layout.from_mask_png(png, tmp_path / "list.json", prompt="a cat")
    with pytest.raises(LayoutError, match="RGB"):
        Layout.from_mask_png(np.zeros((4, 4), np.uint8), COLOURS, prompt="a cat")


@FEW
@given(data=st.data())
def test_masks_survive_png_round_trip(data, tmp_path_factory):
    h, w = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    k = data.draw(st.integers(1, min(4, h * w)))
    labels = data.draw(hnp.arrays(np.int64, (h, w), elements=st.integers(0, k)))
    labels.reshape(-1)[:k] = np.arange(1, k + 1)  # every label present
    palette = data.draw(st.lists(st.tuples(*[st.integers(0, 255)] * 3), min_size=k + 1, max_size=k + 1, unique=True))
    lay = Layout("things", tuple(Region(f"thing {i}", mask=labels == i) for i in range(1, k + 1)), width=w, height=h)
    rgb = np.zeros((h, w, 3), np.uint8)
    for i in range(k + 1):
        rgb[labels == i] = palette[i]
    path = tmp_path_factory.mktemp("png") / "m.png"
    Image.fromarray(rgb).save(path)
    colours = {str(palette[i]): f"thing {i}" for i in range(1, k + 1)}
    assert Layout.from_mask_png(path, json.dumps(colours), prompt="things") == lay


# ============================================================================================ atomic writes
def test_atomic_write_creates_overwrites_and_cleans_up(tmp_path):
    path = tmp_path / "a" / "b" / "file.txt"
    atomic_write_text(path, "first")
    assert path.read_text() == "first"
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # the write fails half-way
    assert path.read_bytes() == b"second"  # the old content is untouched
    assert [p.name for p in path.parent.iterdir()] == ["file.txt"]  # and no temporary file is left


def test_huge_canvas_is_refused_before_allocating():
    from layoutguide.layout import MAX_CANVAS

    with pytest.raises(LayoutError, match="field 'width'.*at most"):
        Layout.from_dict(
            {
                "prompt": "a cat",
                "width": 10**6,
                "height": 64,
                "regions": [{"phrase": "cat", "box": [0, 0, 1, 1], "mask_rle": [1]}],
            }
        )
    with pytest.raises(LayoutError, match="field 'height'.*at most"):
        Layout("a cat", (Region("cat", box=(0, 0, 1, 1)),), width=64, height=MAX_CANVAS + 1)
