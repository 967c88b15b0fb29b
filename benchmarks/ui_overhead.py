"""From click to image in the web UI vs the same job through the library as ``layoutguide generate`` runs it, model
kept loaded, interleaved repetitions. Usage (CPU, shipped model):

    python benchmarks/ui_overhead.py --method refocus --steps 8 --reps 5

Prints one line per repetition and the medians; the UI time runs from the Generate click in headless Chromium to
the image shown in the page (progress per step, the download bundle and the page update included)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from layoutguide.layout import Layout, Region
from layoutguide.loading import load_pipeline
from layoutguide.ui.browser import chromium, running_app
from layoutguide.ui.handlers import Server
from layoutguide.ui.jobs import GenerationRequest, run

PROMPT = "a red circle and a blue square"
LAYOUT = Layout(
    PROMPT,
    (Region("red circle", box=(0.1, 0.1, 0.45, 0.5)), Region("blue square", box=(0.55, 0.5, 0.9, 0.9))),
    width=64,
    height=64,
)


def cli_once(pipe, method: str, steps: int, out: Path) -> float:
    """What ``layoutguide generate --layout L --method M --steps N`` does after loading: one call, save the image."""
    start = time.perf_counter()
    request = GenerationRequest(LAYOUT, method=method, steps=steps, guidance_scale=3.0)
    result = run(pipe, request)
    result.images[0].save(out)
    return time.perf_counter() - start


def ui_once(page) -> float:
    start = time.perf_counter()
    page.locator("#lg-generate").click()
    page.wait_for_function("() => !document.querySelector('#lg-progress-box').innerText.includes('done')")
    page.wait_for_function(
        "() => document.querySelector('#lg-progress-box').innerText.includes('done')"
        " && document.querySelector('#lg-gallery img') !== null",
        timeout=0,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="refocus")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both sides (on a shared, oversubscribed CPU two spinning OpenMP threads made "
        "the main thread 10-30x slower than a worker thread; one thread keeps the comparison about the page)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline(device="cpu")
    server = Server(pipe)
    cli_times, ui_times = [], []
    with tempfile.TemporaryDirectory() as tmp, running_app(server) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        page.locator("#lg-check-list").wait_for()
        LAYOUT.to_json(Path(tmp) / "layout.json")  # the very layout the generate side runs
        page.get_by_text("Files", exact=True).click()
        page.locator("#lg-upload input[type=file]").set_input_files(str(Path(tmp) / "layout.json"))
        page.wait_for_function("() => document.querySelectorAll('#lg-check-list li').length === 2")
        steps = page.locator("#lg-steps input[type=number]").first
        steps.fill(str(args.steps))
        steps.press("Enter")
        page.get_by_label("Record attention (Look inside)").uncheck()  # plain generate records none
        method = page.locator("#lg-method input").first
        method.fill(args.method)
        method.press("Enter")
        cli_once(pipe, args.method, args.steps, Path(tmp) / "warm.png")  # warm-up, not counted
        for k in range(args.reps):
            cli_times.append(cli_once(pipe, args.method, args.steps, Path(tmp) / f"{k}.png"))
            ui_times.append(ui_once(page))
            print(f"rep {k}: generate {cli_times[-1]:.2f} s, UI click to image {ui_times[-1]:.2f} s", flush=True)
    cli, ui = statistics.median(cli_times), statistics.median(ui_times)
    print(f"median: generate {cli:.2f} s, UI {ui:.2f} s, overhead {100 * (ui / cli - 1):+.1f}%")


if __name__ == "__main__":
    main()
