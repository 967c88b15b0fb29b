"""From click to image in the web UI vs the same job as ``layoutguide generate`` runs it, model kept loaded on both
sides, repetitions interleaved (generate, page, generate, page ...). Usage (CPU, shipped model):

    python benchmarks/ui_overhead.py --method refocus --steps 8 --reps 5

The generate side runs in a process of its own that loads the model once and then, per repetition, does what
``layoutguide generate --layout L --method M --steps N`` does after loading: one pipeline call, the image saved. The
page side runs as ``layoutguide ui`` runs it: the app on 127.0.0.1 in this process, its jobs in a worker process that
holds the model (``--in-process``: in this process, the page's design before the worker), and headless Chromium; its
time runs from the Generate click to the image shown in the page with "done" under it (progress updates and the page
update included; the download bundle is written right after). Per repetition it also prints where the page's time went:
click to the job's start, the job (the pipeline call, and the hand-over to the worker and back), the job's end to the
image on the page; and the CPU seconds each side used (the generate process; for the page this process, the worker and
Chromium)."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from layoutguide.layout import Layout, Region
from layoutguide.loading import load_pipeline
from layoutguide.ui.browser import chromium, running_app
from layoutguide.ui.handlers import Server
from layoutguide.ui.worker import InProcessRunner, ProcessRunner

PROMPT = "a red circle and a blue square"
LAYOUT = Layout(
    PROMPT,
    (Region("red circle", box=(0.1, 0.1, 0.45, 0.5)), Region("blue square", box=(0.55, 0.5, 0.9, 0.9))),
    width=64,
    height=64,
)


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process, its finished threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants_cpu(root: int, skip: tuple[int, ...] = ()) -> float:
    """CPU seconds of every live process below ``root`` but those in ``skip`` and below them (Chromium's processes
    under this one, skipping the generate side and the page's worker)."""
    parent, cpu = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(entry.name)] = int(fields[1])
            cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid, seconds in cpu.items():
        up = pid
        while up > 1 and up != root and up not in skip:
            up = parent.get(up, 0)
        total += seconds if up == root and pid != root else 0.0
    return total


def generate_once(pipe, method: str, steps: int, out: Path) -> float:
    """What ``layoutguide generate --layout L --method M --steps N`` does after loading: one call, save the image."""
    start = time.perf_counter()
    result = pipe(
        layout=LAYOUT,
        method=None if method == "none" else method,
        num_inference_steps=steps,
        guidance_scale=3.0,
        seed=0,
        progress=False,
    )
    result.images[0].save(out)
    return time.perf_counter() - start


def generate_worker(conn, threads: int, method: str, steps: int, folder: str) -> None:
    """The generate side: its own process, the model loaded once; answers each request with (wall s, CPU s)."""
    torch.set_num_threads(threads)
    pipe = load_pipeline(device="cpu")
    generate_once(pipe, method, steps, Path(folder) / "warm.png")  # warm-up, not counted
    conn.send("ready")
    while conn.recv() == "run":
        cpu = cpu_seconds()
        wall = generate_once(pipe, method, steps, Path(folder) / "generate.png")
        conn.send((wall, cpu_seconds() - cpu))


class JobClock:
    """Wraps the page's runner (what the page's job thread calls) to time the job as the page sees it: the pipeline
    call, and with the worker process the hand-over to it and back."""

    def __init__(self, runner) -> None:
        self.start = self.end = 0.0
        self._run = runner.run
        runner.run = self.run

    def run(self, *args, **kwargs):
        self.start = time.perf_counter()
        try:
            return self._run(*args, **kwargs)
        finally:
            self.end = time.perf_counter()


def page_once(page, clock: JobClock, worker: int | None, skip: tuple[int, ...]) -> dict[str, float]:
    """One click on Generate; the wall time to the image shown, split into before, during and after the job; CPU
    seconds of this process, the page's ``worker`` process (None: none) and Chromium (this process's other
    descendants but ``skip``)."""
    worker_cpu = (lambda: cpu_seconds(worker)) if worker is not None else (lambda: 0.0)
    cpu, chrome, job_cpu = cpu_seconds(), descendants_cpu(os.getpid(), skip), worker_cpu()
    start = time.perf_counter()
    page.locator("#lg-generate").click()
    page.wait_for_function("() => !document.querySelector('#lg-progress-box').innerText.includes('done')")
    page.wait_for_function(
        "() => document.querySelector('#lg-progress-box').innerText.includes('done')"
        " && document.querySelector('#lg-gallery img') !== null",
        timeout=0,
        polling="raf",
    )
    end = time.perf_counter()
    return {
        "wall": end - start,
        "before": clock.start - start,
        "job": clock.end - clock.start,
        "after": end - clock.end,
        "cpu": cpu_seconds() - cpu,
        "worker": worker_cpu() - job_cpu,
        "chromium": descendants_cpu(os.getpid(), skip) - chrome,
    }


