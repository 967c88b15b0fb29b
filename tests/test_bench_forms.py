"""Phrase forms in the benchmarks: each form its own rows and folders on the same seeds, recorded in run.json.

Single-object layouts in the article form ("a red square" in "a red square"): phrases every tokenizer version finds
in the prompt, so that these tests check the benchmark, not the phrase matcher."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from layoutguide.bench import BenchResumeError, MethodSpec, run_relation_bench, run_shapes_bench

REFOCUS = [MethodSpec("refocus", "refocus", {"loss_scale": 50.0})]


def bench(pipe, out, forms=("bare",), methods=REFOCUS):
    return run_shapes_bench(
        pipe, methods, n=1, seed=3, out=out, steps=2, max_objects=1, phrase_forms=forms, progress=False
    )


@pytest.mark.slow
def test_each_phrase_form_is_its_own_row_folder_and_record(tiny_pipe, tmp_path):
    results = bench(tiny_pipe, tmp_path, ("bare", "article"))
    assert list(results["methods"]) == ["refocus", "refocus (article)"]
    assert results["config"]["phrase_forms"] == ["bare", "article"]
    bare, article = (
        tmp_path / "images" / "refocus" / "0000.png",
        tmp_path / "images" / "article" / "refocus" / "0000.png",
    )
    a, b = (np.asarray(Image.open(p), dtype=float) for p in (bare, article))
    # tokens.map_phrases selects content words only, so the article changes nothing the sampler sees
    assert np.abs(a - b).max() == 0
    record = json.loads((tmp_path / "run.json").read_text())["methods"]
    assert record["refocus (article)"]["phrase_form"] == "article" and "phrase_form" not in record["refocus"]
    report = (tmp_path / "report.md").read_text()
    assert "| method | object-in-box, bare | object-in-box, article |" in report
    assert "| refocus (article) |" in report

    # one form alone resumes its own folder; bare-only runs write what they always wrote
    stamp = article.stat().st_mtime_ns
    alone = bench(tiny_pipe, tmp_path, ("article",))
    assert article.stat().st_mtime_ns == stamp and list(alone["methods"]) == ["refocus (article)"]
    plain = bench(tiny_pipe, tmp_path / "plain")
    assert "phrase_forms" not in plain["config"]
    assert "object-in-box, bare" not in (tmp_path / "plain" / "report.md").read_text()


def test_a_form_never_resumes_into_another_forms_record(tiny_pipe, tmp_path):
    bench(tiny_pipe, tmp_path, ("article",))
    changed = [MethodSpec("refocus", "refocus", {"loss_scale": 2.0})]
    with pytest.raises(BenchResumeError, match="refocus \\(article\\)"):
        bench(tiny_pipe, tmp_path, ("article",), changed)


def test_relation_bench_runs_phrase_forms(tiny_pipe, tmp_path):
    saved = tiny_pipe.model_defaults
    tiny_pipe.model_defaults = {**saved, "num_inference_steps": 2}
    try:
        results = run_relation_bench(
            tiny_pipe, ["rule"], REFOCUS, n=1, seed=5, out=tmp_path, phrase_forms=("bare", "article"), progress=False
        )
    finally:
        tiny_pipe.model_defaults = saved
    assert list(results["rows"]) == ["rule + refocus", "rule + refocus (article)"]
    assert (tmp_path / "images" / "rule" / "article" / "refocus" / "0000.png").exists()
    assert "relation acc, article" in (tmp_path / "report.md").read_text()
