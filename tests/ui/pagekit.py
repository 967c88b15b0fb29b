"""What a person does on the page, as Playwright steps shared by the browser tests and nothing else."""

from __future__ import annotations

GENERATION_TIMEOUT = 600_000  # ms: the shipped model on a busy shared CPU


def set_prompt(page, text: str) -> None:
    box = page.locator("#lg-prompt textarea")
    box.fill(text)
    box.dispatch_event("input")


def draw_box(page, box: tuple[float, float, float, float], phrase: str) -> None:
    """Drag with the mouse from one corner to the other (normalised canvas coordinates), then type the phrase
    into the editor's label field and press Enter."""
    canvas = page.locator("#lg-boxes canvas").first
    bb = canvas.bounding_box()
    side = min(bb["width"], bb["height"])  # the square canvas image is centred in the drawing area
    left, top = bb["x"] + (bb["width"] - side) / 2, bb["y"] + (bb["height"] - side) / 2
    x0, y0, x1, y1 = box
    page.mouse.move(left + x0 * side, top + y0 * side)
    page.mouse.down()
    page.mouse.move(left + x1 * side, top + y1 * side, steps=10)
    page.mouse.up()
    label = page.locator("#lg-boxes input:not([type=file]):not([type=color])").first
    label.fill(phrase)
    label.press("Enter")


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
