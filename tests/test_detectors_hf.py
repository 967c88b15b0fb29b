"""Grounding DINO and OWLv2 through transformers: tiny random-weight models built in code, saved to a tmp folder
and loaded with ``load_detector(name, folder)``; the plumbing (labels back verbatim, boxes relative to the original
image, thresholds, NMS, chunking) and the one-line errors for missing or wrong weights."""

from __future__ import annotations

import json
import re
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from layoutguide.bench.detectors import load_detector
from layoutguide.bench.detectors.hf import box_iou, nms
from layoutguide.bench.detectors.testing import save_tiny_grounding_dino, save_tiny_owlv2
from layoutguide.errors import InputError


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def check_detections(found, asked):
    assert found, "the random model at threshold 0 should find something"
    for d in found:
        assert d.label in asked
        x0, y0, x1, y1 = d.box
        assert 0.0 <= x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0
        assert 0.0 <= d.score <= 1.0 and d.mask is None


def boxes_of(found, label):
    return sorted(d.box for d in found if d.label == label)


# ---- errors before any model is built, and the shared helpers (fast) ----


def test_nms_keeps_the_best_of_each_overlapping_cluster():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9], [21, 20, 30, 30]], float)
    scores = np.array([0.5, 0.9, 0.3, 0.6, 0.8])
    # IoU([1,1,11,11], [0,0,10,10]) = 81/119 = 0.68; with [0,0,10,9]: 72/118 = 0.61; IoU([0,0,10,10], [0,0,10,9]) = 0.9
    assert nms(boxes, scores, 0.5) == [1, 4]
    assert nms(boxes, scores, 0.65) == [1, 4, 3]
    assert nms(boxes, scores, 0.95) == [1, 4, 3, 0, 2]  # the two 0.9 overlaps now pass
    assert nms(boxes, scores, 0.89) == [1, 4, 3]
    assert nms(boxes[:0], scores[:0], 0.5) == []


@pytest.mark.parametrize("name", ["grounding-dino", "owlv2"])
def test_missing_weights_are_one_line(name, tmp_path):
    with pytest.raises(InputError, match=f"detector_weights: the {name} detector needs a local folder"):
        load_detector(name)
    with pytest.raises(InputError, match="is not a folder"):
        load_detector(name, str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="has no config.json"):
        load_detector(name, str(tmp_path))


def test_wrong_model_and_pickled_weights_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "owlv2"}))
    with pytest.raises(InputError, match="holds a 'owlv2' model, not 'grounding-dino'"):
        load_detector("grounding-dino", str(tmp_path))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(InputError, match=r"no \.safetensors weights \(pickled \.bin files are never loaded\)"):
        load_detector("owlv2", str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="is not a JSON config"):
        load_detector("owlv2", str(tmp_path))


class BrokenTransformers(types.ModuleType):
    """What ``import transformers`` gives when torchvision is a build for another torch: every model is missing."""

    def __getattr__(self, name):
        raise ModuleNotFoundError(
            f"Could not import module {name!r}. Are this object's requirements defined correctly?"
        )


@pytest.mark.parametrize("name", ["grounding-dino", "owlv2"])
def test_a_broken_transformers_import_is_one_line(name, tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": name}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "transformers", BrokenTransformers("transformers"))
    with pytest.raises(InputError, match=f"detector: {name} cannot import its transformers classes .* torchvision"):
        load_detector(name, str(tmp_path))


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("grounding-dino", {"box_threshold": "high"}, "box_threshold: 'high' is not a number"),
        ("grounding-dino", {"text_threshold": 1.5}, r"text_threshold: 1.5 is outside \[0, 1\]"),
        ("grounding-dino", {"separate_queries": "maybe"}, "separate_queries: 'maybe' is not yes/no"),
        ("owlv2", {"query_template": "a photo"}, "query_template: 'a photo' needs exactly one"),
        ("owlv2", {"nms_iou": -0.1}, "nms_iou: -0.1 is outside"),
        ("owlv2", {"device": "gpu:banana"}, "device: 'gpu:banana' is not a torch device"),
        ("grounding-dino", {"device": f"cuda:{torch.cuda.device_count()}"}, "is not available here"),
    ],
)
def test_bad_options_are_one_line(name, options, message, tmp_path):
    with pytest.raises(InputError, match=message):
        load_detector(name, str(tmp_path), **options)


