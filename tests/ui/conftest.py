"""Fixtures of the web UI tests: the shipped shapes model served on a free 127.0.0.1 port (its jobs in a worker
process, as `layoutguide ui` runs them), and Debian's headless Chromium driven by Playwright. In CI (CI=true) a
missing browser fails the run; elsewhere the browser tests are skipped."""

from __future__ import annotations

import os

import pytest
from hangguard import time_limit

# s one browser test may take, page load included: generation waits up to pagekit.GENERATION_TIMEOUT (600 s)
TEST_TIME_LIMIT_S = 900

pytest.importorskip("gradio")
pytest.importorskip("gradio_image_annotation")


@pytest.fixture(scope="session")
def shipped_pipe():
    from layoutguide.loading import load_pipeline

    return load_pipeline(device="cpu")


@pytest.fixture(scope="session")
def ui_server(shipped_pipe, tmp_path_factory):
    from layoutguide.ui.handlers import Server

    return Server(shipped_pipe, out_dir=str(tmp_path_factory.mktemp("ui-out")))


@pytest.fixture(scope="session")
def process_runner():
    """The shipped model in a worker process, as ``layoutguide ui`` runs it."""
    from layoutguide.ui.worker import ProcessRunner

    runner = ProcessRunner(device="cpu")
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def app_url(process_runner, tmp_path_factory):
    from layoutguide.ui.browser import running_app
    from layoutguide.ui.handlers import Server

    server = Server(runner=process_runner, out_dir=str(tmp_path_factory.mktemp("ui-app-out")))
    with running_app(server) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from layoutguide.ui.browser import BrowserMissingError, chromium, chromium_path

    try:
        chromium_path()
        pytest.importorskip("playwright")
    except (BrowserMissingError, pytest.skip.Exception) as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests must run in CI: {e}")
        pytest.skip(f"no browser here: {e}")
    with chromium() as b:
        yield b


@pytest.fixture()
def page(browser, app_url, request):
    """A fresh page (its own browser context) on the app; the test using it runs under a time limit of
    :data:`TEST_TIME_LIMIT_S`, so that a page that stops answering fails the test instead of blocking CI."""
    with time_limit(TEST_TIME_LIMIT_S, request.node.name):
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        p = context.new_page()
        p.set_default_timeout(60_000)
        p.goto(app_url)
        p.locator("#lg-check-list").wait_for()
        yield p
    context.close()
