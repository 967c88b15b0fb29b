"""What the page's buttons do, as plain functions of the page's values: no Gradio layout here (``app.py`` wires
them), so each can be tested without a browser. Every deliberate error comes back as one line for the page."""

from __future__ import annotations

import dataclasses
import html
import queue
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from .. import layout_files
from ..errors import LayoutguideError
from ..layout import Layout, Region
from ..planner import get_planner
from ..spec import split_methods
from ..viz import draw_layout, grid
from . import annotate, files, inside, jobs
from .limits import Limits
from .options import changed_options, option_fields
from .preview import check_picture
from .worker import InProcessRunner, ModelInfo


@dataclasses.dataclass
class Result:
    """The last generation of one browser session (kept in its ``gr.State``)."""

    request: jobs.GenerationRequest
    images: list[Image.Image]
    layout: Layout
    attention: list[Any] | None
    download: str | None = None


class Server:
    """The model's runner (:mod:`.worker`), the caps, the download folder and the cancel switches of the sessions.
    ``Server(pipe)`` runs jobs on ``pipe`` in this process; ``Server(runner=ProcessRunner(model))`` in a worker
    process, as ``layoutguide ui`` does."""

    def __init__(
        self,
        pipe=None,
        *,
        runner=None,
        model: str | None = None,
        limits: Limits | None = None,
        out_dir: str | None = None,
    ):
        if (pipe is None) == (runner is None):
            raise TypeError("Server takes a pipeline or a runner, not both")
        self.runner = runner if runner is not None else InProcessRunner(pipe)
        self.info: ModelInfo = self.runner.info
        self.model = model
        self.limits = limits or Limits()
        self.out_dir = Path(out_dir or tempfile.mkdtemp(prefix="layoutguide-ui-"))
        self.cancels: dict[str, threading.Event] = {}
        self.width, self.height = self.info.width, self.info.height
        # the pipeline refuses more steps than its scheduler was trained with (layoutguide.inputs): so does the page
        trained = self.info.trained_timesteps
        self.max_steps = min(self.limits.max_steps, trained) if trained > 0 else self.limits.max_steps
        self.steps = min(int(self.info.model_defaults.get("num_inference_steps", 50)), self.max_steps)
        self.guidance_scale = float(self.info.model_defaults.get("guidance_scale", self.info.default_guidance_scale))

    # ------------------------------------------------------------------------------------------- layout
    def blank(self) -> dict[str, Any]:
        return {"image": annotate.blank_canvas(self.width, self.height), "boxes": []}

    def regions(self, mode: str, boxes: dict | None, mask_value: dict | None, mask_phrases: str) -> list[Region]:
        if mode == "masks":
            layers = (mask_value or {}).get("layers") or []
            phrases = [p for p in (mask_phrases or "").splitlines() if p.strip()]
            return annotate.regions_from_layers(layers, phrases, self.width, self.height)
        return annotate.regions_from_annotation(boxes)

    def check(self, prompt: str, mode: str, boxes, mask_value, mask_phrases: str) -> tuple[str, Image.Image]:
        """The per-box check list (HTML) and the picture with each message next to its box."""
        try:
            regions = self.regions(mode, boxes, mask_value, mask_phrases)
        except LayoutguideError as e:
            return f'<p class="lg-error">{html.escape(str(e))}</p>', check_picture([], [], self.width, self.height)
        result = annotate.check_layout(prompt, regions, self.width, self.height, self.info.tokenizer)
        rows = []
        if result.layout:
            rows.append(f'<li class="lg-error" data-region="layout">{html.escape(result.layout)}</li>')
        for i, (region, message) in enumerate(zip(regions, result.regions)):
            state = f'<span class="lg-error">{html.escape(message)}</span>' if message else "ok"
            rows.append(
                f'<li data-region="{i}"><b>{i}: {html.escape(region.phrase or "(no phrase)")}</b> {state}</li>'
            )
        if not regions:
            rows.append("<li>no boxes yet: drag on the canvas to draw one, then type its phrase</li>")
        body = f'<ul id="lg-check-list">{"".join(rows)}</ul>'
        picture = check_picture(regions, result.regions, self.width, self.height)
        return body, picture

    def layout(self, prompt: str, mode: str, boxes, mask_value, mask_phrases: str) -> Layout:
        regions = self.regions(mode, boxes, mask_value, mask_phrases)
        self.limits.check_regions(len(regions))
        return annotate.layout_from_regions(prompt, regions, self.width, self.height)

    def plan(self, prompt: str, planner: str, url: str, llm_model: str, api_key: str) -> tuple[dict, str]:
        """The planned boxes for the editor, and the planner's notes (or the error)."""
        try:
            kwargs: dict[str, Any] = (
                {} if planner == "rule" else {"base_url": url or None, "llm_model": llm_model or None}
            )
            if planner != "rule" and api_key:
                kwargs["api_key"] = api_key
            result = get_planner(planner, **kwargs).plan(prompt)
            self.limits.check_regions(len(result.layout.regions))
        except LayoutguideError as e:
            return self.blank(), f"**Error:** {e}"
        planned = (
            result.layout.replace(width=self.width, height=self.height)
            if not any(r.mask is not None for r in result.layout.regions)
            else result.layout
        )
        notes = "; ".join(result.notes) or "planned"
        return annotate.annotation_from_layout(planned), f"{len(planned.regions)} boxes {notes}"

    def load(self, path: str | None, prompt: str) -> tuple[dict, str, str]:
        """Editor value, prompt and message for an uploaded layout file."""
        if not path:
            return self.blank(), prompt, ""
        try:
            self.limits.check_upload(Path(path).stat().st_size, Path(path).name)
            layout = layout_files.load_layout(path, prompt, width=self.width, height=self.height)
            self.limits.check_regions(len(layout.regions))
            self.limits.check_canvas(layout.width, layout.height)
        except LayoutguideError as e:
            return self.blank(), prompt, f"**Error:** {e}"
        return annotate.annotation_from_layout(layout), layout.prompt, f"loaded {len(layout.regions)} regions"

    def save(self, prompt: str, mode: str, boxes, mask_value, mask_phrases: str, fmt: str) -> tuple[str | None, str]:
        try:
            layout = self.layout(prompt, mode, boxes, mask_value, mask_phrases)
            folder = self.out_dir / uuid.uuid4().hex
            return str(layout_files.save_layout(layout, fmt, folder)), f"saved as {layout_files.FORMATS[fmt][1]}"
        except LayoutguideError as e:
            return None, f"**Error:** {e}"

    # ------------------------------------------------------------------------------------------- generation
    def request(self, layout: Layout, method: str, values: dict, seed, steps, scale, images, attention):
        fields = option_fields(method, self.info.model_defaults, self.info.family)
        request = jobs.GenerationRequest(
            layout=layout,
            method=method.strip() or "none",
            options=changed_options(fields, values or {}),
            seed=int(seed),
            steps=int(steps),
            guidance_scale=float(scale),
            images=int(images),
            attention=bool(attention),
        )
        request.check(self.limits)
        return request

    def stream(self, session: str, request: jobs.GenerationRequest, label: str = "") -> Iterator[tuple[str, Any]]:
        """Run one job in a worker thread; yields ("step", (done, total)) per step, then ("done", output).
        Stopping the iteration early (Cancel, a closed page) cancels the job at its next step."""
        # a switch per job: the session's previous job may still be stopping (Cancel, then Generate at once), and
        # clearing its switch would let it run on to its last step while the new job waits for the device
        cancel = self.cancels[session] = threading.Event()
        events: queue.Queue = queue.Queue()

        def on_step(done: int, total: int) -> None:
            events.put(("step", (done, total)))

        def work() -> None:
            try:
                out = self.runner.run(request, on_step=on_step, cancel=cancel)
                events.put(("done", out))
            except (LayoutguideError, ValueError) as e:
                events.put(("error", e))

        thread = threading.Thread(target=work, name=f"layoutguide-job-{label}", daemon=True)
        thread.start()
        finished = False
        try:
            while True:
                kind, payload = events.get()
                finished = kind != "step"
                yield kind, payload
                if finished:
                    return
        finally:
            if not finished:
                cancel.set()
            thread.join()

    def cancel(self, session: str) -> str:
        event = self.cancels.get(session)
        if event is not None:
            event.set()
        return "cancelling at the next step"

    def bundle(self, result: Result) -> str:
        folder = self.out_dir / uuid.uuid4().hex
        return str(files.save_bundle(folder, result.images, result.request, model=self.model))

    @staticmethod
    def shown(result: Result | None, overlay: bool) -> list[tuple[Image.Image, str]]:
        if result is None:
            return []
        if overlay and result.layout.regions:
            return [(draw_layout(im, result.layout), f"image {j}") for j, im in enumerate(result.images)]
        return [(im, f"image {j}") for j, im in enumerate(result.images)]

    # ------------------------------------------------------------------------------------------- compare, inside
    def compare_specs(self, text: str) -> list[str]:
        specs = split_methods(text)
        self.limits.check_compare(len(specs))
        return specs

    @staticmethod
    def compare_grid(tiles: list[tuple[Image.Image, str]]) -> Image.Image:
        images = [t[0].resize((max(128, t[0].width), max(128, t[0].height)), Image.Resampling.NEAREST) for t in tiles]
        return grid(images, columns=len(tiles), captions=[t[1] for t in tiles])

    def heatmaps(self, result: Result | None, index: int, step: int) -> list[tuple[Image.Image, str]]:
        if result is None or not result.attention:
            return []
        index = min(max(int(index), 0), len(result.images) - 1)
        return inside.step_heatmaps(
            result.images[index], result.layout, result.attention, index, int(step), self.info.tokenizer
        )

    def inside(self, result: Result | None, index: int, step: int) -> tuple[list, list[list[object]], str, int, int]:
        """The "Look inside" tab: heatmaps, verdict rows, verdict line, and the last valid image index and step
        (the sliders' bounds: the result's images and recorded steps)."""
        rows, summary = self.verdict(result, index)
        images = len(result.images) if result is not None else 1
        steps = len(result.attention) if result is not None and result.attention else self.steps
        return self.heatmaps(result, index, step), rows, summary, max(images - 1, 0), max(steps - 1, 0)

    @staticmethod
    def verdict(result: Result | None, index: int) -> tuple[list[list[object]], str]:
        if result is None or not result.layout.regions:
            return [], "generate an image first"
        index = min(max(int(index), 0), len(result.images) - 1)
        return inside.verdict_rows(result.images[index], result.layout)


def progress_html(done: int, total: int, label: str = "") -> str:
    """A progress bar the page shows per sampling step."""
    text = f"{label} step {done}/{total}".strip()
    return f'<progress id="lg-progress" value="{done}" max="{total}"></progress> <span id="lg-step">{text}</span>'


def error_html(error: object) -> str:
    """One line of error text for the page (escaped: a phrase may hold markup)."""
    return f'<span class="lg-error">{html.escape(str(error))}</span>'
