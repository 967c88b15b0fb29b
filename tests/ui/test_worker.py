"""The worker process that holds the model for ``layoutguide ui``: it answers what an in-process pipeline answers,
image for image; Cancel, a job's error and a dead worker each come back as one line, and the next job restarts a
dead worker."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from layoutguide.errors import LayoutguideError
from layoutguide.layout import Layout, Region
from layoutguide.ui.jobs import Cancelled, GenerationRequest
from layoutguide.ui.worker import ModelInfo, ProcessRunner, WorkerError

pytestmark = pytest.mark.slow

LAYOUT = Layout(
    "a red circle and a blue square",
    (Region("red circle", box=(0.1, 0.1, 0.45, 0.5)), Region("blue square", box=(0.55, 0.5, 0.9, 0.9))),
    width=64,
    height=64,
)


def test_worker_describes_the_model_as_the_loaded_pipeline_does(process_runner, shipped_pipe):
    here = ModelInfo.of(shipped_pipe)
    there = process_runner.info
    assert (there.width, there.height, there.family, there.methods) == (
        here.width,
        here.height,
        here.family,
        here.methods,
    )
    assert there.model_defaults == here.model_defaults and there.trained_timesteps == here.trained_timesteps
    assert there.tokenizer("red circle").input_ids == here.tokenizer("red circle").input_ids


def test_worker_images_and_attention_equal_the_in_process_ones(process_runner, ui_server):
    request = GenerationRequest(LAYOUT, method="refocus", seed=3, steps=3, images=2, attention=True)
    steps: list[tuple[int, int]] = []
    there = process_runner.run(request, on_step=lambda done, total: steps.append((done, total)))
    here = ui_server.runner.run(request)
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert len(there.images) == 2
    # the worker runs with this process's thread count, so the sums run in the same order; a pixel may still
    # differ by a rounding step where another test changed the threads after the worker started
    for a, b in zip(there.images, here.images):
        diff = np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int))
        assert diff.max() <= 2 and diff.mean() < 0.05
    assert len(there.attention) == 3
    for a, b in zip(there.attention, here.attention):
        assert np.allclose(a.numpy(), b.numpy(), atol=1e-4)
    assert there.layouts[0] == here.layouts[0]


def test_cancel_reaches_the_worker_at_its_next_step(process_runner):
    cancel = threading.Event()
    seen = []

    def on_step(done, total):
        seen.append(done)
        cancel.set()

    with pytest.raises(Cancelled):
        process_runner.run(GenerationRequest(LAYOUT, method="none", steps=50), on_step=on_step, cancel=cancel)
    # the press reaches the worker with the next step's message: the step already running there may finish first
    assert seen in ([1], [1, 2])
    # the switch is cleared for the next job
    assert len(process_runner.run(GenerationRequest(LAYOUT, method="none", steps=1)).images) == 1


def test_a_jobs_error_comes_back_as_the_librarys_line(process_runner):
    bad = GenerationRequest(LAYOUT, method="refocus", options={"refocus": {"no_such_option": 1}}, steps=1)
    with pytest.raises(LayoutguideError, match="no_such_option"):
        process_runner.run(bad)


def test_a_dead_worker_is_one_line_and_the_next_job_starts_a_new_one():
    runner = ProcessRunner(device="cpu")
    try:
        killed = []

        def on_step(done, total):
            if not killed:
                os.kill(runner._process.pid, signal.SIGKILL)
                killed.append(done)

        with pytest.raises(WorkerError, match="worker process stopped"):
            runner.run(GenerationRequest(LAYOUT, method="none", steps=20), on_step=on_step)
        out = runner.run(GenerationRequest(LAYOUT, method="none", steps=1))
        assert len(out.images) == 1 and runner._process.is_alive()
    finally:
        runner.close()
    assert not runner._process.is_alive()


def test_a_model_that_does_not_load_is_the_loaders_one_line(tmp_path):
    with pytest.raises(WorkerError) as e:
        ProcessRunner(str(tmp_path / "missing"), device="cpu")
    assert "\n" not in str(e.value) and "missing" in str(e.value)
