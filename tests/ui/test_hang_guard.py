"""The browser tests' time limit (hangguard): a call that never returns fails with a timeout, and the page and the
browser still work afterwards, so one stuck test does not block or break the ones after it."""

from __future__ import annotations

import time

import pytest
from hangguard import BrowserTestTimeout, time_limit


@pytest.mark.slow
def test_a_page_that_never_answers_fails_in_time_and_the_browser_lives_on(page):
    start = time.monotonic()
    with pytest.raises(BrowserTestTimeout, match="time limit of 2 s"), time_limit(2, "never answering"):
        page.evaluate("() => new Promise(() => {})")  # Playwright has no timeout for this
    assert time.monotonic() - start < 30
    assert page.evaluate("() => 1 + 1") == 2
    assert page.locator("#lg-check-list").count() == 1


def test_an_inner_limit_keeps_the_outer_one():
    with pytest.raises(BrowserTestTimeout, match="outer"), time_limit(0.3, "outer"), time_limit(30, "inner"):
        time.sleep(5)
    with time_limit(30, "outer"):
        with time_limit(0.2, "inner"), pytest.raises(BrowserTestTimeout, match="inner"):
            time.sleep(5)
        time.sleep(0.2)  # the outer limit still runs, far from spent
