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


# Backbone families (item 9 of issue 16): published step sizes are per backbone, not per method. A model folder
# without layoutguide.json (every real model folder) gets its family's values; a model with one was calibrated and
# its file replaces the family's values (the shipped shapes models).
FAMILIES = ("sd1", "sd2", "gligen", "sdxl")
FAMILY_NAMES = {
    "sd1": "Stable Diffusion 1.x (CLIP ViT-L text width 768)",
    "sd2": "Stable Diffusion 2.x (OpenCLIP text width 1024)",
    "gligen": "GLIGEN (gated UNet, SD-1.4 based)",
    "sdxl": "SDXL (added text/time conditioning)",
    "dit": "SD3/SD3.5 or FLUX.1 transformer (joint attention; no published step sizes for these methods)",
}
_AR_ISSUE = "Attention Refocusing issue #3: no effect on plain SD below ~10x the GLIGEN step sizes"
_ZG_SD14 = "ZestGuide's released SD-1.4 code (configs/zestguide_stbldif14.yaml: lr 0.3)"
# family -> method -> option -> (value, why)
FAMILY_DEFAULTS: dict[str, dict[str, dict[str, tuple[Any, str]]]] = {
    "sd1": {"refocus": {"loss_scale": (10.0, _AR_ISSUE)}, "zestguide": {"eta": (0.3, _ZG_SD14)}},
    "sd2": {"refocus": {"loss_scale": (10.0, _AR_ISSUE)}, "zestguide": {"eta": (0.3, _ZG_SD14)}},
    "gligen": {
        "refocus": {"loss_scale": (1.0, "the official code's GLIGEN step sizes (guide_gligen.py)")},
        "zestguide": {"eta": (0.3, _ZG_SD14 + "; GLIGEN is SD-1.4 based")},
    },
    "sdxl": {
        "refocus": {"loss_scale": (10.0, _AR_ISSUE + " (SDXL: no published value; the SD advice)")},
        "zestguide": {
            "eta": (0.1, "ZestGuide's SDXL code (README: lr 0.1)"),
            "tau": (0.4, "ZestGuide's SDXL code (README: tau 0.4)"),
        },
    },
}


def backbone_family(unet: Any) -> str:
    """The backbone family of a loaded UNet, from its config: ``gligen`` (gated fusers and a position net),
    ``sdxl`` (added text/time conditioning), ``sd2`` (text width 1024), else ``sd1`` (text width 768, and small
    models such as the shapes model, whose nearest published backbone that is)."""
    config = getattr(unet, "config", {}) or {}
    if config.get("joint_attention_dim"):  # an SD3 or FLUX transformer: no family step sizes are published
        return "dit"
    if getattr(unet, "position_net", None) is not None or config.get("attention_type") == "gated":
        return "gligen"
    if config.get("addition_embed_type"):
        return "sdxl"
    if config.get("cross_attention_dim") == 1024:
        return "sd2"
    return "sd1"


def family_defaults(family: str, method: str, model: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """``{option: (value, why)}`` the family gives ``method``, or {} when the model's ``layoutguide.json`` (``model``,
    the parsed file) exists: a calibrated model's own values replace the family's."""
    if model:
        return {}
    return dict(FAMILY_DEFAULTS.get(family, {}).get(method, {}))
