"""benchmarks/overhead.py --accuracy: each configuration's budget reaches the pipeline, and the suite seed, batch and
phrase form reach the box benchmark (docs/results/cost.md, "Accuracy of the budget options")."""

from __future__ import annotations

import json
from typing import Any

import pytest

import layoutguide.bench.shapes_bench as shapes_bench
from layoutguide.guidance import GuidanceBudget


@pytest.fixture(scope="module")
def overhead(load_benchmark):
    return load_benchmark("overhead")


def test_budget_keys_combine(overhead):
    method, budget = overhead.parse_config("layout-guidance@it3/t900")
    assert method == "layout-guidance"
    assert budget == GuidanceBudget(max_iterations=3, min_timestep=900)
    assert overhead.parse_config("refocus@it4")[1].max_iterations == 4
    assert overhead.parse_config("none") == (None, GuidanceBudget())
    with pytest.raises(SystemExit, match="unknown budget 't650'"):
        overhead.parse_config("refocus@t650")


def test_accuracy_runs_each_configuration_with_its_budget_seed_and_batch(overhead, monkeypatch, tmp_path):
    calls: list[dict[str, Any]] = []

    def fake_bench(pipe, methods, **kwargs):
        pipe(seen="call")  # what the runner does: calls the pipeline without a budget of its own
        calls.append({"methods": [m.label for m in methods], **kwargs})
        return {"methods": {methods[0].label: {"object_in_box": 0.25 * len(calls)}}}

    budgets: list[GuidanceBudget] = []

    class Pipe:
        def __call__(self, **kwargs: Any) -> None:
            budgets.append(kwargs["guidance_budget"])

    monkeypatch.setattr(shapes_bench, "run_shapes_bench", fake_bench)
    scores = overhead.accuracy(Pipe(), ["refocus@t700", "refocus"], 5, tmp_path, seed=1, batch=16)
    assert scores == {"refocus@t700": 0.25, "refocus": 0.5}
    assert budgets == [GuidanceBudget(min_timestep=700), GuidanceBudget()]
    assert [(c["n"], c["seed"], c["batch_size"], c["methods"]) for c in calls] == [(5, 1, 16, ["refocus"])] * 2
    assert [c["out"] for c in calls] == [tmp_path / "refocus_t700", tmp_path / "refocus"]  # a folder per config
    assert [c["phrase_forms"] for c in calls] == [("bare",)] * 2
    calls.clear()
    overhead.accuracy(Pipe(), ["refocus@t700"], 5, tmp_path, phrase_form="article")
    assert calls[0]["phrase_forms"] == ("article",)
    assert calls[0]["out"] == tmp_path / "refocus_t700_article"  # beside the bare run's folder, not in it


def test_phrase_form_is_checked_before_anything_loads(overhead):
    assert overhead.checked_phrase_form("caps") == "caps"
    with pytest.raises(SystemExit, match=r"^--phrase-form: unknown form 'plural'; use one of bare, article"):
        overhead.checked_phrase_form("plural")


@pytest.mark.slow  # the box benchmark on two layouts with the tiny pipeline: about 3 s
def test_accuracy_run_records_its_phrase_form(overhead, monkeypatch, tmp_path):
    monkeypatch.setattr(
        "sys.argv",
        ["overhead.py", "--model", "tiny", "--repeats", "0", "--methods", "none", "--accuracy", "2"]
        + ["--phrase-form", "article", "--accuracy-out", str(tmp_path / "acc"), "--out", str(tmp_path / "t.md")],
    )
    overhead.main()
    assert "phrase form article" in (tmp_path / "t.md").read_text()
    results = json.loads((tmp_path / "acc" / "none_article" / "results.json").read_text())
    assert results["config"]["phrase_forms"] == ["article"]
    assert list(results["methods"]) == ["none (article)"]
