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


# ----------------------------------------------------------------------------------------------- what a person does
# shared by the browser tests (tests/ui/pagekit.py) and the screenshot command

BRUSH_STEP = 0.06  # canvas fraction between the rows of a painted stroke: less than the mask editor's default brush


def draw_box(page, box: tuple[float, float, float, float], phrase: str) -> None:
    """Drag with the mouse from one corner to the other (normalised canvas coordinates), then type the phrase
    into the box editor's label field and press Enter."""
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


def use_masks(page, phrases: list[str]) -> None:
    """Set "Layout from" to masks, open the Masks tab and give one brush layer per phrase."""
    page.locator("#lg-mode").get_by_text("masks", exact=True).click()
    page.get_by_role("tab", name="Masks").click()
    field = page.get_by_label("Mask phrases")
    field.fill("\n".join(phrases))
    field.blur()  # the layers follow the phrases when the field changes
    page.locator("#lg-masks .layer-title-button", has_text=phrases[0]).wait_for()


def paint_layer(page, layer: int, box: tuple[float, float, float, float]) -> None:
    """Select the mask editor's brush layer ``layer`` (0-based) and paint ``box`` (normalised canvas coordinates)
    with one zigzag stroke. Few mouse moves on purpose: each waits for the page to draw a frame of the editor's
    WebGL canvas, which headless Chromium renders in software (about 1 s a move on a loaded 2-core machine)."""
    layer_button = page.locator(f"#lg-masks button[aria-label=layer-{layer + 1}]")
    if not layer_button.is_visible():
        page.locator("#lg-masks .layer-title-button").click()  # opens the layer list
    layer_button.click()
    bb = page.locator("#lg-masks canvas").first.bounding_box()
    side = mask_image_side(page)
    left, top = bb["x"] + (bb["width"] - side) / 2, bb["y"] + (bb["height"] - side) / 2  # the image is centred
    x0, y0, x1, y1 = box
    rows = max(1, round((y1 - y0) / BRUSH_STEP))
    page.mouse.move(left + x0 * side, top + y0 * side)
    page.mouse.down()
    for k in range(rows + 1):
        y = top + (y0 + (y1 - y0) * k / rows) * side
        for x in (x0, x1) if k % 2 == 0 else (x1, x0):
            page.mouse.move(left + x * side, y)
    page.mouse.up()


def mask_image_side(page) -> float:
    """Display px of the mask editor's square canvas image: the editor's zoom times the image's pixel size."""
    from .annotate import DISPLAY

    zoom = float(page.locator("#lg-masks .zoom-number span").inner_text().strip().rstrip("%")) / 100
    return zoom * DISPLAY
