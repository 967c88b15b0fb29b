"""Benchmark harness: resume skips finished images, and refuses a folder made with other settings."""

import dataclasses
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from layoutguide.bench import BenchResumeError, MethodSpec, model_fingerprint, run_competence, run_shapes_bench
from layoutguide.testing import tiny_pipeline


@pytest.mark.slow
def test_resume_skips_done_images_and_refuses_other_settings(tiny_pipe, tmp_path):
    specs = [MethodSpec("none", None), MethodSpec("refocus", "refocus", {"loss_scale": 2.0})]
    first = run_shapes_bench(tiny_pipe, specs, n=2, seed=3, out=tmp_path, steps=2, progress=False)
    images = sorted((tmp_path / "images").rglob("*.png"))
    assert len(images) == 4 and set(first["methods"]) == {"none", "refocus"}
    stamps = {p: p.stat().st_mtime_ns for p in images}
    before = images[0].read_bytes()
    images[0].unlink()  # an interrupted run: one image missing
    run_shapes_bench(tiny_pipe, specs, n=2, seed=3, out=tmp_path, steps=2, progress=False)
    assert images[0].exists() and all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != images[0])
    # per-(prompt, sample) seeds: the same image again, up to float noise of a batch of 1 instead of 2
    diff = np.abs(np.asarray(Image.open(images[0]), dtype=int) - np.asarray(Image.open(io.BytesIO(before)), dtype=int))
    assert diff.max() <= 2, diff.max()
    assert len((tmp_path / "timings.jsonl").read_text().splitlines()) == 5  # 4 + the one regenerated

    with pytest.raises(BenchResumeError, match="refocus.*loss_scale"):
        run_shapes_bench(
            tiny_pipe,
            [MethodSpec("refocus", "refocus", {"loss_scale": 9.0})],
            n=2,
            seed=3,
            out=tmp_path,
            steps=2,
            progress=False,
        )
    with pytest.raises(BenchResumeError, match="steps=2.*steps=3"):
        run_shapes_bench(tiny_pipe, specs[:1], n=2, seed=3, out=tmp_path, steps=3, progress=False)
    other_model = tiny_pipeline(seed=1)
    assert model_fingerprint(other_model) != model_fingerprint(tiny_pipe)
    with pytest.raises(BenchResumeError, match="model="):
        run_shapes_bench(other_model, specs[:1], n=2, seed=3, out=tmp_path, steps=2, progress=False)
    # a new method joins the same run
    run_shapes_bench(tiny_pipe, [MethodSpec("pww", "pww")], n=2, seed=3, out=tmp_path, steps=2, progress=False)
    assert set(json.loads((tmp_path / "run.json").read_text())["methods"]) == {"none", "refocus", "pww"}


def test_relation_score_names_the_first_cause_of_a_failure():
    from layoutguide.bench import relation_score
    from layoutguide.shapes.world import Scene, ShapeObject, render_objects

    red = ShapeObject("red", "circle", (4, 20, 24, 40))
    blue = ShapeObject("blue", "square", (40, 20, 60, 40))
    layout = Scene(seed=0, objects=(red, blue)).layout()
    subject, obj = ("red", "circle"), ("blue", "square")

    def score(*objects):
        return relation_score(render_objects(objects), layout, subject, "left of", obj)

    assert score(red, blue)["relation_ok"] and score(red, blue)["failure"] is None
    swapped = (ShapeObject("red", "circle", blue.box), ShapeObject("blue", "square", red.box))
    assert score(*swapped)["failure"] == "placement"
    assert score(*swapped)["wrong"] == ()
    triangle = score(red, ShapeObject("blue", "triangle", blue.box))
    assert triangle["failure"] == "attributes" and triangle["wrong"] == ("shape",)
    red_square = score(red, ShapeObject("red", "square", blue.box))  # colour bound to the wrong object
    assert red_square["failure"] == "attributes" and red_square["wrong"] == ("colour",)
    both = score(red, ShapeObject("green", "circle", blue.box))
    assert both["wrong"] == ("colour", "shape")
    colours_swapped = score(ShapeObject("blue", "circle", red.box), ShapeObject("red", "square", blue.box))
    assert colours_swapped["failure"] == "attributes" and colours_swapped["wrong"] == ("colour", "shape")
    assert score(red)["failure"] == "objects"
    assert score(red, blue, ShapeObject("green", "circle", (24, 44, 40, 60)))[
        "relation_ok"
    ]  # an extra object does not break the relation


def test_chance_rate_of_a_relation():
    from layoutguide.bench import chance_relation_rate

    def pair(relation, k=1):
        return [("", ("red", "circle", k), relation, ("blue", "square", k))]

    one = {r: chance_relation_rate(pair(r), trials=2000) for r in ("left of", "right of", "above", "below")}
    # four directions share the plane: about a quarter each (less the pairs at exactly 45 degrees)
    assert all(0.18 < v < 0.32 for v in one.values()), one
    assert abs(one["left of"] - one["right of"]) < 0.05 and abs(one["above"] - one["below"]) < 0.05
    assert chance_relation_rate(pair("left of", 2), trials=2000) < 0.5 * one["left of"]  # all four pairs must hold
    assert chance_relation_rate(pair("above"), seed=3) == chance_relation_rate(pair("above"), seed=3)


