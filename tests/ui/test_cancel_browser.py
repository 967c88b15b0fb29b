"""Cancel in the browser: a long job stops at its next step in the worker process, the page says so, and the device
slot is free for the next Generate (Gradio's own event cancelling once left it taken)."""

from __future__ import annotations

import pytest
from pagekit import GENERATION_TIMEOUT, set_number, set_prompt, wait_rows

pytestmark = pytest.mark.slow

PROMPT = "a red circle and a blue square"


def test_cancel_stops_a_long_job_and_the_next_one_runs(page):
    set_prompt(page, PROMPT)
    page.locator("#lg-plan").click()
    wait_rows(page, lambda r: len(r) == 2 and all(row.endswith(" ok") for row in r))
    set_number(page, "lg-steps", 100)
    page.locator("#lg-generate").click()
    page.wait_for_function("() => /step [1-9]\\d*\\/100/.test(document.querySelector('#lg-progress-box').innerText)")
    page.locator("#lg-cancel").click()
    page.wait_for_function("() => document.querySelector('#lg-message').innerText.includes('cancelling')")
    # the job stops at its next step and the page says so (a Generate pressed before that is ignored by Gradio, as
    # every click on a button whose event still runs)
    page.wait_for_function("() => document.querySelector('#lg-progress-box').innerText.includes('cancelled')")
    assert page.locator("#lg-gallery img").count() == 0
    set_number(page, "lg-steps", 2)
    page.locator("#lg-generate").click()
    page.locator("#lg-gallery img").first.wait_for(timeout=GENERATION_TIMEOUT)
    page.wait_for_function("() => document.querySelector('#lg-progress-box').innerText.includes('step 2/2')")
