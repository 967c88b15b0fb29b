"""Benchmark harness: resume skips finished images, and refuses a folder made with other settings."""

import dataclasses
import io
import json

import numpy as np
from PIL import Image

import pytest

from layoutguide.bench import BenchResumeError, MethodSpec, model_fingerprint, run_shapes_bench
from layoutguide.pipeline import LayoutPipeline

from conftest import tiny_shapes_components


def test_resume_skips_done_images_and_refuses_other_settings(tiny_pipe, tmp_path):
    specs = [MethodSpec("none", None), MethodSpec("refocus", "refocus", {"loss_scale": 2.0})]
    first = run_shapes_bench(tiny_pipe, specs, n=2, seed=3, out=tmp_path, steps=2, progress=False)
    images = sorted((tmp_path / "images").rglob("*.png"))
    assert len(images) == 4 and set(first["methods"]) == {"none", "refocus"}
    stamps = {p: p.stat().st_mtime_ns for p in images}
    before = images[0].read_bytes()
    images[0].unlink()  # an interrupted run: one image missing
    again = run_shapes_bench(tiny_pipe, specs, n=2, seed=3, out=tmp_path, steps=2, progress=False)
    assert images[0].exists() and all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != images[0])
    # per-(prompt, sample) seeds: the same image again, up to float noise of a batch of 1 instead of 2
    diff = np.abs(np.asarray(Image.open(images[0]), dtype=int) - np.asarray(Image.open(io.BytesIO(before)), dtype=int))
    assert diff.max() <= 2, diff.max()
    assert len((tmp_path / "timings.jsonl").read_text().splitlines()) == 5  # 4 + the one regenerated

    with pytest.raises(BenchResumeError, match="refocus.*loss_scale"):
        run_shapes_bench(tiny_pipe, [MethodSpec("refocus", "refocus", {"loss_scale": 9.0})], n=2, seed=3, out=tmp_path, steps=2, progress=False)
    with pytest.raises(BenchResumeError, match="steps=2.*steps=3"):
        run_shapes_bench(tiny_pipe, specs[:1], n=2, seed=3, out=tmp_path, steps=3, progress=False)
    other_model = LayoutPipeline(**tiny_shapes_components(seed=1))
    assert model_fingerprint(other_model) != model_fingerprint(tiny_pipe)
    with pytest.raises(BenchResumeError, match="model="):
        run_shapes_bench(other_model, specs[:1], n=2, seed=3, out=tmp_path, steps=2, progress=False)
    # a new method joins the same run
    run_shapes_bench(tiny_pipe, [MethodSpec("pww", "pww")], n=2, seed=3, out=tmp_path, steps=2, progress=False)
    assert set(json.loads((tmp_path / "run.json").read_text())["methods"]) == {"none", "refocus", "pww"}


def test_relation_score_names_the_first_cause_of_a_failure():
    from layoutguide.bench import _relation_ok
    from layoutguide.shapes.world import ShapeObject, Scene, render_objects

    red = ShapeObject("red", "circle", (4, 20, 24, 40))
    blue = ShapeObject("blue", "square", (40, 20, 60, 40))
    layout = Scene(seed=0, objects=(red, blue)).layout()
    subject, obj = ("red", "circle"), ("blue", "square")

    def score(*objects):
        return _relation_ok(render_objects(objects), layout, subject, "left of", obj)

    assert score(red, blue)["relation_ok"] and score(red, blue)["failure"] is None
    swapped = (ShapeObject("red", "circle", blue.box), ShapeObject("blue", "square", red.box))
    assert score(*swapped)["failure"] == "placement"
    assert score(red, ShapeObject("blue", "triangle", blue.box))["failure"] == "attributes"
    assert score(red, ShapeObject("red", "square", blue.box))["failure"] == "attributes"  # colour bound to the wrong object
    assert score(red)["failure"] == "objects"
    assert score(red, blue, ShapeObject("green", "circle", (24, 44, 40, 60)))["relation_ok"]  # an extra object does not break the relation


def test_relation_bench_writes_failure_split_and_resumes(tiny_pipe, tmp_path):
    from layoutguide.bench import RELATION_FAILURES, run_relation_bench

    saved = tiny_pipe.model_defaults
    tiny_pipe.model_defaults = {**saved, "num_inference_steps": 2}
    try:
        first = run_relation_bench(tiny_pipe, ["rule"], [MethodSpec("none", None)], n=2, out=tmp_path, progress=False)
        row = first["rows"]["rule + none"]
        assert row["relation_acc"] + sum(row["failures"][f] for f in RELATION_FAILURES) == pytest.approx(1.0)
        assert "failed: attributes" in (tmp_path / "report.md").read_text()
        images = sorted((tmp_path / "images").rglob("*.png"))
        stamps = [p.stat().st_mtime_ns for p in images]
        again = run_relation_bench(tiny_pipe, ["rule"], [MethodSpec("none", None)], n=2, out=tmp_path, progress=False)
        assert [p.stat().st_mtime_ns for p in images] == stamps and again["rows"] == first["rows"]
        # a planner that now places other boxes must not be scored against the old images
        from layoutguide import planner as planner_module

        original = planner_module.RuleBasedPlanner.plan

        def moved(self, prompt):
            result = original(self, prompt)
            regions = [dataclasses.replace(r, box=(r.bbox[0] * 0.9, r.bbox[1], r.bbox[2] * 0.9, r.bbox[3])) for r in result.layout.regions]
            return planner_module.PlanResult(result.layout.replace(regions=tuple(regions)), result.notes, result.fallback)

        planner_module.RuleBasedPlanner.plan = moved
        try:
            with pytest.raises(BenchResumeError, match="layouts\\[rule\\]"):
                run_relation_bench(tiny_pipe, ["rule"], [MethodSpec("none", None)], n=2, out=tmp_path, progress=False)
        finally:
            planner_module.RuleBasedPlanner.plan = original
    finally:
        tiny_pipe.model_defaults = saved