# ---- Grounding DINO (tiny, random) ----


@pytest.fixture(scope="module")
def gd_folder(tmp_path_factory):
    return save_tiny_grounding_dino(tmp_path_factory.mktemp("grounding-dino"))


@pytest.mark.slow
def test_grounding_dino_maps_labels_back_verbatim(gd_folder):
    detector = load_detector("grounding-dino", str(gd_folder), box_threshold=0, text_threshold=0, nms_iou=1)
    assert detector.name == "grounding-dino" and "box >= 0" in detector.description
    asked = ["a cat", "Red Dog", "red dog", "dog.", "a cat"]
    found = detector.detect(noise_image(80, 48), asked)
    check_detections(found, asked)
    # "Red Dog" and "red dog" are one text to the model: both are answered, with the same boxes.
    assert boxes_of(found, "Red Dog") == boxes_of(found, "red dog")
    assert len(found) == len({(d.label, d.box) for d in found}), "a label asked twice is answered once"
    with pytest.raises(InputError, match="labels: 'dog' is one string"):
        detector.detect(noise_image(80, 48), "dog")
    with pytest.raises(InputError, match=re.escape("labels: '.?.' has no words")):
        detector.detect(noise_image(80, 48), [".?."])


@pytest.mark.slow
def test_grounding_dino_boxes_and_scores_match_transformers_post_processing(gd_folder):
    detector = load_detector("grounding-dino", str(gd_folder), box_threshold=0.3, text_threshold=0, nms_iou=1)
    image = noise_image(96, 40, seed=1)
    found = detector.detect(image, ["traffic light"])
    inputs = detector.processor(images=image, text="traffic light.", return_tensors="pt")
    with torch.no_grad():
        outputs = detector.model(**inputs)
    reference = detector.processor.post_process_grounded_object_detection(
        outputs, inputs.input_ids, threshold=0.3, text_threshold=0.0, target_sizes=[(image.height, image.width)]
    )[0]
    expected = sorted(
        (tuple(np.clip(b.numpy() / [96, 40, 96, 40], 0, 1)), float(s))
        for b, s in zip(reference["boxes"], reference["scores"])
    )
    got = sorted((d.box, d.score) for d in found)
    assert len(got) == len(expected) > 0
    for (box, score), (want_box, want_score) in zip(got, expected):
        assert np.allclose(box, want_box, atol=1e-5) and score == pytest.approx(want_score, abs=1e-6)


@pytest.mark.slow
def test_grounding_dino_thresholds_and_nms_are_honoured(gd_folder):
    image, asked = noise_image(64, 64, seed=2), ["a cat", "dog"]
    everything = load_detector("grounding-dino", str(gd_folder), box_threshold=0, text_threshold=0, nms_iou=1)
    all_found = everything.detect(image, asked)
    cut = float(np.median([d.score for d in all_found]))
    fewer = load_detector("grounding-dino", str(gd_folder), box_threshold=cut, text_threshold=0, nms_iou=1)
    kept = fewer.detect(image, asked)
    assert 0 < len(kept) < len(all_found) and all(d.score > cut for d in kept)
    strict_text = load_detector("grounding-dino", str(gd_folder), box_threshold=0, text_threshold=0.9999, nms_iou=1)
    assert len(strict_text.detect(image, asked)) < len(all_found)
    suppressed = load_detector("grounding-dino", str(gd_folder), box_threshold=0, text_threshold=0, nms_iou=0.1)
    after_nms = suppressed.detect(image, asked)
    assert {(d.label, d.box) for d in after_nms} <= {(d.label, d.box) for d in all_found}
    for label in asked:
        boxes = np.array(boxes_of(after_nms, label))
        for i in range(len(boxes)):
            assert (box_iou(boxes[i], np.delete(boxes, i, axis=0)) <= 0.1 + 1e-9).all()


