"""Generation jobs on the shipped model: the run file's command reproduces the page's images exactly, and Cancel
stops a job at its next step."""

from __future__ import annotations

import shlex
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from layoutguide.cli import app
from layoutguide.layout import Layout, Region
from layoutguide.ui.jobs import Cancelled, GenerationRequest

pytestmark = pytest.mark.slow

LAYOUT = Layout(
    "a red circle and a blue square",
    (Region("red circle", box=(0.1, 0.1, 0.45, 0.5)), Region("blue square", box=(0.55, 0.5, 0.9, 0.9))),
    width=64,
    height=64,
)


def test_run_file_command_reproduces_the_images(ui_server, tmp_path, monkeypatch):
    request = GenerationRequest(
        LAYOUT, method="refocus", options={"refocus": {"tokens": "last"}}, seed=5, steps=2, guidance_scale=3.0
    )
    steps = []
    out = ui_server.runner.run(request, on_step=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 2), (2, 2)]
    from layoutguide.ui.handlers import Result

    bundle = ui_server.bundle(Result(request, list(out.images), out.layouts[0], None))
    with zipfile.ZipFile(bundle) as z:
        z.extractall(tmp_path)
    command = (tmp_path / "run.sh").read_text().splitlines()[-1]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "page.png").write_bytes((tmp_path / "image.png").read_bytes())
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
    again = np.asarray(Image.open(tmp_path / "image.png"))
    assert np.array_equal(again, np.asarray(Image.open(tmp_path / "page.png")))
    assert np.array_equal(again, np.asarray(out.images[0]))


def test_cancel_stops_the_job_at_the_next_step(ui_server):
    cancel = threading.Event()
    seen = []

    def on_step(done, total):
        seen.append(done)
        cancel.set()

    with pytest.raises(Cancelled):
        ui_server.runner.run(GenerationRequest(LAYOUT, method="none", steps=50), on_step=on_step, cancel=cancel)
    assert seen == [1]


def test_launched_page_polls_gradios_queue_at_the_pages_interval(ui_server):
    from layoutguide.ui.app import PROGRESS_POLL_S, QUEUE_POLL_S, build_app, launch
    from layoutguide.ui.browser import free_port

    demo = build_app(ui_server)
    launch(demo, ui_server.limits, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True)
    try:  # a Gradio that renamed these attributes would fail here instead of silently polling at 1 ms again
        assert (demo._queue.sleep_when_free, demo._queue.progress_update_sleep_when_free) == (
            QUEUE_POLL_S,
            PROGRESS_POLL_S,
        )
    finally:
        demo.close()
