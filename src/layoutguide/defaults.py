"""Per-model defaults shipped beside the weights (``layoutguide.json``) and the checks on sampling settings they
hold. Below the pipeline in the import order, so the pipeline reads them without importing model loading."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import InputError

MODEL_DEFAULTS_FILE = "layoutguide.json"  # beside model_index.json: sampling and method defaults for that model


def model_defaults(path: str | os.PathLike) -> dict[str, Any]:
    """Per-model defaults shipped beside the weights (steps, guidance scale, method options), or {}."""
    f = Path(path) / MODEL_DEFAULTS_FILE
    return json.loads(f.read_text()) if f.is_file() else {}


def check_guidance_interval(interval: Sequence[float], field: str = "guidance_interval") -> None:
    """Raise an InputError naming ``field`` unless ``interval`` is ``(t_low, t_high)`` with 0 <= t_low <= t_high."""
    if len(interval) != 2 or not 0 <= interval[0] <= interval[1]:
        raise InputError(f"{field} must be (t_low, t_high) with 0 <= t_low <= t_high, got {tuple(interval)!r}")
