"""The real accuracy test of the public-suite harness: shapes-world layouts written in COCO-MIG's file format, run
through ``bench suite`` with the shapes world's exact evaluator as the detector, reproduce ``bench shapes`` on the
same layouts and seeds.

The relation is exact under COCO-MIG's one-to-one matching (each (colour, object) group matched to detections of
that colour by maximum summed IoU, the shapes benchmark's rule) at score threshold 0 (``bench shapes`` keeps every
detection): every instance's success is the region's object-in-box verdict, so "ISR per image" equals
``bench shapes``' object-in-box and pooled ISR equals the share of regions in their box. Under the paper's
max-IoU matching an instance can also claim a detection of another instance (never fewer successes from that) or
lose to a better-placed detection of another colour; the test checks what that rule gives from the same
detections, computed independently here.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from layoutguide.bench import run_shapes_bench, shapes_layout_suite
from layoutguide.bench.detectors import load_detector
from layoutguide.bench.public import load_suite
from layoutguide.bench.public.base import box_iou
from layoutguide.bench.public.run import run_suite
from layoutguide.spec import MethodSpec

N = 3
STEPS = 8  # fewer than the model's 30: the relation is exact at any step count, and 2 cores are shared


def write_mig_json(path, layouts) -> None:
    """MIG_Bench's JSON: {id: {"caption", "segment": [{"label": "red circle", "bbox": [x0, y0, x1, y1]}]}}."""
    data = {
        str(k): {"caption": lay.prompt, "segment": [{"label": r.phrase, "bbox": list(r.box)} for r in lay.regions]}
        for k, lay in enumerate(layouts)
    }
    path.write_text(json.dumps(data))


def no_colour_check(image, box, mask=None):
    raise AssertionError("the shapes detector gives every detection's colour")


@pytest.mark.slow
def test_bench_suite_on_shapes_layouts_reproduces_bench_shapes(shipped, tmp_path):
    methods = [MethodSpec("none", None), MethodSpec("refocus", "refocus")]
    layouts = shapes_layout_suite(N, 0).layouts
    data = tmp_path / "mig_shapes.json"
    write_mig_json(data, layouts)
    shapes = run_shapes_bench(
        shipped, methods, n=N, seed=0, out=tmp_path / "shapes", steps=STEPS, batch_size=N, progress=False
    )

    suite = load_suite("coco-mig", data, matching="one-to-one")
    suite.score_threshold = 0.0
    for entry, layout in zip(suite.entries, layouts, strict=True):  # the model is given the very same layouts
        assert (entry.layout.prompt, entry.layout.regions) == (layout.prompt, layout.regions)
    detector = load_detector("shapes")
    results = run_suite(
        shipped, suite, methods, detector, no_colour_check, out=tmp_path / "suite", steps=STEPS, batch_size=N,
        progress=False,
    )  # fmt: skip
    assert results is not None
    for spec in methods:
        label = spec.label
        expected_regions = [r["in_box"] for image in shapes["images"][label] for r in image["regions"]]
        assert results["methods"][label]["image_isr"] == pytest.approx(shapes["methods"][label]["object_in_box"])
        assert results["methods"][label]["isr"] == pytest.approx(np.mean(expected_regions))
        assert results["methods"][label]["n_instances"] == len(expected_regions)
        # image by image: the same images (same seeds), the same verdicts
        for k in range(N):
            a = (tmp_path / "shapes" / "images" / label / f"{k:04d}.png").read_bytes()
            assert a == (tmp_path / "suite" / "images" / label / f"{k:04d}.png").read_bytes()
            record = json.loads((tmp_path / "suite" / "scores" / label / f"{k:04d}.json").read_text())
            assert [i["success"] for i in record["instances"]] == [
                r["in_box"] for r in shapes["images"][label][k]["regions"]
            ]

    # The paper's rule from the same detections, computed here from bench shapes' own detection list.
    paper = load_suite("coco-mig", data)
    paper.score_threshold = 0.0
    shutil.copytree(tmp_path / "suite" / "images", tmp_path / "paper" / "images")  # the same images, rescored
    paper_results = run_suite(
        shipped, paper, methods, detector, no_colour_check, out=tmp_path / "paper", steps=STEPS, batch_size=N,
        progress=False,
    )  # fmt: skip
    assert paper_results is not None
    for spec in methods:
        successes = []
        for k, layout in enumerate(layouts):
            found = shapes["images"][spec.label][k]["detections"]
            for region in layout.regions:
                colour, _, noun = region.phrase.partition(" ")
                shape = noun.rstrip("s")
                same = [d for d in found if d["shape"] == shape]
                ious = [box_iou(region.box, d["box"]) for d in same]
                best = int(np.argmax(ious)) if ious else None
                successes.append(best is not None and ious[best] >= 0.5 and same[best]["colour"] == colour)
        assert paper_results["methods"][spec.label]["isr"] == pytest.approx(np.mean(successes))