def test_relation_bench_writes_failure_split_and_resumes(tiny_pipe, tmp_path):
    from layoutguide.bench import RELATION_FAILURES, run_relation_bench

    saved = tiny_pipe.model_defaults
    tiny_pipe.model_defaults = {**saved, "num_inference_steps": 2}
    try:
        first = run_relation_bench(tiny_pipe, ["rule"], [MethodSpec("none", None)], n=2, out=tmp_path, progress=False)
        row = first["rows"]["rule + none"]
        assert row["relation_acc"] + sum(row["failures"][f] for f in RELATION_FAILURES) == pytest.approx(1.0)
        assert all(0 <= v <= row["failures"]["attributes"] for v in row["attributes_wrong"].values())
        report = (tmp_path / "report.md").read_text()
        assert (
            (tmp_path / "grid.png").exists()
            and "failed: attributes" in report
            and f"By chance, the relation holds for {first['chance']:.3f}" in report
        )
        images = sorted((tmp_path / "images").rglob("*.png"))
        stamps = [p.stat().st_mtime_ns for p in images]
        again = run_relation_bench(tiny_pipe, ["rule"], [MethodSpec("none", None)], n=2, out=tmp_path, progress=False)
        assert [p.stat().st_mtime_ns for p in images] == stamps and again["rows"] == first["rows"]
        # a planner that now places other boxes must not be scored against the old images
        from layoutguide import planner as planner_module

        original = planner_module.RuleBasedPlanner.plan

        def moved(self, prompt):
            result = original(self, prompt)
            regions = [
                dataclasses.replace(r, box=(r.bbox[0] * 0.9, r.bbox[1], r.bbox[2] * 0.9, r.bbox[3]))
                for r in result.layout.regions
            ]
            return planner_module.PlanResult(
                result.layout.replace(regions=tuple(regions)), result.notes, result.fallback
            )

        planner_module.RuleBasedPlanner.plan = moved
        try:
            with pytest.raises(BenchResumeError, match="layouts\\[rule\\]"):
                run_relation_bench(tiny_pipe, ["rule"], [MethodSpec("none", None)], n=2, out=tmp_path, progress=False)
        finally:
            planner_module.RuleBasedPlanner.plan = original
    finally:
        tiny_pipe.model_defaults = saved


def test_method_variants_in_brackets():
    from layoutguide.bench import split_methods
    from layoutguide.methods import MethodOptionError, parse_spec

    assert split_methods(
        "none, refocus[tokens=last,sar=false],gligen+pww+refocus[refocus.tokens=last;pww.weight=0.2]"
    ) == ["none", "refocus[tokens=last,sar=false]", "gligen+pww+refocus[refocus.tokens=last;pww.weight=0.2]"]
    # --set applies to every entry; the brackets override it for their own entry only
    spec = MethodSpec.parse("refocus[tokens=last,sar=false]", {"refocus": {"loss_scale": 3, "tokens": "all"}})
    assert spec == MethodSpec(
        "refocus[tokens=last,sar=false]", "refocus", {"loss_scale": 3, "tokens": "last", "sar": False}
    )
    assert MethodSpec.parse("refocus", {"refocus": {"loss_scale": 3}}).options == {"loss_scale": 3}
    combo = MethodSpec.parse("gligen+pww+refocus[refocus.tokens=last;pww.weight=0.2]")
    assert combo.method == "gligen+pww+refocus" and combo.options == {
        "refocus": {"tokens": "last"},
        "pww": {"weight": 0.2},
    }
    for bad, says in [
        ("gligen+refocus[tokens=last]", "refocus.OPTION=VALUE"),  # which member?
        ("refocus[tokens=last", "']' last"),
        ("refocus[tokens=first]", "refocus.tokens"),  # the method's own validation names the option
        ("refocus[other.tokens=last]", "bad variant option"),
        ("refocus[tokens]", "bad variant option"),
    ]:
        with pytest.raises(MethodOptionError, match=re.escape(says)):
            parse_spec(bad)


@pytest.mark.slow
def test_bench_runs_variants_side_by_side(tiny_pipe, tmp_path):
    specs = [MethodSpec.parse(m) for m in ("refocus", "refocus[loss_scale=50]")]
    results = run_shapes_bench(tiny_pipe, specs, n=1, seed=3, out=tmp_path, steps=2, progress=False)
    assert set(results["methods"]) == {"refocus", "refocus[loss_scale=50]"}
    a, b = (
        np.asarray(Image.open(tmp_path / "images" / label / "0000.png"), dtype=float) for label in results["methods"]
    )
    assert np.abs(a - b).max() > 0  # the variant's option reached the sampler


def test_competence_records_its_sampling_and_refuses_to_resume_with_other(tiny_pipe, tmp_path):
    first = run_competence(tiny_pipe, n=1, out=tmp_path, steps=1, guidance_scale=2.0, progress=False)
    assert (first["steps"], first["guidance_scale"]) == (1, 2.0)
    assert json.loads((tmp_path / "competence.json").read_text()) == first
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")}
    assert len(stamps) == 2  # one single-object and one two-object image
    assert run_competence(tiny_pipe, n=1, out=tmp_path, steps=1, guidance_scale=2.0, progress=False) == first
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")} == stamps  # resumed: nothing redrawn
    with pytest.raises(BenchResumeError, match="steps=1.*steps=2"):
        run_competence(tiny_pipe, n=1, out=tmp_path, steps=2, guidance_scale=2.0, progress=False)
    with pytest.raises(BenchResumeError, match="guidance_scale=2.0.*guidance_scale=3.0"):
        run_competence(tiny_pipe, n=1, out=tmp_path, steps=1, guidance_scale=3.0, progress=False)
    defaults = run_competence(tiny_pipe, n=1, progress=False)  # None: the model's own, written as such
    assert defaults["steps"] == tiny_pipe.model_defaults.get("num_inference_steps", tiny_pipe.default_steps)
