"""What a person does on the page, as Playwright steps of the browser tests; the steps the screenshot command takes
too (draw a box, paint a mask layer) live in ``layoutguide.ui.browser``."""

from __future__ import annotations

GENERATION_TIMEOUT = 600_000  # ms: the shipped model on a busy shared CPU


def set_prompt(page, text: str) -> None:
    box = page.locator("#lg-prompt textarea")
    box.fill(text)
    box.dispatch_event("input")


def check_rows(page) -> list[str]:
    return page.locator("#lg-check-list li").all_inner_texts()


def wait_rows(page, predicate, timeout: float = 60_000) -> list[str]:
    """Wait until the per-box check list satisfies ``predicate``; returns its rows."""
    page.wait_for_function("() => document.querySelector('#lg-check-list') !== null", timeout=timeout)
    deadline = timeout / 250
    rows: list[str] = []
    for _ in range(int(deadline)):
        rows = check_rows(page)
        if predicate(rows):
            return rows
        page.wait_for_timeout(250)
    raise AssertionError(f"check list never matched; last rows: {rows}")


def set_number(page, elem_id: str, value: int) -> None:
    field = page.locator(f"#{elem_id} input[type=number]").first
    field.fill(str(value))
    field.press("Enter")
    field.blur()


def set_method(page, name: str) -> None:
    field = page.locator("#lg-method input").first
    field.fill(name)
    field.press("Enter")
    field.blur()


def wait_generated(page, box: str = "#lg-progress-box", timeout: float = GENERATION_TIMEOUT) -> str:
    """Wait until the progress box says "done" or shows an error; returns its text, raises on an error (at once,
    not after the generation timeout: a job that failed never puts an image on the page)."""
    page.wait_for_function(
        f"() => {{ const b = document.querySelector('{box}');"
        " return b && (b.innerText.includes('done') || b.querySelector('.lg-error') !== null); }",
        timeout=timeout,
    )
    text = page.locator(box).inner_text()
    if page.locator(f"{box} .lg-error").count():
        raise AssertionError(f"generation failed on the page: {text}")
    return text
