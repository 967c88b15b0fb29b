"""A time limit for one browser test, so that a page that stops answering fails the test instead of blocking CI.

Playwright's waits have timeouts, but its mouse and keyboard calls and ``evaluate`` have none: each waits for the
page to take the input. (That is how the mask-mode test "hung": every mouse move waits for the page to draw a frame
of the mask editor's WebGL canvas, which headless Chromium renders in software, about 1 s a move on a loaded
2-core machine; a stroke of 80 moves per layer looked like a hang.)

The limit is a SIGALRM whose handler raises :class:`BrowserTestTimeout` in the test. Playwright's sync API (1.65)
passes an exception raised by a signal handler while it waits into the waiting call and keeps its event loop and
the browser alive, so the next tests run normally (``test_hang_guard`` checks both)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator


class BrowserTestTimeout(AssertionError):
    """A browser test ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "browser test") -> Iterator[None]:
    """Raise :class:`BrowserTestTimeout` in this (the main) thread when the block runs longer than ``seconds``.
    Nested limits keep the outer one: it fires at its own time, and runs on after the inner block."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield  # signals only reach the main thread, and only on Unix: run without a limit
        return

    def expire(signum, frame):
        raise BrowserTestTimeout(f"{what} ran past its time limit of {seconds:g} s (a page that stopped answering?)")

    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    if 0 < outer < seconds:  # the outer limit comes first: keep it, with its own message
        signal.signal(signal.SIGALRM, previous)
        signal.setitimer(signal.ITIMER_REAL, outer)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:  # the outer limit runs on with what is left of it (fired at once if already spent)
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))
