"""The detector interface: registry, one-line errors, and the shapes world's evaluator as a detector."""

from __future__ import annotations

import pytest

from layoutguide.bench.detectors import DETECTORS, load_detector
from layoutguide.errors import InputError
from layoutguide.shapes.world import ShapeObject, render_objects


def scene_image():
    return render_objects(
        [ShapeObject("red", "circle", (4, 6, 24, 26)), ShapeObject("blue", "square", (34, 30, 58, 54))]
    )


def test_unknown_detector_is_one_line():
    with pytest.raises(InputError, match="detector: unknown 'nope'; choose one of .*shapes"):
        load_detector("nope")


def test_shapes_detector_answers_each_label_with_exact_colour():
    detector = load_detector("shapes")
    assert "shapes" in DETECTORS and detector.name == "shapes"
    found = detector.detect(scene_image(), ["red circle", "square", "green triangle"])
    by_label = {d.label: d for d in found}
    assert set(by_label) == {"red circle", "square"}
    assert by_label["square"].attributes == {"colour": "blue"}
    x0, y0, x1, y1 = by_label["red circle"].box
    assert abs(x0 - 4 / 64) < 0.02 and abs(y1 - 26 / 64) < 0.02
    assert by_label["red circle"].mask is not None and by_label["red circle"].mask.shape == (64, 64)


def test_shapes_detector_refuses_labels_outside_the_world_and_weights():
    with pytest.raises(InputError, match="labels: 'apple'"):
        load_detector("shapes").detect(scene_image(), ["apple"])
    with pytest.raises(InputError, match="detector_weights"):
        load_detector("shapes", "some/path")
