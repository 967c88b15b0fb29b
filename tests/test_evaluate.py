"""The shapes-world evaluator: exact on clean renders, robust to diffusion-like corruptions, metrics as documented."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from layoutguide.layout import Layout, Region
from layoutguide.shapes.evaluate import Detection, aggregate, classify_shape, detect, evaluate, shape_features
from layoutguide.shapes.world import (
    BENCH_SEED_OFFSET,
    COLOURS,
    SHAPES,
    Relation,
    Scene,
    ShapeObject,
    make_scene,
    object_mask,
    render_objects,
)

N_SCENES = 300
PALETTE = list(COLOURS)


# ------------------------------------------------------------------------------------------- corruptions
def add_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(image + rng.normal(0.0, 12.0, image.shape), 0, 255).astype(np.uint8)


def blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(0.8)))


def colour_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gains, offsets = rng.uniform(0.9, 1.1, 3), rng.uniform(-15.0, 15.0, 3)
    return np.clip(image * gains + offsets, 0, 255).astype(np.uint8)


def tint_background(image: np.ndarray, colour: str, strength: float = 0.25) -> np.ndarray:
    """Replace the white background by ``strength`` of a palette colour blended into white."""
    out = image.copy()
    background = np.all(image == 255, axis=-1)
    out[background] = np.round(255 * (1 - strength) + strength * np.array(COLOURS[colour])).astype(np.uint8)
    return out


def tint(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return tint_background(image, PALETTE[rng.integers(len(PALETTE))])


CORRUPTIONS = {"noise": add_noise, "blur": blur, "jitter": colour_jitter, "tint": tint}


@pytest.fixture(scope="module")
def bench() -> list[tuple[Scene, np.ndarray]]:
    scenes = [make_scene(BENCH_SEED_OFFSET + i) for i in range(N_SCENES)]
    return [(scene, np.asarray(scene.render())) for scene in scenes]


def region_rates(scores) -> tuple[float, float, float]:
    """(found rate, rate of found with box IoU > 0.9, rate of in_box) over all regions of all scores."""
    regions = [r for s in scores for r in s.regions]
    n = len(regions)
    return (
        sum(r.found for r in regions) / n,
        sum(r.found and r.iou > 0.9 for r in regions) / n,
        sum(r.in_box for r in regions) / n,
    )


# ------------------------------------------------------------------------------------------- detection
@pytest.mark.slow
def test_clean_renders_are_detected_exactly(bench):
    scores = [evaluate(image, scene.layout()) for scene, image in bench]
    found, tight, in_box = region_rates(scores)
    assert sum(len(s.regions) for s in scores) > 500  # enough objects for the rates to mean something
    assert found >= 0.99 and tight >= 0.99 and in_box >= 0.99, (found, tight, in_box)
    assert np.mean([s.count_ok for s in scores]) >= 0.99  # no spurious or split detections
    assert np.mean([s.mean_mask_iou for s in scores]) > 0.98
    assert not any(s.background_tint for s in scores)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_renders_are_still_detected(bench, name):
    rng = np.random.default_rng(7)
    scores = [evaluate(CORRUPTIONS[name](image, rng), scene.layout()) for scene, image in bench]
    found, _, in_box = region_rates(scores)
    assert found >= 0.95, found
    assert in_box >= 0.95, in_box
    assert np.mean([s.colour_acc for s in scores]) >= 0.95
    assert np.mean([s.count_ok for s in scores]) >= 0.9
    if name == "tint":
        assert all(s.background_tint for s in scores)


def test_detection_matches_the_rendered_object_pixel_for_pixel():
    objects = (ShapeObject("green", "triangle", (5, 7, 17, 19)), ShapeObject("blue", "circle", (30, 30, 55, 55)))
    detections = detect(render_objects(objects))
    assert [(d.colour, d.shape) for d in detections] == [("green", "triangle"), ("blue", "circle")]  # palette order
    for det, obj in zip(detections, objects):
        assert det.box == tuple(v / 64 for v in obj.box)
        assert det.mask.dtype == bool and det.mask.shape == (64, 64)
        assert np.array_equal(det.mask, object_mask(obj))
        assert det.area == int(object_mask(obj).sum())
        assert det.centre == tuple(c / 64 for c in obj.centre)
        assert 0.8 < det.confidence <= 1.0


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("side", [12, 13, 17, 24, 30])
def test_every_shape_and_size_is_classified(shape, side):
    for colour in PALETTE:
        (det,) = detect(render_objects([ShapeObject(colour, shape, (10, 10, 10 + side, 10 + side))]))
        assert (det.colour, det.shape) == (colour, shape)


def test_non_world_shapes_are_unknown():
    bar = np.zeros((64, 64), bool)
    bar[20:28, 5:40] = True  # 35 x 8: aspect far from the world's 1
    rows = np.arange(64)[:, None] - 10
    cols = np.arange(64)[None, :]
    down_triangle = (rows >= 0) & (rows < 24) & (np.abs(cols - 32) <= (24 - rows) / 2)  # apex at the bottom
    for mask in (bar, down_triangle):
        image = np.full((64, 64, 3), 255, np.uint8)
        image[mask] = COLOURS["red"]
        (det,) = detect(image)
        assert det.colour == "red" and det.shape == "unknown"
        assert det.confidence < 0.01
    assert classify_shape(*shape_features(object_mask(ShapeObject("red", "square", (0, 0, 20, 20)))))[0] == "square"


def test_input_types_agree_and_bad_input_is_rejected():
    image = make_scene(BENCH_SEED_OFFSET + 3).render()
    as_pil, as_uint8 = detect(image), detect(np.asarray(image))
    as_float, as_rgba = detect(np.asarray(image) / 255.0), detect(np.asarray(image.convert("RGBA")))
    for other in (as_uint8, as_float, as_rgba):
        assert [(d.colour, d.shape, d.box) for d in other] == [(d.colour, d.shape, d.box) for d in as_pil]
    with pytest.raises(ValueError):
        detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError):
        detect(np.full((8, 8, 3), 2.0))


@settings(max_examples=40, deadline=None)
@given(
    colour=st.sampled_from(PALETTE),
    shape=st.sampled_from(SHAPES),
    side=st.integers(12, 30),
    x=st.integers(1, 33),
    y=st.integers(1, 33),
    tint_colour=st.sampled_from(PALETTE),
    strength=st.floats(0.0, 0.5),
)
def test_any_object_on_any_light_tint_is_exact(colour, shape, side, x, y, tint_colour, strength):
    obj = ShapeObject(colour, shape, (x, y, x + side, y + side))
    image = tint_background(np.asarray(render_objects([obj])), tint_colour, strength)
    (det,) = detect(image)
    assert (det.colour, det.shape) == (colour, shape)
    assert np.array_equal(det.mask, object_mask(obj))


def test_uniform_strong_colour_and_noise_images_do_not_crash():
    layout = make_scene(BENCH_SEED_OFFSET).layout()
    half = np.full((64, 64, 3), 255, np.uint8)
    half[:, :32] = COLOURS["blue"]
    images = [np.tile(np.array(COLOURS[c], np.uint8), (64, 64, 1)) for c in PALETTE]
    images += [
        half,
        np.zeros((64, 64, 3), np.uint8),
        np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8),
    ]
    for image in images:
        assert detect(image) == []  # the coloured half is background-like (touches half the border), not an object
        score = evaluate(image, layout)
        assert score.background_tint and score.n_detections == 0 and score.found_rate == 0.0
        json.dumps(score.to_dict())


def test_red_square_on_strong_red_background_is_ignored_but_blue_square_is_found():
    image = np.tile(np.array(COLOURS["red"], np.uint8), (64, 64, 1))
    image[20:40, 20:40] = COLOURS["blue"]
    image[5:15, 45:60] = 255  # a white patch must not balance into a saturated cyan "blue"
    (det,) = detect(image)
    assert (det.colour, det.shape, det.box) == ("blue", "square", (20 / 64, 20 / 64, 40 / 64, 40 / 64))


# ------------------------------------------------------------------------------------------- metrics
def test_a_scene_scores_perfectly_against_its_own_layout():
    for i in range(40):
        scene = make_scene(BENCH_SEED_OFFSET + i, with_relation=True)
        rel = scene.relation
        score = evaluate(scene.render(), scene.layout(), (rel.subject, rel.relation, rel.object))
        assert score.object_in_box == score.colour_acc == score.found_rate == 1.0
        assert score.mean_iou == score.mean_mask_iou == 1.0
        assert score.count_ok is True and score.relation_ok is True
        assert score.n_detections == len(scene.objects)
        # the same relation with subject and object swapped is false, so relation_ok is a real check
        swapped = evaluate(scene.render(), scene.layout(), Relation(rel.object, rel.relation, rel.subject))
        assert swapped.relation_ok is False


def _scene(*objects: ShapeObject) -> Scene:
    return Scene(seed=0, objects=tuple(objects))


RED_CIRCLE = ShapeObject("red", "circle", (4, 4, 22, 22))
BLUE_SQUARE = ShapeObject("blue", "square", (40, 6, 58, 24))
GREEN_TRIANGLE = ShapeObject("green", "triangle", (10, 40, 30, 60))


def test_a_moved_object_is_found_but_not_in_its_box():
    layout = _scene(RED_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE).layout()
    moved = ShapeObject("red", "circle", (38, 38, 56, 56))
    score = evaluate(render_objects([moved, BLUE_SQUARE, GREEN_TRIANGLE]), layout)
    red = score.regions[0]
    assert red.found and not red.in_box and red.iou == 0.0 and red.mask_iou == 0.0 and red.colour_ok
    assert all(r.in_box for r in score.regions[1:])
    assert score.object_in_box == pytest.approx(2 / 3) and score.found_rate == 1.0 and score.count_ok


def test_a_wrong_colour_object_fails_colour_and_found():
    layout = _scene(RED_CIRCLE, BLUE_SQUARE).layout()
    yellow = ShapeObject("yellow", "circle", RED_CIRCLE.box)
    score = evaluate(render_objects([yellow, BLUE_SQUARE]), layout)
    assert not score.regions[0].colour_ok and not score.regions[0].found and score.regions[0].iou == 0.0
    assert score.regions[1].colour_ok and score.regions[1].in_box
    assert score.colour_acc == 0.5 and not score.count_ok


def test_a_missing_object_is_not_found_and_breaks_the_count():
    twin = ShapeObject("red", "circle", (40, 40, 58, 58))
    layout = _scene(RED_CIRCLE, BLUE_SQUARE, twin).layout()
    assert layout.regions[0].phrase == "red circles"
    score = evaluate(render_objects([BLUE_SQUARE, twin]), layout)
    assert [r.found for r in score.regions] == [False, True, True]  # the twin keeps its own region (IoU 1)
    assert score.regions[2].iou == 1.0 and score.regions[0].detection is None
    assert not score.regions[0].colour_ok and score.colour_acc == pytest.approx(2 / 3)
    assert score.count_ok is False and score.found_rate == pytest.approx(2 / 3)


def test_extra_objects_break_the_count_only_for_kinds_in_the_layout():
    layout = _scene(RED_CIRCLE, BLUE_SQUARE).layout()
    extra_same = evaluate(
        render_objects([RED_CIRCLE, BLUE_SQUARE, ShapeObject("red", "circle", (30, 40, 44, 54))]), layout
    )
    assert extra_same.object_in_box == 1.0 and extra_same.count_ok is False
    extra_other = evaluate(render_objects([RED_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE]), layout)
    assert extra_other.object_in_box == 1.0 and extra_other.count_ok is True and extra_other.n_detections == 3


def test_assignment_maximises_iou_not_region_order():
    left, right = ShapeObject("red", "square", (2, 20, 20, 38)), ShapeObject("red", "square", (44, 2, 62, 20))
    layout = _scene(left, right).layout()  # detections come in scan order: right (higher up) first
    score = evaluate(render_objects([left, right]), layout)
    assert [r.iou for r in score.regions] == [1.0, 1.0]
    assert score.regions[0].detection != score.regions[1].detection


def test_mask_iou_uses_the_box_for_box_only_regions():
    scene = _scene(RED_CIRCLE)
    with_mask = evaluate(scene.render(), scene.layout())
    box_only = evaluate(scene.render(), scene.layout(with_masks=False))
    assert with_mask.mean_mask_iou == 1.0 and box_only.mean_iou == 1.0
    assert box_only.mean_mask_iou == pytest.approx(object_mask(RED_CIRCLE).sum() / 18**2)


def test_resolution_independent_scoring():
    scene = make_scene(BENCH_SEED_OFFSET + 11, with_relation=True)
    big = scene.render().resize((128, 128), Image.NEAREST)
    rel = scene.relation
    score = evaluate(big, scene.layout(), rel)  # 64 px layout masks against a 128 px image
    assert score.object_in_box == 1.0 and score.mean_mask_iou == 1.0 and score.relation_ok


def test_blank_image_scores_zero():
    scene = make_scene(BENCH_SEED_OFFSET + 5, with_relation=True)
    score = evaluate(Image.new("RGB", (64, 64), "white"), scene.layout(), scene.relation)
    assert score.n_detections == 0 and not score.background_tint
    assert score.object_in_box == score.mean_iou == score.mean_mask_iou == score.colour_acc == score.found_rate == 0.0
    assert score.count_ok is False and score.relation_ok is False
    assert not any(r.found or r.colour_ok for r in score.regions)


def test_to_dict_is_json_without_masks():
    scene = make_scene(BENCH_SEED_OFFSET + 1, with_relation=True)
    data = evaluate(scene.render(), scene.layout(), scene.relation).to_dict()
    text = json.dumps(data)
    assert 'mask"' not in text and json.loads(text)["relation_ok"] is True
    assert len(data["regions"]) == len(scene.objects) == len(data["detections"])
    assert set(data["detections"][0]) == {"colour", "shape", "box", "area", "confidence"}


def test_aggregate_averages_and_counts_relations_only_where_given():
    scene = make_scene(BENCH_SEED_OFFSET + 2, with_relation=True)
    perfect = evaluate(scene.render(), scene.layout(), scene.relation)
    blank = evaluate(Image.new("RGB", (64, 64), "white"), scene.layout())
    out = aggregate([perfect, blank])
    assert out["object_in_box"] == 0.5 and out["count_ok"] == 0.5 and out["colour_acc"] == 0.5
    assert out["relation_ok"] == 1.0 and out["n_relation_images"] == 1 and out["n_images"] == 2
    assert out["n_detections"] == len(scene.objects) / 2
    json.dumps(out)
    assert "relation_ok" not in aggregate([blank]) and aggregate([])["n_images"] == 0


def test_invalid_layouts_and_relations_are_rejected():
    image = Image.new("RGB", (64, 64), "white")
    layout = _scene(RED_CIRCLE, BLUE_SQUARE).layout()
    with pytest.raises(ValueError, match="relation"):
        evaluate(image, layout, (0, "inside", 1))
    with pytest.raises(ValueError, match="range"):
        evaluate(image, layout, (0, "left of", 2))
    with pytest.raises(ValueError, match="shapes-world"):
        evaluate(image, Layout(prompt="a cat", regions=(Region("a cat", box=(0, 0, 0.5, 0.5)),), width=64, height=64))
    with pytest.raises(ValueError, match="no regions"):
        evaluate(image, Layout(prompt="nothing", regions=(), width=64, height=64))


def test_detection_is_a_frozen_dataclass():
    (det,) = detect(_scene(RED_CIRCLE).render())
    assert isinstance(det, Detection)
    with pytest.raises(AttributeError):
        det.colour = "blue"  # type: ignore[misc]
