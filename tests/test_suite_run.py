"""``bench suite``'s plumbing on the tiny pipeline (slow-marked where it generates: seconds per image on 2 shared
cores): shards merged equal one run, a killed run resumes per image, an
``accelerate launch`` of two CPU processes (gloo) merges to the one-process result, and bad input is one line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from layoutguide.bench import BenchResumeError
from layoutguide.bench.detectors.base import Detection
from layoutguide.bench.public import load_suite
from layoutguide.bench.public.report import merge_folders
from layoutguide.bench.public.run import flat_indices, image_suite, parse_shard, run_suite, with_phrases_in_prompt
from layoutguide.bench.suites import noise_seeds
from layoutguide.cli import app
from layoutguide.errors import InputError
from layoutguide.spec import MethodSpec

METHODS = [MethodSpec("none", None), MethodSpec("refocus", "refocus")]
COLOURS = ("red", "green", "blue", "yellow")


class PixelDetector:
    """A detector built in code for the plumbing: deterministic in the image, so any split of the work must give the
    same scores. Per label, the box of the pixels above the mean of a channel the label picks; its colour is the
    dominant channel there."""

    name = "pixel"
    description = "test detector (pixels above a channel's mean)"

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls, self.fail_after = 0, fail_after

    def detect(self, image, labels):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # a run killed in the middle of scoring
        rgb = np.asarray(image, dtype=float)
        out = []
        for label in labels:
            channel = int(hashlib.sha256(label.encode()).hexdigest(), 16) % 3
            ys, xs = np.nonzero(rgb[..., channel] > rgb[..., channel].mean())
            if len(xs) == 0:
                continue
            h, w = channel_shape = rgb.shape[:2]
            box = (xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h)
            colour = COLOURS[int(rgb[ys, xs].mean(0).argmax())]
            out.append(
                Detection(label, box, float(len(xs)) / (channel_shape[0] * channel_shape[1]), None, {"colour": colour})
            )
        return out


def no_colour(image, box, mask=None):
    raise AssertionError("PixelDetector gives colours")


def mig_entry(caption: str, *instances: tuple[str, list[float]]) -> dict:
    return {"caption": caption, "segment": [{"label": label, "bbox": box} for label, box in instances]}


@pytest.fixture
def mig_file(tmp_path):
    data = {
        "0": mig_entry(
            "a red circle and a blue square",
            ("red circle", [0.05, 0.1, 0.45, 0.6]),
            ("blue square", [0.55, 0.4, 0.95, 0.9]),
        ),
        "1": mig_entry(
            "a green triangle, a red square and a red circle",
            ("green triangle", [0.1, 0.1, 0.4, 0.4]),
            ("red square", [0.5, 0.1, 0.9, 0.5]),
            ("red circle", [0.2, 0.55, 0.6, 0.95]),
        ),
        "2": mig_entry(
            "a yellow circle and a blue circle",
            ("yellow circle", [0.0, 0.0, 0.5, 0.5]),
            ("blue circle", [0.5, 0.5, 1.0, 1.0]),
        ),
    }
    path = tmp_path / "mig.json"
    path.write_text(json.dumps(data))
    return path


def run(pipe, data, out, **kw):
    # batch 1: a batch's composition changes the float rounding of its images (not their seeds), so byte-equal
    # images across splits are checked one image per call
    kw = {"steps": 1, "samples": 2, "batch_size": 1, "progress": False, **kw}
    methods = kw.pop("methods", METHODS[:1])
    detector = kw.pop("detector", PixelDetector())
    return run_suite(pipe, load_suite("coco-mig", data), methods, detector, no_colour, out=out, **kw)


def images_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted((folder / "images").rglob("*.png"))}


def test_seeds_are_per_prompt_and_sample_and_sample_zero_is_bench_shapes(mig_file):
    suite = load_suite("coco-mig", mig_file)
    seeds = image_suite(suite, 3, seed=5).seeds
    assert seeds[:3] == noise_seeds(3, 5)  # sample 0 of entry k: bench shapes' k-th seed
    assert len(set(seeds)) == 9
    assert flat_indices(3, 2, 2) == [0, 3, 1, 4]  # --n 2, two samples: entries 0 and 1, each with samples 0 and 1


@pytest.mark.slow
def test_shards_merged_equal_one_run(tiny_pipe, mig_file, tmp_path):
    whole = run(tiny_pipe, mig_file, tmp_path / "whole")
    assert whole is not None and list(whole["levels"]["none"]) == ["L2", "L3"]
    assert run(tiny_pipe, mig_file, tmp_path / "s1", shard=(0, 2)) is None
    with pytest.raises(InputError, match="have no score"):  # one shard alone cannot be reported
        merge_folders([tmp_path / "s1"], tmp_path / "merged")
    run(tiny_pipe, mig_file, tmp_path / "s2", shard=(1, 2))
    merged = merge_folders([tmp_path / "s1", tmp_path / "s2"], tmp_path / "merged")
    assert merged["methods"] == whole["methods"] and merged["levels"] == whole["levels"]
    shards = images_of(tmp_path / "s1") | images_of(tmp_path / "s2")
    assert shards == images_of(tmp_path / "whole")  # a shard count never changes an image
    text = (tmp_path / "merged" / "report.md").read_text()
    assert "Detector: **pixel**" in text and "## none, per level" in text and "Merged from 2 folders" in text
    assert (tmp_path / "merged" / "grid.png").stat().st_size > 0


@pytest.mark.slow
def test_merge_refuses_folders_of_different_runs(tiny_pipe, mig_file, tmp_path):
    run(tiny_pipe, mig_file, tmp_path / "a", shard=(0, 2))
    run(tiny_pipe, mig_file, tmp_path / "b", shard=(1, 2), seed=1)
    with pytest.raises(InputError, match="seed=1"):
        merge_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    with pytest.raises(InputError, match="no bench suite run"):
        merge_folders([tmp_path], tmp_path / "m")


@pytest.mark.slow
def test_a_killed_run_resumes_per_image(tiny_pipe, mig_file, tmp_path):
    whole = run(tiny_pipe, mig_file, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run(tiny_pipe, mig_file, tmp_path / "killed", detector=PixelDetector(fail_after=3))
    scored = sorted((tmp_path / "killed" / "scores").rglob("*.json"))
    assert len(scored) == 3
    (tmp_path / "killed" / "images" / "none" / "0001.png").write_bytes(b"")  # a torn image: generated again
    scored[0].write_text("{")  # a torn score: scored again
    detector = PixelDetector()
    again = run(tiny_pipe, mig_file, tmp_path / "killed", detector=detector)
    assert detector.calls == 6 - 3 + 1  # 6 images, less the scores kept, plus the torn one
    assert again["methods"] == whole["methods"]
    assert images_of(tmp_path / "killed") == images_of(tmp_path / "whole")


@pytest.mark.slow
def test_resuming_with_other_settings_is_refused(tiny_pipe, mig_file, tmp_path):
    run(tiny_pipe, mig_file, tmp_path / "out")
    with pytest.raises(BenchResumeError, match="samples"):
        run(tiny_pipe, mig_file, tmp_path / "out", samples=3)


def test_phrases_missing_from_a_prompt_are_appended_and_counted(tiny_pipe, tmp_path):
    path = tmp_path / "mig.json"
    path.write_text(json.dumps({"0": mig_entry("a photo", ("red circle", [0, 0, 0.5, 0.5])), "1": mig_entry(
        "a blue square", ("blue square", [0.5, 0.5, 1, 1]))}))  # fmt: skip
    layouts, changed = with_phrases_in_prompt(tiny_pipe, load_suite("coco-mig", path), 2)
    assert [lay.prompt for lay in layouts] == ["a photo, red circle", "a blue square"] and changed == 1


def test_parse_shard():
    assert parse_shard("2/8") == (1, 8) and parse_shard(None) is None
    for bad in ("0/2", "3/2", "a/b", "2"):
        with pytest.raises(InputError, match="shard"):
            parse_shard(bad)


def cli(*args: str):
    return CliRunner().invoke(app, ["bench", *args])


@pytest.mark.parametrize(
    "args, says",
    [
        (["--suite", "geneval"], "suite: unknown"),
        (["--shard", "3/2"], "shard"),
        (["--detector", "nope"], "detector: unknown"),
        (["--detector-weights", "w.pt"], "detector_weights"),
        (["--methods", "refocus["], "--methods"),
        (["--batch-size", "0"], "--batch-size"),
    ],
)
def test_bench_suite_bad_input_is_one_line_and_writes_nothing(tiny_folder, mig_file, tmp_path, args, says):
    base = {"--suite": "coco-mig", "--data": str(mig_file), "--detector": "shapes", "--model": tiny_folder}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    out = tmp_path / "out"
    result = cli("suite", *[x for kv in base.items() for x in kv], "--out", str(out), "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output
    assert not out.exists()


@pytest.mark.slow
def test_bench_suite_and_merge_from_the_command_line(tiny_folder, mig_file, tmp_path):
    common = ["--suite", "coco-mig", "--data", str(mig_file), "--detector", "shapes", "--model", tiny_folder,
              "--steps", "1", "--device", "cpu", "--n", "2"]  # fmt: skip
    for i in (1, 2):
        result = cli("suite", *common, "--out", str(tmp_path / f"s{i}"), "--shard", f"{i}/2")
        assert result.exit_code == 0, result.output
        assert "bench merge" in result.output
    result = cli("merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m"))
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    assert results["config"]["detector"] == "shapes" and set(results["methods"]) == {"none", "refocus"}
    assert any("Grounding DINO" in d for d in results["differences"])


@pytest.mark.slow
def test_accelerate_two_cpu_processes_merge_to_the_one_process_result(tiny_folder, mig_file, tmp_path):
    args = ["bench", "suite", "--suite", "coco-mig", "--data", str(mig_file), "--detector", "shapes",
            "--model", tiny_folder, "--steps", "1", "--samples", "2", "--batch-size", "1", "--device", "cpu",
            "--methods", "none,refocus"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "layoutguide.cli", *args, "--out", str(tmp_path / "one")], env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    # accelerate's torchrun launcher: its --cpu flag starts one process unless MPI is set up; --device cpu (gloo)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", "29517", "-m", "layoutguide.cli"]  # fmt: skip
    two = subprocess.run(
        [*launch, *args, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=600
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert "[1/2]" in two.stderr and "[2/2]" in two.stderr  # a progress bar per process
    first = json.loads((tmp_path / "one" / "results.json").read_text())
    second = json.loads((tmp_path / "two" / "results.json").read_text())
    assert second["methods"] == first["methods"] and second["levels"] == first["levels"]
    assert images_of(tmp_path / "two") == images_of(tmp_path / "one")
