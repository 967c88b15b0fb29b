"""Fuzz (issue #17): random layout files and generate's numeric options give a valid result or one clear error line
(exit code 2), never a traceback."""

import json
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from layoutguide.cli import app
from layoutguide.layout import Layout, LayoutError

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
numbers = st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 1e308, 2, 0.5, True]) | st.floats() | st.integers()
boxes = st.one_of(
    st.lists(numbers, min_size=0, max_size=6),
    st.text(max_size=6),
    st.tuples(*[st.floats(0, 1)] * 4).map(list),
)
regions = st.fixed_dictionaries(
    {"phrase": st.sampled_from(["red circle", "", "blue square", "x/../y"]) | st.text(max_size=10), "box": boxes}
)
layout_dicts = st.fixed_dictionaries(
    {"prompt": st.sampled_from(["a red circle and a blue square", ""]) | st.text(max_size=20)},
    optional={
        "regions": st.lists(regions, max_size=4) | json_values,
        "width": numbers | json_scalars,
        "height": numbers | json_scalars,
        "version": st.integers(0, 2),
        "background": json_scalars,
    },
)
documents = st.one_of(
    layout_dicts.map(lambda d: json.dumps(d, allow_nan=True)),
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.integers(1, 20_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 20_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_layout_file_loads_or_is_one_layout_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layout.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            layout = Layout.from_json(path)
        except LayoutError as e:
            assert "\n" not in str(e) and str(e)
            return
        assert isinstance(layout, Layout)
        for x0, y0, x1, y1 in layout.boxes:
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        assert Layout.from_json(layout.to_json()) == layout  # what loads also round-trips


option_values = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "Infinity", "0", "-1", "1e999", "", "abc", "1.5", "true", "9" * 30]),
    st.integers(-3, 3).map(str),
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flag=st.sampled_from(["--steps", "--guidance-scale", "-n", "--height", "--width", "--seed"]),
    value=option_values | st.sampled_from(["16", "32", "64"]),
)
def test_generate_numeric_options_are_a_result_or_one_error_line(tiny_folder, flag, value):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "img.png"
        args = ["generate", "--prompt", "a red circle", "--model", tiny_folder, "--method", "none"]
        args += ["--out", str(out), "--device", "cpu"] + (["--steps", "1"] if flag != "--steps" else [])
        result = CliRunner().invoke(app, [*args, f"{flag}={value}"])
        assert (
            "Traceback" not in result.output
            and not isinstance(result.exception, Exception)
            or isinstance(result.exception, SystemExit)
        ), repr(result.exception)
        if result.exit_code == 0:
            assert any(p.suffix == ".png" for p in Path(tmp).iterdir())
        else:
            assert result.exit_code == 2, result.output
            lines = [line for line in result.output.splitlines() if line.strip()]
            assert len(lines) <= 8 and any(
                line.startswith(("error:", "Error", "Usage", "Try", "╭", "│")) for line in lines
            )
        assert sorted(os.listdir(tmp)) in ([], ["img.png"]) or all(n.startswith("img") for n in os.listdir(tmp))
