"""YOLOv8(-seg) through ultralytics: tiny random-weight models built from ultralytics' own model definitions,
saved in the safe format (model.yaml + model.safetensors) and as a pickled .pt, loaded with ``load_detector``.
The tests that need ultralytics skip, with the reason, where it is not installed (``pip install '.[detect]'``)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from layoutguide.bench.detectors import load_detector
from layoutguide.errors import InputError


def ultralytics_or_skip() -> None:
    from layoutguide.bench.detectors.yolo import import_ultralytics

    try:
        import_ultralytics()
    except InputError as exc:
        pytest.skip(str(exc))


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


# ---- errors before ultralytics is imported (fast, always run) ----


def test_weights_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="detector_weights: the yolo detector needs a folder with model.yaml"):
        load_detector("yolo")
    with pytest.raises(InputError, match="does not exist"):
        load_detector("yolo", str(tmp_path / "nowhere.pt"))
    pickle = tmp_path / "yolov8m-seg.pt"
    pickle.write_bytes(b"never unpickled")
    message = r"'yolov8m-seg.pt' is a pickle, which can run code .* pass trust_pickle='yolov8m-seg.pt'"
    with pytest.raises(InputError, match=message):
        load_detector("yolo", str(pickle))
    with pytest.raises(InputError, match=message):
        load_detector("yolo", str(pickle), trust_pickle="other.pt")  # trust names one file, not any


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"score_threshold": "x"}, "score_threshold: 'x' is not a number"),
        ({"nms_iou": 2}, "nms_iou: 2 is outside"),
        ({"image_size": 8}, r"image_size: 8 is outside \[32, 8192\]"),
        ({"max_detections": 0}, "max_detections: 0 is outside"),
        ({"device": f"cuda:{torch.cuda.device_count()}"}, "is not available here"),
    ],
)
def test_bad_options_are_one_line(options, message, tmp_path):
    with pytest.raises(InputError, match=message):
        load_detector("yolo", str(tmp_path), **options)


def test_labels_map_to_class_names():
    from layoutguide.bench.detectors.yolo import class_ids

    names = {0: "person", 16: "dog", 9: "traffic light", 45: "bowl", 27: "tie"}
    asked = ["a dog", "Dogs", "the Traffic  Lights", "bowls", "person", "ties"]
    assert class_ids(asked, names) == {
        "a dog": 16,
        "Dogs": 16,
        "the Traffic  Lights": 9,
        "bowls": 45,
        "person": 0,
        "ties": 27,
    }
    with pytest.raises(InputError, match="labels: 'unicorn' is not one of the yolo model's 5 classes; ask one of: "):
        class_ids(["unicorn"], names)


# ---- tiny random YOLOv8 models (need ultralytics) ----


@pytest.fixture(scope="module")
def seg_folder(tmp_path_factory):
    ultralytics_or_skip()
    from layoutguide.bench.detectors.testing import save_tiny_yolo

    return save_tiny_yolo(tmp_path_factory.mktemp("yolo-seg"), segment=True)


@pytest.fixture(scope="module")
def det_folder(tmp_path_factory):
    ultralytics_or_skip()
    from layoutguide.bench.detectors.testing import save_tiny_yolo

    return save_tiny_yolo(tmp_path_factory.mktemp("yolo-det"), segment=False)


@pytest.mark.slow
def test_segmentation_gives_masks_of_the_image_size_inside_relative_boxes(seg_folder):
    detector = load_detector("yolo", str(seg_folder), score_threshold=0, image_size=64)
    assert detector.name == "yolo" and "YOLOv8-seg" in detector.description
    image = noise_image(96, 40)
    asked = ["a dog", "Dogs", "person"]
    found = detector.detect(image, asked)
    assert found and {d.label for d in found} <= set(asked)
    assert sorted(d.box for d in found if d.label == "a dog") == sorted(d.box for d in found if d.label == "Dogs")
    for d in found:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1 and 0 <= d.score <= 1
        assert d.mask is not None and d.mask.dtype == bool and d.mask.shape == (40, 96) and d.mask.any()
        rows, cols = np.nonzero(d.mask)
        assert cols.min() >= np.floor(x0 * 96) - 1 and cols.max() <= np.ceil(x1 * 96)
        assert rows.min() >= np.floor(y0 * 40) - 1 and rows.max() <= np.ceil(y1 * 40)
    with pytest.raises(InputError, match="labels: 'unicorn' is not one of the yolo model's 80 classes"):
        detector.detect(image, ["unicorn"])


@pytest.mark.slow
def test_thresholds_and_max_detections_are_honoured(det_folder):
    image = noise_image(64, 64, seed=1)
    asked = ["person", "car", "dog"]
    everything = load_detector("yolo", str(det_folder), score_threshold=0, image_size=64)
    assert "YOLOv8 via" in everything.description
    found = everything.detect(image, asked)
    assert len(found) > 3 and all(d.mask is None for d in found)
    cut = float(np.median([d.score for d in found]))
    kept = load_detector("yolo", str(det_folder), score_threshold=cut, image_size=64).detect(image, asked)
    assert 0 < len(kept) < len(found) and all(d.score > cut for d in kept)
    capped = load_detector("yolo", str(det_folder), score_threshold=0, image_size=64, max_detections=3)
    assert len(capped.detect(image, asked)) == 3


@pytest.mark.slow
def test_a_trusted_pickle_loads_and_converts_to_the_same_detector(seg_folder, tmp_path):
    from layoutguide.bench.detectors.yolo import convert_checkpoint

    safe = load_detector("yolo", str(seg_folder), score_threshold=0, image_size=64)
    pickle = tmp_path / "tiny-seg.pt"
    torch.save({"model": safe.model}, pickle)  # what an ultralytics release file holds: the pickled module
    with pytest.raises(InputError, match="trust_pickle='tiny-seg.pt'"):
        load_detector("yolo", str(pickle))
    trusted = load_detector("yolo", str(pickle), trust_pickle="tiny-seg.pt", score_threshold=0, image_size=64)
    converted = load_detector("yolo", str(convert_checkpoint(pickle, tmp_path / "converted")), image_size=64)
    image, asked = noise_image(80, 56, seed=2), ["person", "cat"]
    reference = [(d.label, d.box, d.score) for d in safe.detect(image, asked)]
    assert reference == [(d.label, d.box, d.score) for d in trusted.detect(image, asked)]
    converted.score_threshold = 0.0
    assert reference == [(d.label, d.box, d.score) for d in converted.detect(image, asked)]


@pytest.mark.slow
def test_broken_folders_are_one_line(seg_folder, det_folder, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(seg_folder / "model.yaml", mixed / "model.yaml")
    shutil.copy(det_folder / "model.safetensors", mixed / "model.safetensors")
    with pytest.raises(InputError, match="model.safetensors' does not fit model.yaml"):
        load_detector("yolo", str(mixed))
    (mixed / "model.safetensors").unlink()
    with pytest.raises(InputError, match="needs model.yaml and model.safetensors"):
        load_detector("yolo", str(mixed))
    shutil.copy(seg_folder / "model.safetensors", mixed / "model.safetensors")
    (mixed / "model.yaml").write_text("backbone: []\nhead: []\nnc: 2\nnames: [a]\n")
    with pytest.raises(InputError, match="1 names for nc=2 classes"):
        load_detector("yolo", str(mixed))
