"""What made a benchmark folder's images (``run.json``), so that a resumed run never mixes two settings.

``run.json`` records the model fingerprint, the suite and sampling settings, and each row's method and options.
Settings are compared by what they resolve to: ``guidance_scale=3.0`` on a model whose default is 3.0 resumes a
folder made without it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError, LayoutguideError
from .files import Report, read_json, write_json


class BenchResumeError(LayoutguideError, ValueError):
    """The output folder holds images made with other settings."""


def model_fingerprint(pipe: Any) -> str:
    """A short hash of the pipeline's weights (the first values of every tensor) and its per-model defaults."""
    digest = hashlib.sha256(json.dumps(getattr(pipe, "model_defaults", {}), sort_keys=True).encode())
    for name in ("unet", "text_encoder", "text_encoder_2", "vae"):
        module = getattr(pipe, name, None)
        for key, tensor in module.state_dict().items() if module is not None else ():
            digest.update(key.encode())
            digest.update(tensor.detach().flatten()[:64].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def sampling_defaults(pipe: Any) -> dict[str, Any]:
    """What ``steps=None`` and ``guidance_scale=None`` resolve to on ``pipe`` (the pipeline's own rule)."""
    defaults = getattr(pipe, "model_defaults", {}) or {}
    scale = defaults.get("guidance_scale", getattr(pipe, "default_guidance_scale", 7.5))
    steps = defaults.get("num_inference_steps", getattr(pipe, "default_steps", 50))
    return {"steps": steps, "guidance_scale": scale}


def check_sampling(steps: int | None, guidance_scale: float | None) -> None:
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise InputError(f"steps must be a whole number of at least 1 (or None for the model's), got {steps!r}")
    if guidance_scale is not None and not math.isfinite(guidance_scale):
        raise InputError(f"guidance_scale must be a finite number, got {guidance_scale!r}")


def run_settings(pipe: Any, n: int, seed: int, steps: int | None, guidance_scale: float | None) -> dict[str, Any]:
    """What every benchmark run records and resumes on: the model, the suite's size and seed, the sampling."""
    return {"model": model_fingerprint(pipe), "n": n, "seed": seed, "steps": steps, "guidance_scale": guidance_scale}


def _resolved(value: Any, default: Any) -> Any:
    return default if value is None else value


def check_resume(
    out: Path,
    settings: dict[str, Any],
    methods: dict[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    report: Report = print,
) -> None:
    """Record the run's settings in ``out/run.json``, or refuse to resume a run made with other settings.

    ``defaults`` gives what a None setting resolves to; a recorded None and a given default are then the same. A
    damaged ``run.json`` is rewritten from this run's settings (said through ``report``): the images beside it were
    made by a run of this command into this folder, and damaged images are redone on their own."""
    path = out / "run.json"
    record = read_json(path, report, "rewritten from this run's settings") or {}
    if not isinstance(record.get("settings"), dict) or not isinstance(record.get("methods"), dict):
        record = {"settings": {}, "methods": {}}
    defaults = defaults or {}
    for key, value in settings.items():
        if key in record["settings"]:
            old = record["settings"][key]
            if _resolved(old, defaults.get(key)) != _resolved(value, defaults.get(key)):
                raise BenchResumeError(
                    f"{out} holds a benchmark run with {key}={old!r}, this one has {key}={value!r}; "
                    "choose another output folder, or delete this one to start over"
                )
        record["settings"].setdefault(key, value)  # a planner added to a run: its layouts are recorded too
    for label, options in methods.items():
        if label in record["methods"] and record["methods"][label] != options:
            raise BenchResumeError(
                f"{out} holds images of method {label!r} made with options {record['methods'][label]}, this run asks "
                f"for {options}; choose another output folder, or delete {out / 'images'} to start over"
            )
        record["methods"][label] = options
    write_json(path, record, sort_keys=True)
