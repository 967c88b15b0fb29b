"""benchmarks/calibrate.py: the sweep grids, and what a calibration keeps and writes of a model's defaults."""

from __future__ import annotations

import json


def test_axes_are_every_combination_first_axis_slowest(load_benchmark):
    calibrate = load_benchmark("calibrate")
    assert calibrate.axes(a=(1, 2), b=(3, 4, 5)) == [
        {"a": 1, "b": 3},
        {"a": 1, "b": 4},
        {"a": 1, "b": 5},
        {"a": 2, "b": 3},
        {"a": 2, "b": 4},
        {"a": 2, "b": 5},
    ]


def test_every_sweep_point_is_a_valid_option_set(load_benchmark):
    """A typo in a grid would only surface an hour into a sweep: each point must build its method's options."""
    from layoutguide.methods import get_method

    calibrate = load_benchmark("calibrate")
    for name in calibrate.SWEEPS:
        specs = calibrate.sweep_specs(name)
        assert len({s.label for s in specs}) == len(specs)
        for spec in specs:
            get_method(name, **spec.options)
    first = calibrate.sweep_specs("regional")[0].label
    assert first == "regional[end_tokens=hidden,mask_inject_steps=10,base_ratio=0]"


def test_published_defaults_drop_swept_values_and_keep_the_architecture(load_benchmark):
    calibrate = load_benchmark("calibrate")
    model = {
        "guidance_scale": 3.0,
        "methods": {"refocus": {"level": 0, "loss_scale": 10.0, "temperature": 10.0}, "zestguide": {"levels": [0]}},
    }
    assert calibrate.published_defaults(model) == {
        "guidance_scale": 3.0,
        "methods": {"refocus": {"level": 0}, "zestguide": {"levels": [0]}},
    }


def test_write_choice_merges_into_the_model_defaults(load_benchmark, tmp_path):
    calibrate = load_benchmark("calibrate")
    path = tmp_path / "layoutguide.json"
    path.write_text(json.dumps({"guidance_scale": 3.0, "methods": {"refocus": {"level": 0, "loss_scale": 1.0}}}))
    calibrate.write_choice(path, "refocus", {"loss_scale": 10.0, "temperature": 10.0})
    calibrate.write_choice(path, "regional", {"base_ratio": 0.1})
    assert json.loads(path.read_text()) == {
        "guidance_scale": 3.0,
        "methods": {
            "refocus": {"level": 0, "loss_scale": 10.0, "temperature": 10.0},
            "regional": {"base_ratio": 0.1},
        },
    }


def test_published_defaults_leave_a_model_without_its_own_file_to_the_family(load_benchmark):
    """Without layoutguide.json the backbone family's values apply (SDXL ZestGuide's tau 0.4); an empty methods
    table would switch them off."""
    from layoutguide.defaults import family_defaults

    calibrate = load_benchmark("calibrate")
    assert calibrate.published_defaults({}) == {}
    assert family_defaults("sdxl", "zestguide", calibrate.published_defaults({}))["tau"][0] == 0.4


def test_methods_to_sweep_default_to_what_runs_on_the_model(load_benchmark):
    import pytest

    calibrate = load_benchmark("calibrate")
    unet = ["none", "refocus", "zestguide", "boxdiff", "layout-guidance", "attend-excite"]
    assert "regional" not in calibrate.methods_to_sweep(None, unet)
    assert calibrate.methods_to_sweep(None, ["none", "regional", "refocus"]) == ["refocus", "regional"]
    with pytest.raises(SystemExit, match="does not run on this model"):
        calibrate.methods_to_sweep("refocus,regional", unet)
    with pytest.raises(SystemExit, match="no sweep for 'pww'"):
        calibrate.methods_to_sweep("pww", unet)
