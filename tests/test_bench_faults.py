"""Benchmark faults (issue #17): damaged files are redone and said, files follow the umask, resume compares resolved
settings, bad counts are one clear error, and nothing writes an empty report."""

from __future__ import annotations

import json
import os
import stat

import pytest
from PIL import Image

from layoutguide.bench import BenchResumeError, MethodSpec, run_relation_bench, run_shapes_bench
from layoutguide.errors import LayoutguideError

NONE = [MethodSpec("none", None)]


def bench(pipe, out, notes=None, **kwargs):
    kwargs = {"n": 2, "seed": 3, "steps": 2, "progress": False, **kwargs}
    if notes is not None:
        kwargs["report"] = notes.append
    return run_shapes_bench(pipe, kwargs.pop("methods", NONE), out=out, **kwargs)


@pytest.fixture
def done_run(tiny_pipe, tmp_path):
    """A finished two-image run and its results."""
    return tmp_path, bench(tiny_pipe, tmp_path)


@pytest.mark.slow
def test_torn_last_line_of_timings_is_dropped_and_said(tiny_pipe, done_run):
    out, first = done_run
    with open(out / "timings.jsonl", "a") as f:
        f.write('{"method": "none", "ind')  # a run killed while appending
    (out / "images" / "none" / "0001.png").unlink()
    notes: list[str] = []
    again = bench(tiny_pipe, out, notes)
    assert again["images"] == first["images"]
    assert [n for n in notes if "timings.jsonl" in n and "1 damaged line" in n], notes
    records = [json.loads(line) for line in (out / "timings.jsonl").read_text().splitlines()]
    assert [(r["method"], r["index"]) for r in records] == [("none", 0), ("none", 1), ("none", 1)]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_image_is_generated_again_and_said(tiny_pipe, done_run, damage):
    out, first = done_run
    path = out / "images" / "none" / "0001.png"
    whole = path.read_bytes()
    path.write_bytes(b"" if damage == "empty" else whole[: len(whole) // 2])
    untouched = (out / "images" / "none" / "0000.png").stat().st_mtime_ns
    notes: list[str] = []
    again = bench(tiny_pipe, out, notes)
    assert again["images"] == first["images"]
    assert [n for n in notes if "0001.png" in n and "damaged" in n], notes
    assert len(notes) == 1, notes  # exactly what is damaged, nothing else
    Image.open(path).load()
    assert (out / "images" / "none" / "0000.png").stat().st_mtime_ns == untouched


@pytest.mark.slow
@pytest.mark.parametrize("name", ["results.json", "run.json"])
def test_garbage_results_or_run_json_is_rewritten_and_said(tiny_pipe, done_run, name):
    out, first = done_run
    (out / name).write_text("\x00not json{")
    stamps = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")}
    notes: list[str] = []
    again = bench(tiny_pipe, out, notes)
    assert again["methods"]["none"]["object_in_box"] == first["methods"]["none"]["object_in_box"]
    assert [n for n in notes if name in n and "damaged" in n], notes
    assert json.loads((out / name).read_text())  # whole again
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # no image redone for a damaged record


def test_outputs_follow_the_umask(tiny_pipe, tmp_path):
    old = os.umask(0o022)
    try:
        bench(tiny_pipe, tmp_path, n=1)
        made = [tmp_path / "results.json", tmp_path / "report.md", tmp_path / "run.json", tmp_path / "grid.png"]
        made += list((tmp_path / "images").rglob("*.png"))
        modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in made}
        assert set(modes.values()) == {"0o644"}, modes
    finally:
        os.umask(old)


def test_resume_compares_resolved_sampling_settings(tiny_pipe, tmp_path):
    saved = tiny_pipe.model_defaults
    tiny_pipe.model_defaults = {**saved, "guidance_scale": 3.0, "num_inference_steps": 2}
    try:
        bench(tiny_pipe, tmp_path, n=1, steps=None)  # made without the flags
        stamp = (tmp_path / "images" / "none" / "0000.png").stat().st_mtime_ns
        bench(tiny_pipe, tmp_path, n=1, steps=2, guidance_scale=3.0)  # the model's own values: the same run
        assert (tmp_path / "images" / "none" / "0000.png").stat().st_mtime_ns == stamp
        with pytest.raises(BenchResumeError, match="guidance_scale"):
            bench(tiny_pipe, tmp_path, n=1, steps=2, guidance_scale=4.0)
    finally:
        tiny_pipe.model_defaults = saved


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -1}, "batch_size"),
        ({"max_objects": 0}, "max_objects"),
        ({"max_objects": 9}, "max_objects"),
        ({"n": 0}, "n must"),
        ({"steps": 0}, "steps"),
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"methods": []}, "methods"),
        ({"phrase_forms": ("bare", "shouting")}, "phrase_forms"),
    ],
)
def test_bad_counts_are_one_clear_error_and_write_nothing(tiny_pipe, tmp_path, kwargs, field):
    with pytest.raises(LayoutguideError, match=field) as caught:
        bench(tiny_pipe, tmp_path / "out", **kwargs)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()  # no empty report, no run.json


def test_relation_bench_without_methods_or_planners_writes_nothing(tiny_pipe, tmp_path):
    with pytest.raises(LayoutguideError, match="methods"):
        run_relation_bench(tiny_pipe, ["rule"], [], n=1, out=tmp_path / "a", progress=False)
    with pytest.raises(LayoutguideError, match="planners"):
        run_relation_bench(tiny_pipe, [], NONE, n=1, out=tmp_path / "b", progress=False)
    with pytest.raises(LayoutguideError, match="batch_size"):
        run_relation_bench(tiny_pipe, ["rule"], NONE, n=1, out=tmp_path / "c", batch_size=0, progress=False)
    assert not any((tmp_path / x).exists() for x in "abc")
