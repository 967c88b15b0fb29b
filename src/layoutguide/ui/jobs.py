"""One generation job: the request as data, the pipeline call with per-step progress and cancelling, and the
``layoutguide generate`` command that reproduces it (written into the run file beside the images)."""

from __future__ import annotations

import dataclasses
import json
import shlex
import threading
from collections.abc import Callable
from typing import Any

from ..errors import LayoutguideError
from ..layout import Layout
from ..spec import MethodSpec
from .limits import Limits


class Cancelled(LayoutguideError, RuntimeError):
    """The person pressed Cancel (or closed the page) while the job ran."""


@dataclasses.dataclass(frozen=True)
class GenerationRequest:
    """Everything that decides the images: the same fields as ``layoutguide generate``'s options."""

    layout: Layout
    method: str = "refocus"
    options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # {member: {option: value}}
    seed: int = 0
    steps: int = 30
    guidance_scale: float = 3.0
    images: int = 1
    attention: bool = False  # record the per-step cross-attention maps (the "Look inside" tab)

    def check(self, limits: Limits) -> None:
        limits.check_regions(len(self.layout.regions))
        limits.check_canvas(self.layout.width, self.layout.height)
        limits.check_sampling(self.steps, self.images)

    def method_options(self) -> dict[str, Any] | None:
        """The pipeline's ``method_options`` (one method: its own dict; a combination: per member), as the CLI
        passes ``--set``."""
        members = MethodSpec.parse(self.method).members
        if len(members) > 1:
            return {m: o for m, o in self.options.items() if o} or None
        return self.options.get(members[0]) if members else None

    def command(self, layout_file: str = "layout.json", out: str = "image.png", model: str | None = None) -> str:
        """The ``layoutguide generate`` command line that makes the same images from ``layout_file``."""
        args = ["layoutguide", "generate", "--layout", layout_file, "--method", self.method]
        args += [
            "--seed",
            str(self.seed),
            "--steps",
            str(self.steps),
            "--guidance-scale",
            repr(float(self.guidance_scale)),
        ]
        args += ["-n", str(self.images), "--out", out]
        for member, options in sorted(self.options.items()):
            for name, value in sorted(options.items()):
                args += ["--set", f"{member}.{name}={json.dumps(value) if not isinstance(value, str) else value}"]
        if model is not None:
            args += ["--model", model]
        return shlex.join(args)


def run(
    pipe,
    request: GenerationRequest,
    *,
    on_step: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
):
    """Run ``request`` on ``pipe``; ``on_step(done, total)`` after each step; raises :class:`Cancelled` at the next
    step once ``cancel`` is set. Returns the pipeline's output."""

    def callback(info: dict[str, Any]) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("generation cancelled")
        if on_step is not None:
            on_step(int(info["step"]) + 1, request.steps)

    return pipe(
        layout=request.layout,
        method=None if request.method == "none" else request.method,
        method_options=request.method_options(),
        num_inference_steps=request.steps,
        guidance_scale=request.guidance_scale,
        num_images_per_prompt=request.images,
        seed=request.seed,
        return_attention=request.attention,
        callback=callback,
        progress=False,
    )
