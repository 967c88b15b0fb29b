"""Finding and loading models: the shipped shapes model by default, local folders, hub ids; device and dtype."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .defaults import MODEL_DEFAULTS_FILE, check_guidance_interval, model_defaults  # noqa: F401 (re-exported)
from .errors import LayoutguideError

SHIPPED_MODEL = Path(__file__).parent / "weights" / "shapes"


class ModelNotFoundError(LayoutguideError, RuntimeError):
    """The model argument names neither a readable folder nor a reachable hub id."""


def pick_device(device: str | None = None) -> torch.device:
    """``"auto"``/None: CUDA, then Apple MPS, then CPU."""
    if device and device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``"auto"``/None: float16 on CUDA (bfloat16 where the card supports it and fp16 is not asked), float32 elsewhere."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "fp16": torch.float16,
        "float16": torch.float16,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
    }
    if dtype and dtype != "auto":
        if dtype not in names:
            raise ValueError(f"dtype: unknown {dtype!r}; use one of auto, {', '.join(names)}")
        return names[dtype]
    return torch.float16 if device.type == "cuda" else torch.float32


def parse_guidance_interval(text: str) -> list[float] | None:
    """``"0,900"`` -> ``[0.0, 900.0]`` (CFG only at timesteps 0 <= t <= 900); ``"all"`` -> None (every step)."""
    if text.strip().lower() == "all":
        return None
    try:
        interval = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--guidance-interval {text!r}: expected LOW,HIGH in timesteps (e.g. 0,900) or 'all'"
        ) from None
    check_guidance_interval(interval, f"--guidance-interval {text!r}")
    return interval


def load_pipeline(
    model: str | os.PathLike | None = None,
    *,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    guidance_interval: str | None = None,
):
    """A LayoutPipeline from ``model`` (None: the shipped shapes model; a folder; or a hub id), on ``device``.

    ``guidance_interval`` (``"LOW,HIGH"`` or ``"all"``) replaces the model's default for this pipeline, so it also
    enters a benchmark's model fingerprint.
    """
    from .pipeline import LayoutPipeline

    interval = (
        None if guidance_interval is None else parse_guidance_interval(guidance_interval)
    )  # bad input fails before loading
    source = SHIPPED_MODEL if model is None else model
    local = Path(source).expanduser()
    if model is None and not (local / "model_index.json").is_file():
        raise ModelNotFoundError(
            f"the shipped shapes model is missing at {local}; reinstall layoutguide or train one with 'layoutguide shapes train'"
        )
    if local.exists() and not (local / "model_index.json").is_file():
        raise ModelNotFoundError(
            f"--model {str(source)!r} is a folder without model_index.json; point at a diffusers pipeline folder"
        )
    device_ = pick_device(device)
    dtype_ = pick_dtype(dtype, device_)
    try:
        pipe = LayoutPipeline.from_pretrained(str(local if local.exists() else source), dtype=dtype_)
    except (OSError, ValueError) as e:
        if local.exists():
            raise ModelNotFoundError(f"could not load the pipeline folder {str(local)!r}: {e}") from None
        raise ModelNotFoundError(
            f"--model {str(source)!r} is not a local folder and could not be loaded from the Hugging Face hub "
            f"(offline, or no such repository: {type(e).__name__}). Download it first "
            "(huggingface-cli download ID --local-dir DIR) and pass the folder, or omit --model for the shipped shapes model."
        ) from None
    pipe.set_progress_bar_config(leave=False)
    if guidance_interval is not None:
        pipe.model_defaults = {**pipe.model_defaults, "guidance_interval": interval}
    return pipe.to(device_)
