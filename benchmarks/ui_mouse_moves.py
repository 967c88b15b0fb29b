"""How long one mouse move takes on the web UI's editors in headless Chromium: the mask editor (a WebGL canvas that
Chromium renders in software here) and the box editor, interleaved (masks, boxes, masks, boxes ...). Each Playwright
mouse move returns once the page has taken the input, which on the mask editor means a frame drawn. Usage:

    python benchmarks/ui_mouse_moves.py --moves 20 --reps 2

Prints ms per move for each editor and repetition, with the load average when it was taken (docs/ui.md, "Tests
and screenshots": why the mask-mode test paints with few moves)."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from layoutguide.loading import load_pipeline
from layoutguide.ui.browser import chromium, running_app, use_masks
from layoutguide.ui.handlers import Server


def ms_per_move(page, editor: str, moves: int) -> float:
    """Mean ms of ``moves`` mouse moves with the button held, across the middle of ``editor``'s canvas."""
    bb = page.locator(f"{editor} canvas").first.bounding_box()
    cx, cy = bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2
    page.mouse.move(cx - 100, cy)
    page.mouse.down()
    start = time.perf_counter()
    for k in range(moves):
        page.mouse.move(cx - 100 + 200 * k / moves, cy + 10 * (k % 2))
    elapsed = time.perf_counter() - start
    page.mouse.up()
    return 1000 * elapsed / moves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    server = Server(load_pipeline(device="cpu"), out_dir=tempfile.mkdtemp(prefix="ui-moves-"))
    times: dict[str, list[float]] = {"masks": [], "boxes": []}
    with running_app(server) as url, chromium() as browser:
        for rep in range(args.reps):
            for editor in times:
                page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
                page.set_default_timeout(120_000)
                page.goto(url)
                page.locator("#lg-check-list").wait_for()
                if editor == "masks":
                    use_masks(page, ["red circle", "blue square"])
                ms = ms_per_move(page, f"#lg-{editor}", args.moves)
                times[editor].append(ms)
                print(f"rep {rep} {editor}: {ms:.0f} ms per move (load average {os.getloadavg()[0]:.1f})", flush=True)
                page.context.close()
    for editor, values in times.items():
        print(f"{editor}: median {statistics.median(values):.0f} ms per move over {len(values)} reps")


if __name__ == "__main__":
    main()
