"""benchmarks/backbone_targets.py: the targets are judged from the results files, box and relation results alike."""

from __future__ import annotations

import json


def test_verdicts_follow_the_scores(load_benchmark, tmp_path):
    bench = load_benchmark("backbone_targets")
    new = tmp_path / "new.json"
    ref = tmp_path / "ref.json"
    new.write_text(
        json.dumps(
            {
                "methods": {
                    m: {"object_in_box": v}
                    for m, v in {"none": 0.05, "refocus": 0.20, "zestguide": 0.12, "regional": 0.3}.items()
                }
            }
        )
    )
    ref.write_text(
        json.dumps(
            {
                "methods": {
                    "none": {"object_in_box": 0.03},
                    "refocus": {"object_in_box": 0.285},
                    "zestguide": {"object_in_box": 0.507},
                }
            }
        )
    )
    rows = dict(
        zip(
            ["none", "refocus", "zestguide", "regional"],
            bench.target_rows(bench.scores(new, "object_in_box"), bench.scores(ref, "object_in_box"), 3.0, 0.10),
        )
    )
    assert "meets 3x; within 0.1 of reference" in rows["refocus"] and "4.0x" in rows["refocus"]
    assert "below 3x; short of 0.1 of reference" in rows["zestguide"] and "-0.387" in rows["zestguide"]
    assert rows["regional"].endswith("| - | - | meets 3x |")  # no reference figure: the ratio alone
    assert rows["none"] == "| none | 0.050 | - | 0.030 | +0.020 | - |"  # unguided: no verdicts


def test_relation_results_are_keyed_by_method(load_benchmark, tmp_path):
    bench = load_benchmark("backbone_targets")
    path = tmp_path / "rel.json"
    path.write_text(
        json.dumps({"rows": {"rule + none": {"relation_acc": 0.0}, "rule + refocus": {"relation_acc": 0.1}}})
    )
    got = bench.scores(path, "relation_acc")
    assert got == {"none": 0.0, "refocus": 0.1}
    assert "inf" in bench.target_rows(got, {}, 3.0, 0.1)[1]  # unguided 0: any success is an unbounded ratio


def test_the_reference_can_be_cut_to_the_same_layouts(load_benchmark, tmp_path):
    bench = load_benchmark("backbone_targets")
    path = tmp_path / "ref.json"
    images = [{"object_in_box": v} for v in (1.0, 0.0, 0.5, 0.5)]
    path.write_text(json.dumps({"methods": {"none": {"object_in_box": 0.5}}, "images": {"none": images}}))
    assert bench.scores(path, "object_in_box") == {"none": 0.5}
    assert (
        bench.scores(path, "object_in_box", first=2) == {"none": 0.5}
        and bench.scores(path, "object_in_box", 3)["none"] == 0.5
    )
    assert bench.scores(path, "object_in_box", first=1) == {"none": 1.0}


def test_a_phrase_form_run_is_judged_against_its_own_unguided_row(load_benchmark, tmp_path, capsys, monkeypatch):
    bench = load_benchmark("backbone_targets")
    path = tmp_path / "article.json"
    rows = {"none (article)": 0.05, "refocus (article)": 0.20}
    path.write_text(json.dumps({"methods": {m: {"object_in_box": v} for m, v in rows.items()}}))
    monkeypatch.setattr("sys.argv", ["backbone_targets.py", str(path)])
    bench.main()
    table = capsys.readouterr().out
    assert "| none (article) | 0.050 | - |" in table and "| refocus (article) | 0.200 | 4.0x |" in table
