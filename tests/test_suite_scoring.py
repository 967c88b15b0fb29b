"""Each suite's scoring on hand-made detections whose right answer is worked out here: the papers' rules, and the
places where the harness's rules differ from them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_suite_formats import coco_file, write_nsr, write_refocus_folder

from layoutguide.bench.detectors.base import Detection
from layoutguide.bench.public import load_suite
from layoutguide.bench.public.hrs import relations_hold
from layoutguide.bench.public.nsr import spatial_relation

IMAGE = Image.new("RGB", (64, 64), "white")


def det(label, box, score=0.9, colour=None, mask=None):
    return Detection(label, tuple(box), score, mask, {"colour": colour} if colour else {})


def no_colour(image, box, mask=None):
    raise AssertionError("every detection here carries its colour")


@pytest.fixture
def mig(tmp_path):
    path = tmp_path / "mig.json"
    path.write_text(
        '{"0": {"caption": "two red apples", "segment": [{"label": "red apple", "bbox": [0.0, 0.0, 0.5, 0.5]}, '
        '{"label": "red apple", "bbox": [0.05, 0.05, 0.5, 0.5]}]}}'
    )
    return path


def test_coco_mig_max_iou_lets_two_instances_share_a_detection_one_to_one_does_not(mig):
    one_detection = [det("apple", (0.0, 0.0, 0.5, 0.5), colour="red")]
    paper = load_suite("coco-mig", mig)
    record = paper.score(paper.entries[0], IMAGE, one_detection, no_colour)
    assert [i["success"] for i in record["instances"]] == [True, True]  # MIG_Bench's rule: each instance's best
    strict = load_suite("coco-mig", mig, matching="one-to-one")
    record = strict.score(strict.entries[0], IMAGE, one_detection, no_colour)
    assert [i["success"] for i in record["instances"]] == [True, False]
    assert strict.aggregate([record], strict.entries) == {
        "isr": 0.5, "miou": pytest.approx(0.5), "sr": 0.0, "image_isr": 0.5, "n_instances": 2.0
    }  # fmt: skip


def test_coco_mig_wrong_colour_zeroes_miou_and_a_low_iou_keeps_it(mig):
    suite = load_suite("coco-mig", mig)
    wrong = suite.score(suite.entries[0], IMAGE, [det("apple", (0.0, 0.0, 0.5, 0.5), colour="green")], no_colour)
    assert [i["miou"] for i in wrong["instances"]] == [0.0, 0.0] and not any(i["success"] for i in wrong["instances"])
    far = suite.score(suite.entries[0], IMAGE, [det("apple", (0.3, 0.3, 0.8, 0.8), colour="green")], no_colour)
    iou = (0.2 * 0.2) / (0.25 + 0.25 - 0.04)
    assert far["instances"][0]["miou"] == pytest.approx(iou)  # below 0.5: the IoU counts, colour unchecked
    weak = suite.score(suite.entries[0], IMAGE, [det("apple", (0, 0, 0.5, 0.5), score=0.2, colour="red")], no_colour)
    assert not weak["instances"][0]["success"]  # under Grounding DINO's 0.25 box threshold


def test_coco_mig_asks_the_colour_check_when_the_detector_gives_no_colour(mig):
    suite = load_suite("coco-mig", mig)
    asked = []

    def colour(image, box, mask=None):
        asked.append(box)
        return "red"

    record = suite.score(suite.entries[0], IMAGE, [det("apple", (0.0, 0.0, 0.5, 0.5))], colour)
    assert record["instances"][0]["success"] and asked == [(0.0, 0.0, 0.5, 0.5)]


def test_nsr_relations_follow_layoutgpt_centre_angle_rule():
    left, right, up = (0.0, 0.4, 0.2, 0.6), (0.8, 0.4, 1.0, 0.6), (0.4, 0.0, 0.6, 0.2)
    assert spatial_relation(left, right) == "left" and spatial_relation(right, left) == "right"
    assert spatial_relation(up, right) == "diagonal" and spatial_relation(up, (0.4, 0.8, 0.6, 1.0)) == "top"
    assert spatial_relation(left, left) == "diagonal"


def test_nsr_counting_and_spatial_verdicts(tmp_path):
    write_nsr(tmp_path)
    counting = load_suite("nsr-1k", tmp_path / "counting.val.json")
    clocks = [det("clock", (0, 0, 0.1, 0.1)), det("clock", (0.5, 0.5, 0.6, 0.6)), det("clock", (0, 0, 1, 1), 0.5)]
    assert counting.score(counting.entries[0], IMAGE, clocks, no_colour)["verdicts"] == [True]  # 0.5 < GLIP's 0.7
    more_cats = [det("dog", (0, 0, 0.1, 0.1))] + [det("cat", (0.1 * i, 0.5, 0.1 * i + 0.1, 0.6)) for i in range(3)]
    assert counting.score(counting.entries[1], IMAGE, more_cats, no_colour)["verdicts"] == [True]
    assert counting.score(counting.entries[1], IMAGE, more_cats[:1], no_colour)["verdicts"] == [False]
    spatial = load_suite("nsr-1k", tmp_path / "spatial.val.json")
    ok = [det("toilet", (0.0, 0.4, 0.2, 0.6)), det("dog", (0.7, 0.4, 0.9, 0.6))]
    assert spatial.score(spatial.entries[0], IMAGE, ok, no_colour)["verdicts"] == [True]
    swapped = [det("toilet", (0.7, 0.4, 0.9, 0.6)), det("dog", (0.0, 0.4, 0.2, 0.6))]
    record = spatial.score(spatial.entries[0], IMAGE, swapped, no_colour)
    assert spatial.aggregate([record], spatial.entries) == {"accuracy": 0.0, "n_items": 1.0}


def test_hrs_relations_are_the_repository_edge_checks():
    a, b, c = (0.0, 0.0, 0.3, 0.3), (0.5, 0.5, 0.9, 0.9), (0.6, 0.0, 1.0, 0.2)
    assert relations_hold("spatial", ["on the left of"], [a, b]) and not relations_hold("spatial", ["right"], [a, b])
    assert relations_hold("spatial", ["above"], [a, b]) and relations_hold("size", ["smaller"], [a, b])
    middle = (0.35, 0.0, 0.55, 0.2)
    assert relations_hold("spatial", ["between"], [middle, a, c])
    assert not relations_hold("spatial", ["between"], [a, middle, c])


def test_hrs_counting_is_precision_recall_f1_pooled_over_kinds(tmp_path):
    write_refocus_folder(tmp_path)
    suite = load_suite("hrs-counting", tmp_path)
    cats_dog = [det("cat", (0, 0, 0.1, 0.1)), det("dog", (0.5, 0.5, 0.6, 0.6)), det("dog", (0.7, 0.7, 0.8, 0.8))]
    first = suite.score(suite.entries[0], IMAGE, cats_dog, no_colour)  # cats 1 of 2, dogs 2 of 1
    second = suite.score(suite.entries[1], IMAGE, [det("car", (0, 0, 1, 1))], no_colour)
    scores = suite.aggregate([first, second], suite.entries[:2])
    assert scores["precision"] == pytest.approx(3 / 4) and scores["recall"] == pytest.approx(3 / 4)
    spatial = load_suite("hrs-spatial", tmp_path)
    missing = spatial.score(spatial.entries[0], IMAGE, [det("cat", (0, 0, 0.1, 0.1))], no_colour)
    assert missing == {"present": False, "ok": False}
    both = [det("cat", (0, 0, 0.2, 0.2)), det("dog", (0.5, 0, 0.7, 0.2)), det("dog", (0.0, 0, 0.1, 0.1), 0.6)]
    assert spatial.score(spatial.entries[0], IMAGE, both, no_colour) == {"present": True, "ok": True}  # best dog


def test_coco_ap_is_one_for_the_layout_boxes_and_zero_elsewhere(tmp_path):
    coco_file(tmp_path / "instances_val2017.json")
    suite = load_suite("coco", tmp_path / "instances_val2017.json")
    perfect, off = [], []
    for entry in suite.entries:
        exact = [det(r.phrase, r.box) for r in entry.layout.regions]
        shifted = [det(r.phrase, (0.9, 0.9, 1.0, 1.0)) for r in entry.layout.regions]
        perfect.append(suite.score(entry, IMAGE, exact, no_colour))
        off.append(suite.score(entry, IMAGE, shifted, no_colour))
    assert suite.aggregate(perfect, suite.entries)["ap"] == pytest.approx(1.0)
    assert suite.aggregate(perfect, suite.entries)["ap50"] == pytest.approx(1.0)
    assert suite.aggregate(off, suite.entries)["ap"] == 0.0


def test_coco_mask_iou_and_mask_ap_use_the_instance_masks(tmp_path):
    coco_file(tmp_path / "instances_val2017.json")
    suite = load_suite("coco", tmp_path / "instances_val2017.json")
    records = []
    for entry in suite.entries:
        dets = []
        for region in entry.layout.regions:
            mask = np.zeros((64, 64), bool)
            x0, y0, x1, y1 = (round(v * 64) for v in region.box)
            mask[y0:y1, x0:x1] = True
            dets.append(det(region.phrase, region.box, mask=mask))
        records.append(suite.score(entry, IMAGE, dets, no_colour))
    scores = suite.aggregate(records, suite.entries)
    assert scores["mask_iou"] == pytest.approx(1.0, abs=0.05) and scores["mask_ap"] > 0.9


def test_hrs_colour_asks_each_objects_best_detection_its_colour(tmp_path):
    write_refocus_folder(tmp_path)
    suite = load_suite("hrs-colour", tmp_path)
    entry = suite.entries[0]
    assert suite.labels(entry) == ["car", "bird"]
    good = [det("car", (0, 0, 0.4, 0.4), colour="red"), det("bird", (0.6, 0.6, 1, 1), colour="blue")]
    half = [det("car", (0, 0, 0.4, 0.4), colour="red"), det("bird", (0.6, 0.6, 1, 1), 0.9, colour="red"),
            det("bird", (0, 0, 0.1, 0.1), 0.6, colour="blue")]  # fmt: skip
    records = [suite.score(entry, IMAGE, good, no_colour), suite.score(entry, IMAGE, half, no_colour)]
    assert suite.aggregate(records, [entry, entry]) == {"accuracy": 0.5, "object_accuracy": 0.75}
