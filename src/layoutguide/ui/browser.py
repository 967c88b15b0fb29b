"""Start the app on a free local port (in this process) and drive Debian's Chromium with Playwright: shared by the
browser tests and the screenshot command. Playwright's own browser download cannot reach its host here, so the
system executable is used."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator

from ..errors import LayoutguideError

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class BrowserMissingError(LayoutguideError, RuntimeError):
    """No Chromium executable: install Debian's (apt-get install chromium) or set LAYOUTGUIDE_CHROMIUM."""


def chromium_path() -> str:
    """The Chromium executable: $LAYOUTGUIDE_CHROMIUM, else chromium / chromium-browser on PATH."""
    found = os.environ.get("LAYOUTGUIDE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise BrowserMissingError("no chromium executable; apt-get install chromium, or set LAYOUTGUIDE_CHROMIUM")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_app(server) -> Iterator[str]:
    """Serve ``server``'s page on 127.0.0.1 at a free port in a background thread; yields its URL."""
    from .app import build_app, launch

    demo = build_app(server)
    port = free_port()
    launch(demo, server.limits, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium (Playwright browser object)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
