"""Benchmark harness: resume skips finished images, and refuses a folder made with other settings."""

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
