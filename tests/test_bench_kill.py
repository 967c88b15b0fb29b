"""Kill-at-random-points resume (issue #17): a benchmark killed with SIGKILL at random points, then resumed, ends
with the same results as an uninterrupted run (timings and memory excepted)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = """
import sys
from layoutguide.bench import MethodSpec, run_shapes_bench
from layoutguide.testing import tiny_pipeline

run_shapes_bench(
    tiny_pipeline(),
    [MethodSpec("none", None), MethodSpec("pww", "pww")],
    n=4, seed=5, out=sys.argv[1], steps=2, batch_size=1, progress=False,
)
"""
MEASURED = ("seconds_per_image", "time_vs_none", "peak_memory_mb")  # differ from run to run by nature
IMAGES = 8  # two methods x four layouts


def _bench(out: Path) -> subprocess.Popen:
    src = str(Path(__file__).resolve().parent.parent / "src")  # this checkout's package, as the tests use
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out)],
        env={**os.environ, "PYTHONPATH": src, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(out: Path) -> str:
    process = _bench(out)
    output, _ = process.communicate(timeout=1200)
    assert process.returncode == 0, output
    return output


def _kill_after(out: Path, images: int, extra_seconds: float) -> None:
    """Start a run and SIGKILL it once ``images`` images exist (then ``extra_seconds`` later), or when it ends."""
    process = _bench(out)
    deadline = time.monotonic() + 1200
    while process.poll() is None and time.monotonic() < deadline:
        if len(list(out.glob("images/*/*.png"))) >= images:
            time.sleep(extra_seconds)
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)


def _comparable(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    for summary in results["methods"].values():
        for key in MEASURED:
            summary.pop(key)
    results["config"].pop("device")
    return results


@pytest.mark.slow
def test_killed_at_random_points_then_resumed_equals_an_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _finish(whole)
    rng = random.Random(17)
    for images in sorted(rng.sample(range(IMAGES), 3)):  # three kills, later and later into the run
        _kill_after(killed, images, rng.uniform(0.0, 0.3))
    output = _finish(killed)
    assert "Traceback" not in output
    assert _comparable(killed) == _comparable(whole)
    for image in sorted(whole.glob("images/*/*.png")):
        assert (killed / image.relative_to(whole)).read_bytes() == image.read_bytes(), image
    timings = [json.loads(line) for line in (killed / "timings.jsonl").read_text().splitlines()]
    assert {(t["method"], t["index"]) for t in timings} == {(m, k) for m in ("none", "pww") for k in range(4)}
