"""benchmarks/cost_parts.py and cost_windows.py: the schedule composed is the one the pipeline runs, the clock times
the library's own calls (only the steps asked for), and each step is costed by its window (docs/results/cost.md,
"Setting 2, measured")."""

from __future__ import annotations

import argparse

import pytest
import torch

from layoutguide.bench import shapes_suite
from layoutguide.guidance import GuidanceBudget
from layoutguide.testing import tiny_pipeline


@pytest.fixture(scope="module")
def cost_parts(load_benchmark):
    return load_benchmark("cost_parts")


@pytest.fixture(scope="module")
def cost_windows(load_benchmark):
    return load_benchmark("cost_windows")


@pytest.fixture(scope="module")
def pipe():
    # one thread for this module's timings, then the session's own count back: later tests compare images with
    # references made at the default count, and a reduction split over other thread counts rounds differently
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_pipeline()
    torch.set_num_threads(threads)


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


def test_timed_steps_in_a_label(cost_windows):
    method, budget, steps = cost_windows.parse_timed("gligen+refocus@t700/s10+14-15")
    assert (method, budget, steps) == ("gligen+refocus", GuidanceBudget(min_timestep=700), [10, 14, 15])
    assert cost_windows.parse_timed("none", 2) == (None, GuidanceBudget(), [0, 1])
    assert cost_windows.untimed("gligen+refocus@t700/s10+14-15") == "gligen+refocus@t700"
    with pytest.raises(SystemExit, match="end before they start"):
        cost_windows.parse_timed("gligen@s15-10")
    timed = ["none", "gligen@s10+15", "gligen+refocus@s10+15", "refocus"]
    assert cost_windows.timed_for("gligen+refocus@t700", timed) == "gligen+refocus@s10+15"
    with pytest.raises(SystemExit, match="--plan-only"):
        cost_windows.timed_for("gligen+refocus@full", timed)  # the cut changes what an update costs: not plan-only
    kinds = {"gligen": "conditioning", "refocus": "gradient"}.__getitem__
    assert cost_windows.base_of("gligen+refocus@t700", timed, kinds) == "gligen@s10+15"
    assert cost_windows.base_of("refocus[loss_scale=2]", timed, kinds) == "none"
    with pytest.raises(SystemExit, match="time 'gligen\\[beta=1\\]'"):  # its window differs from gligen's
        cost_windows.base_of("gligen[beta=1]+refocus", timed, kinds)


def test_schedule_composition_weights_each_window(cost_windows):
    """A base whose CFG step costs 2 s inside its window (steps 0-2) and 1 s after it, timed at steps 1 and 3 by the
    base and by the gradient configuration (the same CFG forward: each round takes the faster); the updates cost
    half their own call's CFG step inside the window and a whole one after it (then in round 2, a whole one)."""
    calls = {
        "base": [{"step@1": 2.0, "step@3": 1.0, "peak_mb": 10.0}, {"step@1": 4.0, "step@3": 2.0, "peak_mb": 10.0}],
        "guided": [
            {"step@1": 3.0, "update@1": 1.5, "step@3": 1.0, "update@3": 1.0, "peak_mb": 12.0},
            {"step@1": 2.0, "update@1": 2.0, "step@3": 1.0, "update@3": 1.0, "peak_mb": 12.0},
        ],
    }
    plan = [2, 0, 1, 0, 1]  # updates per step of a 5-step schedule
    group = ["base", "guided"]
    per_round, fastest = cost_windows.compose_rounds(calls, "guided", "base", group, plan)
    # round 1: steps 2 + 2 + 2 + 1 + 1 = 8 s; updates 2 x (2 x 0.5) + 1 x (2 x 0.5) + 1 x (1 x 1.0) = 4 s
    assert per_round[0] == pytest.approx(12.0)
    # round 2: the base's own call was slowed (4 s, 2 s), the guided call's steps (2 s, 1 s) stand for it
    assert per_round[1] == pytest.approx(8.0 + 3 * 2 * 1.0 + 1 * 1.0)
    # fastest: CFG steps 2 s (step 1) and 1 s (step 3); updates 1.5 s (3 of them) and 1 s: 8 + 4.5 + 1
    assert fastest == pytest.approx(13.5)
    base_rounds, _ = cost_windows.compose_rounds(calls, "base", "base", group, [0] * 5)
    assert base_rounds == pytest.approx([8.0, 8.0])
    alone, _ = cost_windows.compose_rounds(calls, "base", "base", ["base"], [0] * 5)
    assert alone == pytest.approx([8.0, 16.0])  # without the guided calls: the base's own steps
    table = cost_windows.windows_table(
        calls,
        {"base": [0] * 5, "guided": plan},
        {"base": "base", "guided": "guided"},
        {"base": "base", "guided": "base"},
        ["base"],
    )
    # per round 12 / 8 and 15 / 8: median 1.6875; fastest 13.5 / 8; peak 12 / 10
    assert "| guided | guided (base) | 3 / 4 | 1.69x [1.50-1.88] | 1.69x | 1.20x |" in table


def test_timed_call_runs_only_its_timed_steps(cost_parts):
    """``@s1+4``: the UNet runs (guidance forward and CFG forward) at steps 1 and 4 only, the method sees those steps'
    real indices (GLIGEN's window: steps 0-2 of 10), and each is timed on its own."""
    gated = tiny_pipeline(gated=True)
    forwards = []
    handle = gated.unet.conv_in.register_forward_hook(lambda *_: forwards.append(torch.is_grad_enabled()))
    seen_gligen = []
    real_kwargs = type(gated.method_with_defaults("gligen")).unet_kwargs

    def spy(self, state, step, *, cfg):
        out = real_kwargs(self, state, step, cfg=cfg)
        seen_gligen.append((step, "gligen" in out))
        return out

    args = argparse.Namespace(steps=10, timed_steps=1, iterations=1, guidance_scale=3.0, size=None, stop_at_cfg=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(gated.method_with_defaults("gligen")), "unet_kwargs", spy)
        row = cost_parts.timed_call(gated, "gligen+refocus@s1+4", LAYOUTS, args)
    handle.remove()
    assert forwards == [True, False, True, False]  # step 1: guidance, CFG; step 4: guidance, CFG
    assert row["updates"] == 2 and all(row[k] > 0 for k in ("step@1", "update@1", "step@4", "update@4"))
    assert (1, True) in seen_gligen and (4, False) in seen_gligen  # inside and after the window, as in a whole run
    assert "forward" not in gated.unet.__dict__  # the skipping forward is gone after the call


def test_timed_layout_has_the_boxes_asked_for(cost_parts):
    assert cost_parts.timed_layouts(2)[0] == LAYOUTS[0]  # the default: the scene of every run in cost.md
    four = cost_parts.timed_layouts(4)
    assert len(four) == 1 and len(four[0].regions) == 4
