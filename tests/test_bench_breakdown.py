"""benchmarks/bench_breakdown.py: regions are grouped by their layout's object count and their box's area."""

from __future__ import annotations

from layoutguide.layout import Layout, Region


def test_regions_are_counted_in_their_groups(load_benchmark):
    bench = load_benchmark("bench_breakdown")
    one = Layout(prompt="a red circle", regions=(Region(phrase="red circle", box=(0.0, 0.0, 0.5, 0.5)),))
    two = Layout(
        prompt="a blue square and a green star",
        regions=(
            Region(phrase="blue square", box=(0.0, 0.0, 0.2, 0.2)),
            Region(phrase="green star", box=(0.5, 0.5, 0.8, 0.8)),
        ),
    )
    results = {
        "images": {"none": [{"regions": [{"in_box": True}]}, {"regions": [{"in_box": False}, {"in_box": True}]}]}
    }
    got = bench.breakdown(results, [one, two])["none"]
    assert got["all regions"] == (2, 3)
    assert got["1 object"] == (1, 1) and got["2 objects"] == (1, 2)
    assert got["large box"] == (1, 1)  # 0.25 of the image
    assert got["small box"] == (0, 1) and got["medium box"] == (1, 1)  # 0.04 and 0.09
    table = bench.markdown(bench.breakdown(results, [one, two]))
    assert "| none | 0.667 | 1.000 | 0.500 | 0.000 | 1.000 | 1.000 |" in table