@pytest.mark.slow
def test_grounding_dino_splits_long_label_lists_and_refuses_overlong_labels(gd_folder):
    joined = load_detector("grounding-dino", str(gd_folder), box_threshold=0, text_threshold=0, nms_iou=1)
    asked = [f"{colour} {thing}" for colour in ("red", "blue", "green") for thing in ("cat", "dog", "car", "apple")]
    assert joined._token_count([t.lower() for t in asked]) > joined.max_tokens  # 12 labels overflow 32 tokens
    assert len(joined._groups(asked)) > 1
    found = joined.detect(noise_image(64, 48), asked)
    check_detections(found, asked)
    separate = load_detector("grounding-dino", str(gd_folder), separate_queries=True, box_threshold=0, nms_iou=1)
    assert separate._groups(asked[:3]) == [[a] for a in asked[:3]]
    check_detections(separate.detect(noise_image(64, 48), asked[:3]), asked[:3])
    with pytest.raises(InputError, match="longer than the model's 32 tokens"):
        joined.detect(noise_image(64, 48), [" ".join(["red"] * 40)])


# ---- OWLv2 (tiny, random) ----


@pytest.fixture(scope="module")
def owl_folder(tmp_path_factory):
    return save_tiny_owlv2(tmp_path_factory.mktemp("owlv2"))


@pytest.mark.slow
@pytest.mark.parametrize(("width", "height"), [(96, 48), (40, 100)])
def test_owlv2_boxes_come_back_relative_to_the_unpadded_image(owl_folder, width, height):
    detector = load_detector("owlv2", str(owl_folder), score_threshold=0.2)
    image = noise_image(width, height, seed=3)
    asked = ["cat", "dog"]
    found = detector.detect(image, asked)
    check_detections(found, asked)
    # transformers' own post-processing (which knows OWLv2 pads to a square) in pixels of the original image
    queries = [detector.query_template.format(label) for label in asked]
    inputs = detector.processor(text=[queries], images=image, return_tensors="pt")
    with torch.no_grad():
        outputs = detector.model(**inputs)
    reference = detector.processor.image_processor.post_process_object_detection(
        outputs, threshold=0.2, target_sizes=[(height, width)]
    )[0]
    size = np.array([width, height, width, height])
    expected = sorted(
        (
            (float(score), asked[int(label)], tuple(np.clip(box.numpy(), 0, size) / size))
            for box, score, label in zip(reference["boxes"], reference["scores"], reference["labels"])
        ),
        key=lambda row: row[0],
    )
    got = sorted(((d.score, d.label, d.box) for d in found), key=lambda row: row[0])
    assert len(got) == len(expected)
    for (score, label, box), (want_score, want_label, want_box) in zip(got, expected):
        assert label == want_label and score == pytest.approx(want_score, abs=1e-6)
        assert np.allclose(box, want_box, atol=1e-5)


@pytest.mark.slow
def test_owlv2_labels_thresholds_and_nms(owl_folder):
    image = noise_image(64, 64, seed=4)
    everything = load_detector("owlv2", str(owl_folder), score_threshold=0, query_template="{}")
    asked = ["Dog", "dog", "a cat"]
    found = everything.detect(image, asked)
    check_detections(found, asked)
    assert boxes_of(found, "Dog") == boxes_of(found, "dog")  # one query to CLIP's lowercasing tokenizer
    cut = float(np.median([d.score for d in found]))
    kept = load_detector("owlv2", str(owl_folder), score_threshold=cut, query_template="{}").detect(image, asked)
    assert 0 < len(kept) < len(found) and all(d.score >= cut for d in kept)
    suppressing = load_detector("owlv2", str(owl_folder), score_threshold=0, nms_iou=0.2, query_template="{}")
    after = suppressing.detect(image, asked)
    assert len(after) < len(found)
    for label in asked:
        boxes = np.array(boxes_of(after, label))
        for i in range(len(boxes)):
            assert (box_iou(boxes[i], np.delete(boxes, i, axis=0)) <= 0.2 + 1e-9).all()
    assert everything.detect(image, []) == []
    with pytest.raises(InputError, match="labels: 'red dog red dog .*' makes a query over OWLv2's 16 tokens"):
        everything.detect(image, [" ".join(["red dog"] * 10), "cat"])
