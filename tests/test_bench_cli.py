"""`layoutguide bench ...` and `shapes competence` on bad input: one clear line, exit 2, before any model loads
where the input alone is wrong; nothing written."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from layoutguide.cli import app

runner = CliRunner()


def bench(*args: str):
    return runner.invoke(app, ["bench", *args, "--device", "cpu"])


@pytest.mark.parametrize(
    "args, says",
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--batch-size", "-1"], "--batch-size"),
        (["--max-objects", "0"], "--max-objects"),
        (["--methods", ""], "--methods"),
        (["--methods", "refocus["], "--methods"),
        (["--phrase-form", "article,loud"], "--phrase-form"),
    ],
)
def test_bench_shapes_bad_options_are_one_line(tiny_folder, tmp_path, args, says):
    out = tmp_path / "out"
    result = bench("shapes", "--model", tiny_folder, "--n", "1", "--steps", "1", "--out", str(out), *args)
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output
    assert not out.exists()


@pytest.mark.parametrize(
    "args, says",
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--methods", ""], "--methods"),
        (["--methods", "refocus["], "--methods"),
        (["--planners", ","], "--planners"),
        (["--n", "0"], "--n"),
    ],
)
def test_bench_relations_bad_options_are_one_line(tiny_folder, tmp_path, args, says):
    out = tmp_path / "out"
    result = bench("relations", "--model", tiny_folder, "--n", "1", "--out", str(out), *args)
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_bench_out_naming_a_file_is_refused_before_loading(tmp_path):
    out = tmp_path / "taken"
    out.write_text("mine")
    result = bench("shapes", "--model", str(tmp_path / "missing"), "--out", str(out))
    assert result.exit_code == 2 and "--out" in result.output and out.read_text() == "mine"


@pytest.mark.slow
def test_bench_shapes_phrase_forms_from_the_command_line(tiny_folder, tmp_path):
    out = tmp_path / "out"
    args = ["--model", tiny_folder, "--methods", "none", "--n", "1", "--steps", "1", "--out", str(out)]
    result = bench("shapes", *args, "--max-objects", "1", "--phrase-form", "bare,article")
    assert result.exit_code == 0, result.output
    assert list(json.loads((out / "results.json").read_text())["methods"]) == ["none", "none (article)"]
    assert "object-in-box, article" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "args, says",
    [
        (["--steps", "0"], "--steps"),
        (["--guidance-scale", "nan"], "--guidance-scale"),
        (["--n", "0"], "--n"),
        (["--guidance-interval", "9,1"], "--guidance-interval"),
    ],
)
def test_shapes_competence_bad_options_are_one_line(tiny_folder, tmp_path, args, says):
    out = tmp_path / "out"
    cmd = ["shapes", "competence", "--model", tiny_folder, "--n", "1", "--out", str(out), "--device", "cpu", *args]
    result = runner.invoke(app, cmd)
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output
    assert not out.exists()
