"""Screenshots of the page for docs/ui.md, taken from headless Chromium on the shipped shapes model:

    python -m layoutguide.ui.screenshots --out docs/ui --steps 8

Writes editor.png (two boxes drawn with the mouse, checked), error.png (a phrase not in the prompt, its message
next to its box), generate.png (an image with the layout overlay, the progress box at its last step), inside.png
(attention heatmaps per phrase with the step slider, and the evaluator's verdict), compare.png (the compare grid)
and masks.png (mask mode: a brush layer per phrase painted with the mouse, checked, generated with zestguide)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..loading import load_pipeline
from .browser import chromium, draw_box, paint_layer, running_app, use_masks
from .handlers import Server

PROMPT = "a red circle to the left of a blue square"


def _generate(page, steps: int) -> None:
    """Generate at ``steps`` with the overlay on, and wait until the page says "done" and has drawn the image."""
    steps_box = page.locator("#lg-steps input[type=number]").first
    steps_box.fill(str(steps))
    steps_box.press("Enter")
    page.locator("#lg-overlay input").check()
    page.locator("#lg-generate").click()
    page.wait_for_function("() => document.querySelector('#lg-progress-box').innerText.includes('done')")
    page.wait_for_timeout(1000)


def _rows(page, n: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll('#lg-check-list li[data-region]').length === {n}")
    page.wait_for_timeout(1000)


def take(out: Path, steps: int) -> list[Path]:
    """Drive the page through a session and write the screenshots into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    server = Server(load_pipeline(device="cpu"))
    shots = []
    with running_app(server) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(600_000)
        page.goto(url)
        page.locator("#lg-check-list").wait_for()
        page.locator("#lg-prompt textarea").fill(PROMPT)
        draw_box(page, (0.05, 0.3, 0.45, 0.7), "red circle")
        draw_box(page, (0.55, 0.3, 0.95, 0.7), "blue square")
        _rows(page, 2)
        shots.append(out / "editor.png")
        page.screenshot(path=shots[-1])
        draw_box(page, (0.3, 0.75, 0.6, 0.95), "green star")
        _rows(page, 3)
        shots.append(out / "error.png")
        page.screenshot(path=shots[-1])
        page.keyboard.press("Delete")  # the new box is selected: delete it with the keyboard
        _rows(page, 2)
        _generate(page, steps)
        shots.append(out / "generate.png")
        page.screenshot(path=shots[-1], full_page=True)
        page.get_by_role("tab", name="Look inside").click()
        page.locator("#lg-heatmaps img").nth(1).wait_for()
        page.wait_for_function("() => document.querySelector('#lg-verdict').innerText.includes('blue square')")
        shots.append(out / "inside.png")
        page.screenshot(path=shots[-1], full_page=True)
        page.get_by_role("tab", name="Compare").click()
        page.locator("#lg-compare-methods textarea").fill("none,refocus,refocus[tokens=last]")
        page.locator("#lg-compare").click()
        page.locator("#lg-compare-grid img").wait_for()
        page.wait_for_timeout(1000)
        shots.append(out / "compare.png")
        page.screenshot(path=shots[-1], full_page=True)
        shots.append(_masks(browser, url, out, steps))
    return shots


def _masks(browser, url: str, out: Path, steps: int) -> Path:
    """Mask mode on a fresh page: one brush layer per phrase, painted, checked and generated with zestguide."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(600_000)
    page.goto(url)
    page.locator("#lg-check-list").wait_for()
    page.locator("#lg-prompt textarea").fill(PROMPT)
    use_masks(page, ["red circle", "blue square"])
    paint_layer(page, 0, (0.08, 0.3, 0.42, 0.7))
    paint_layer(page, 1, (0.58, 0.3, 0.92, 0.7))
    _rows(page, 2)
    method = page.locator("#lg-method input").first
    method.fill("zestguide")
    method.press("Enter")
    _generate(page, steps)
    path = out / "masks.png"
    page.screenshot(path=path, full_page=True)
    page.wait_for_load_state("networkidle")  # the mask editor's layer uploads: closing mid-upload logs a traceback
    page.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of the layoutguide web UI for docs/ui.md.")
    parser.add_argument("--out", type=Path, default=Path("docs/ui"))
    parser.add_argument("--steps", type=int, default=8, help="sampling steps of the generated examples")
    args = parser.parse_args()
    for path in take(args.out, args.steps):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