def open_page(browser, url: str, folder: Path, method: str, steps: int):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(600_000)
    page.goto(url)
    page.locator("#lg-check-list").wait_for()
    LAYOUT.to_json(folder / "layout.json")  # the very layout the generate side runs
    page.get_by_text("Files", exact=True).click()
    page.locator("#lg-upload input[type=file]").set_input_files(str(folder / "layout.json"))
    page.wait_for_function("() => document.querySelectorAll('#lg-check-list li').length === 2")
    box = page.locator("#lg-steps input[type=number]").first
    box.fill(str(steps))
    box.press("Enter")
    page.get_by_label("Record attention (Look inside)").uncheck()  # plain generate records none
    field = page.locator("#lg-method input").first
    field.fill(method)
    field.press("Enter")
    page.wait_for_timeout(1000)
    return page


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


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
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the page's jobs in the page's own process (the UI's design before the worker process) instead of "
        "in a worker process as `layoutguide ui` does",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        context = multiprocessing.get_context("spawn")
        conn, child_conn = context.Pipe()
        worker = context.Process(
            target=generate_worker, args=(child_conn, args.threads, args.method, args.steps, tmp), daemon=True
        )
        worker.start()
        # the page as `layoutguide ui` serves it: the model in a worker process (or, --in-process, in this one)
        runner = InProcessRunner(load_pipeline(device="cpu")) if args.in_process else ProcessRunner(device="cpu")
        clock = JobClock(runner)
        generate, pages = [], []
        with running_app(Server(runner=runner)) as url, chromium() as browser:
            page = open_page(browser, url, folder, args.method, args.steps)
            job_pid = getattr(getattr(runner, "_process", None), "pid", None)
            skip = (worker.pid, job_pid) if job_pid else (worker.pid,)
            page_once(page, clock, job_pid, skip)  # warm-up, not counted
            assert conn.recv() == "ready"
            for k in range(args.reps):
                conn.send("run")
                wall, cpu = conn.recv()
                generate.append({"wall": wall, "cpu": cpu})
                pages.append(page_once(page, clock, job_pid, skip))
                p = pages[-1]
                print(
                    f"rep {k}: generate {wall:.2f} s (CPU {cpu:.2f} s); page {p['wall']:.2f} s = click to job "
                    f"{p['before']:.3f} + job {p['job']:.2f} + job to image {p['after']:.3f} (CPU: this process "
                    f"{p['cpu']:.2f} s, worker {p['worker']:.2f} s, Chromium {p['chromium']:.2f} s)",
                    flush=True,
                )
        conn.send("stop")
        worker.join(timeout=30)
        runner.close()
    g, u = median(generate, "wall"), median(pages, "wall")
    # each page repetition over the generate repetition just before it: a load that drifts over the run (a shared
    # machine) moves both members of a pair alike, so the paired ratio is steadier than the ratio of the medians
    paired = sorted(p["wall"] / q["wall"] for p, q in zip(pages, generate))
    print(
        f"median of {args.reps}: generate {g:.2f} s ({min(r['wall'] for r in generate):.2f}-"
        f"{max(r['wall'] for r in generate):.2f}), page {u:.2f} s ({min(r['wall'] for r in pages):.2f}-"
        f"{max(r['wall'] for r in pages):.2f}), overhead {100 * (u / g - 1):+.1f}%; paired overhead, median "
        f"{100 * (statistics.median(paired) - 1):+.1f}% (quartiles {100 * (paired[len(paired) // 4] - 1):+.1f}% to "
        f"{100 * (paired[(3 * len(paired)) // 4] - 1):+.1f}%)"
    )
    print(
        f"page, medians: click to job {median(pages, 'before'):.3f} s, job {median(pages, 'job'):.2f} s, job to image "
        f"{median(pages, 'after'):.3f} s; CPU s per job: generate {median(generate, 'cpu'):.2f}, page process "
        f"{median(pages, 'cpu'):.2f} + worker {median(pages, 'worker'):.2f} + Chromium {median(pages, 'chromium'):.2f}"
    )


if __name__ == "__main__":
    main()
