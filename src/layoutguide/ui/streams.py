"""The two long-running events of the page as generators: they yield a progress bar as sampling steps finish and
the results at the end. Leaving a generator early (Cancel, a closed page) cancels its job at the next step.

Every yield is a round trip through Gradio (the outputs post-processed, a message sent, the page re-rendered), work
that competes with the job for the CPU, so step updates are throttled to one per :data:`PROGRESS_EVERY` seconds (the
last step always shows), and the download bundle is written after the images are on the page, not before."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from ..errors import LayoutguideError
from .handlers import Result, Server, error_html, progress_html

PROGRESS_EVERY = 0.25  # s between progress updates: a step of the shipped model on CPU takes about 0.2 s


def throttled(events: Iterator[tuple[str, Any]], every: float = PROGRESS_EVERY) -> Iterator[tuple[str, Any]]:
    """``events`` of :meth:`Server.stream` with step events dropped when one was passed on less than ``every``
    seconds ago; the first and the last step of a job, and every other kind of event, always pass."""
    last = -float("inf")
    for kind, payload in events:
        if kind == "step":
            done, total = payload
            now = time.monotonic()
            if now - last < every and done not in (1, total):
                continue
            last = now
        yield kind, payload


def generation_stream(server: Server):
    """The Generate button: outputs (result state, progress, gallery, download, message)."""

    def generate(
        prompt_,
        mode_,
        boxes_,
        masks_,
        phrases_,
        method_,
        values,
        seed_,
        steps_,
        scale_,
        n_,
        att_,
        over_,
        request: gr.Request,
    ):
        try:
            layout = server.layout(prompt_, mode_, boxes_, masks_, phrases_)
            job = server.request(layout, method_, values, seed_, steps_, scale_, n_, att_)
        except LayoutguideError as e:
            yield gr.update(), error_html(e), gr.update(), gr.update(), gr.update()
            return
        yield gr.update(), progress_html(0, job.steps), gr.update(), gr.update(), gr.update()
        for kind, payload in throttled(server.stream(request.session_hash or "", job)):
            if kind == "step":
                yield gr.update(), progress_html(*payload), gr.update(), gr.update(), gr.update()
            elif kind == "error":
                yield (
                    gr.update(),
                    error_html(payload),
                    gr.update(),
                    gr.update(),
                    gr.update(),
                )
            else:
                result = Result(job, list(payload.images), payload.layouts[0], payload.attention)
                done = progress_html(job.steps, job.steps) + " done"
                yield result, done, server.shown(result, over_), None, gr.update()
                result.download = server.bundle(result)
                yield gr.update(), gr.update(), gr.update(), result.download, gr.update()

    return generate


def compare_stream(server: Server):
    """The Compare button: the same layout and seeds under every method or variant listed; outputs (progress,
    gallery captioned with each method, grid)."""

    def compare(prompt_, mode_, boxes_, masks_, phrases_, text, seed_, steps_, scale_, n_, request: gr.Request):
        tiles: list[tuple[Any, str]] = []
        try:
            layout = server.layout(prompt_, mode_, boxes_, masks_, phrases_)
            specs = server.compare_specs(text)
            jobs_ = [server.request(layout, spec, {}, seed_, steps_, scale_, n_, False) for spec in specs]
        except LayoutguideError as e:
            yield error_html(e), [], None
            return
        for k, job in enumerate(jobs_):
            for kind, payload in throttled(server.stream(request.session_hash or "", job, job.method)):
                if kind == "step":
                    yield (
                        progress_html(payload[0], payload[1], label=f"{job.method} ({k + 1}/{len(jobs_)})"),
                        tiles,
                        None,
                    )
                elif kind == "error":
                    yield error_html(f"{job.method}: {payload}"), tiles, None
                    return
                else:
                    tiles += [(im, job.method) for im in payload.images]
        yield progress_html(1, 1, "done"), tiles, server.compare_grid(tiles)

    return compare
