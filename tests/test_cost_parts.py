"""benchmarks/cost_parts.py: the schedule it composes is the one the pipeline runs, and its clock times the library's
own calls (docs/results/cost.md, "Setting 2, measured")."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest
import torch

from layoutguide.bench import shapes_suite
from layoutguide.guidance import GuidanceBudget
from layoutguide.testing import tiny_pipeline

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def cost_parts():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))  # it imports its sibling overhead.py
        spec = importlib.util.spec_from_file_location("cost_parts", BENCHMARKS / "cost_parts.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)
    return tiny_pipeline()


LAYOUTS = [s.layout() for s in shapes_suite(1, seed=5, n_objects=(2, 2))]


@pytest.mark.parametrize(
    ("method", "budget"),
    [("zestguide", GuidanceBudget()), ("zestguide", GuidanceBudget(min_timestep=500)), ("boxdiff", GuidanceBudget())],
)
def test_schedule_is_what_the_pipeline_runs(cost_parts, pipe, method, budget):
    """Methods whose loss cannot stop them early here run exactly the updates the schedule counts, step by step."""
    steps = 8
    out = pipe(
        layout=LAYOUTS,
        method=method,
        num_inference_steps=steps,
        output_type="latent",
        progress=False,
        guidance_budget=budget,
        seed=0,
    )
    ran = [len(g.get("losses", [])) for g in out.guidance]
    latent = pipe.unet.config.sample_size
    assert cost_parts.schedule(pipe, method, steps, budget, LAYOUTS, latent) == ran
    assert sum(ran) > 0


@pytest.mark.slow  # three calls with the memory sampler: about 2-5 s
def test_timed_call_stops_after_its_steps_and_counts_capped_updates(cost_parts, pipe):
    args = argparse.Namespace(steps=20, timed_steps=2, iterations=2, guidance_scale=3.0, size=None, stop_at_cfg=False)
    row = cost_parts.timed_call(pipe, "layout-guidance", LAYOUTS, args)  # 5 iterations planned per guided step
    assert row["updates"] == 4  # two timed steps, each capped at two updates
    assert row["step"] > 0 and row["update"] > 0
    plain = cost_parts.timed_call(pipe, "none", LAYOUTS, args)
    assert plain["updates"] == 0 and plain["update"] != plain["update"]  # NaN: nothing to time
    args.stop_at_cfg = True
    stopped = cost_parts.timed_call(pipe, "layout-guidance", LAYOUTS, args)
    assert stopped["updates"] == 2 and stopped["step"] != stopped["step"]  # ended at the first CFG forward


def test_composition(cost_parts):
    calls = {
        "none": [{"step": 2.0, "update": float("nan")}, {"step": 4.0, "update": float("nan")}],
        "m": [{"step": float("nan"), "update": 1.0}, {"step": 1.0, "update": 3.0}],
    }
    parts = cost_parts.summarise(calls)
    assert parts["m"]["ratio"] == pytest.approx((0.5 + 3.0) / 2)  # round 1 against plain's step, round 2 its own
    assert cost_parts.compose(parts, 10, 4, "m") == pytest.approx(1 + 4 * 1.75 / 10)
    fastest = cost_parts.summarise(calls, "min")
    assert fastest["m"]["ratio"] == pytest.approx(1.0 / 1.0)  # fastest update over the fastest step of any call
