"""Where the page's jobs run: beside the page (:class:`InProcessRunner`, for tests and embedding a loaded pipeline) or
in a process of their own that holds the model (:class:`ProcessRunner`, what ``layoutguide ui`` uses).

Why a process of its own: a job is mostly short torch calls with Python in between, and the page's server (Gradio's
queue loop, progress messages, the browser's requests) runs Python threads in the same interpreter. Each of them
takes the GIL from the job between two torch calls; a refocus job ran 7% slower and used 11% more CPU inside the page
process than the same call in a process of its own (docs/ui.md). In its own process the job runs as ``layoutguide
generate`` runs it, the page process never loads the model's weights, and a job that crashes the interpreter (out of
memory) takes down the worker, which the next job restarts, not the page.

The page side sends a :class:`~layoutguide.ui.jobs.GenerationRequest` and reads ("step", (done, total)) events, then
("done", output) or ("error", exception). Messages are pickled between the two processes of this one program (the
worker is spawned from this module, never connected to anything else)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any

from ..errors import LayoutguideError
from . import jobs


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the page needs to know of the loaded model, without its weights: the canvas, the sampling defaults, the
    backbone family, the methods that run on it and its tokenizer (phrase checks, heatmap labels)."""

    width: int
    height: int
    model_defaults: dict[str, Any]
    trained_timesteps: int
    default_guidance_scale: float
    family: str
    methods: list[str]
    tokenizer: Any

    @classmethod
    def of(cls, pipe) -> ModelInfo:
        from ..defaults import backbone_family
        from ..methods import runnable_methods

        size = int(pipe.unet.config.sample_size * pipe.vae_scale_factor)
        scheduler_config = getattr(getattr(pipe, "scheduler", None), "config", {}) or {}
        return cls(
            width=size,
            height=size,
            model_defaults=dict(pipe.model_defaults),
            trained_timesteps=int(scheduler_config.get("num_train_timesteps") or 0),
            default_guidance_scale=float(getattr(pipe, "default_guidance_scale", 7.5)),
            family=backbone_family(pipe.unet),
            methods=runnable_methods(pipe.denoiser),
            tokenizer=pipe.tokenizer,
        )


class WorkerError(LayoutguideError, RuntimeError):
    """The worker process could not load the model, or stopped while a job ran."""


class InProcessRunner:
    """Jobs on a pipeline loaded in this process (the caller's thread runs them)."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.info = ModelInfo.of(pipe)

    def run(self, request: jobs.GenerationRequest, *, on_step=None, cancel=None):
        return jobs.run(self.pipe, request, on_step=on_step, cancel=cancel)

    def close(self) -> None:
        pass


def _serve(model: str | None, device: str | None, threads: int, requests, events, cancel) -> None:
    """The worker process: load the model once, then run each request until ``None`` arrives. ``threads``: the page
    process's torch intra-op threads, so that a job computes as it would have there (the thread count changes the
    order of float sums, hence the last bit of a pixel)."""
    import torch

    from ..loading import load_pipeline

    torch.set_num_threads(threads)
    # Ctrl+C in the terminal reaches the whole process group: the page process stops, and this daemon process ends
    # with it instead of printing a KeyboardInterrupt traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    try:
        pipe = load_pipeline(model, device=device)
        events.put(("ready", ModelInfo.of(pipe)))
    except LayoutguideError as e:
        events.put(("failed", str(e)))
        return
    while (request := requests.get()) is not None:
        try:
            out = jobs.run(pipe, request, on_step=lambda d, t: events.put(("step", (d, t))), cancel=cancel)
            events.put(("done", out))
        except (LayoutguideError, ValueError) as e:
            events.put(("error", e if isinstance(e, LayoutguideError) else LayoutguideError(str(e))))


class ProcessRunner:
    """Jobs in a spawned process that loads ``model`` on ``device`` once (``load_pipeline``'s arguments). One job at a
    time; a worker that died is started again (the model reloaded) by the next job. Raises :class:`WorkerError` with
    the loader's one-line message when the model cannot be loaded."""

    POLL_S = 0.05  # how often a waiting job looks for a Cancel press or a dead worker

    def __init__(self, model: str | None = None, device: str | None = None) -> None:
        self.model, self.device = model, device
        self._lock = threading.Lock()
        self._process: Any = None
        self.info = self._start()

    def _start(self) -> ModelInfo:
        import torch

        context = multiprocessing.get_context("spawn")  # never fork a process that runs server threads
        self._requests, self._events, self._cancel = context.Queue(), context.Queue(), context.Event()
        self._process = context.Process(
            target=_serve,
            args=(self.model, self.device, torch.get_num_threads(), self._requests, self._events, self._cancel),
            name="layoutguide-worker",
            daemon=True,
        )
        self._process.start()
        kind, payload = self._next_event(None)
        if kind != "ready":
            self._process.join(timeout=5)
            raise WorkerError(payload)
        return payload

    def _next_event(self, cancel: threading.Event | None) -> tuple[str, Any]:
        while True:
            try:
                return self._events.get(timeout=self.POLL_S)
            except queue.Empty:
                if cancel is not None and cancel.is_set():
                    self._cancel.set()  # the worker raises Cancelled at its next step
                if not self._process.is_alive():
                    code = self._process.exitcode
                    raise WorkerError(
                        f"the model's worker process stopped (exit code {code}, e.g. out of memory); the next job "
                        "starts it again"
                    ) from None

    def run(
        self,
        request: jobs.GenerationRequest,
        *,
        on_step: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ):
        with self._lock:
            if not self._process.is_alive():
                self._start()
            self._cancel.clear()
            self._requests.put(request)
            while True:
                kind, payload = self._next_event(cancel)
                if kind == "step":
                    if cancel is not None and cancel.is_set():
                        self._cancel.set()
                    if on_step is not None:
                        on_step(*payload)
                elif kind == "done":
                    return payload
                else:
                    raise payload

    def close(self) -> None:
        """Stop the worker (after its current job)."""
        if self._process is not None and self._process.is_alive():
            self._requests.put(None)
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()
