"""What the ``transformers`` detectors share: loading a local folder safely, options given as text, box helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import InputError
from .base import Box


def model_folder(weights: str | None, detector: str, model_type: str, hub_ids: str) -> Path:
    """The local folder ``weights`` names, checked before ``transformers`` sees it: it exists, its ``config.json``
    is a ``model_type`` model, and its weights are safetensors (pickled ``.bin`` weights are refused)."""
    if weights is None:
        raise InputError(
            f"detector_weights: the {detector} detector needs a local folder saved by transformers "
            f"(config.json, model.safetensors, the processor's files), e.g. a snapshot of {hub_ids}"
        )
    folder = Path(weights).expanduser()
    if not folder.is_dir():
        raise InputError(f"detector_weights: {str(folder)!r} is not a folder; give the {detector} model's folder")
    config = folder / "config.json"
    if not config.is_file():
        raise InputError(f"detector_weights: {str(folder)!r} has no config.json; give a transformers model folder")
    try:
        found = json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"detector_weights: {str(config)!r} is not a JSON config ({exc}); re-save the model") from exc
    if found != model_type:
        raise InputError(
            f"detector_weights: {str(folder)!r} holds a {found!r} model, not {model_type!r}; give a {detector} folder"
        )
    if not any(folder.glob("*.safetensors")):
        raise InputError(
            f"detector_weights: {str(folder)!r} has no .safetensors weights (pickled .bin files are never loaded); "
            f"convert them with transformers' save_pretrained(..., safe_serialization=True)"
        )
    return folder


def transformers_classes(detector: str, *names: str) -> list[Any]:
    """``transformers``' classes ``names``; an import that fails (transformers raises ModuleNotFoundError for a
    model whose requirements break, e.g. a torchvision built for another torch) is one line."""
    try:
        import transformers

        return [getattr(transformers, name) for name in names]
    except ImportError as exc:
        raise InputError(
            f"detector: {detector} cannot import its transformers classes ({first_line(exc)}); a torchvision that "
            f"is not the build for this torch breaks them: install the matching torchvision, or uninstall it"
        ) from exc


def load_pretrained(cls: Any, folder: Path, detector: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` on a local folder only (never the hub, never pickles), errors as one line."""
    try:
        return cls.from_pretrained(str(folder), local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise InputError(f"detector_weights: {detector} could not load {str(folder)!r}: {first_line(exc)}") from exc


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def number_option(name: str, value: Any, low: float = 0.0, high: float = 1.0) -> float:
    """An option given as a number or as text (``"0.3"`` from a command line), checked to lie in [low, high]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: {value!r} is not a number; give one in [{low:g}, {high:g}]") from None
    if not (low <= number <= high):
        raise InputError(f"{name}: {value!r} is outside [{low:g}, {high:g}]; give one inside")
    return number


def flag_option(name: str, value: Any) -> bool:
    """A yes/no option given as a bool or as text (``"true"``, ``"0"``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InputError(f"{name}: {value!r} is not yes/no; give true or false")


def check_device(device: str) -> torch.device:
    """A torch device that exists here (a CUDA device on a machine without one is one line, not a traceback)."""
    try:
        found = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device: {device!r} is not a torch device ({exc}); give cpu, cuda or cuda:N") from exc
    if found.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (found.index or 0) >= count:
            raise InputError(f"device: {device!r} is not available here ({count} CUDA devices); give cpu or another")
    return found


def check_labels(labels: Any) -> list[str]:
    """The labels a suite asks about: a list of non-empty texts (one string alone would be read letter by letter)."""
    if isinstance(labels, str):
        raise InputError(f"labels: {labels!r} is one string; pass a list of labels, e.g. [{labels!r}]")
    out = [str(label) for label in labels]
    if any(not label.strip() for label in out):
        raise InputError("labels: an empty label; give each label some text, e.g. 'dog'")
    return out


def as_box(values: Any) -> Box:
    """Four numbers (a tensor row, an array) as a :data:`Box` of floats."""
    x0, y0, x1, y1 = (float(v) for v in values)
    return (x0, y0, x1, y1)


def relative_box(xyxy: Any, width: float, height: float) -> Box:
    """Pixel xyxy -> relative xyxy clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    clip = lambda v: min(max(v, 0.0), 1.0)  # noqa: E731
    return (clip(x0 / width), clip(y0 / height), clip(x1 / width), clip(y1 / height))


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each row of ``others``."""
    ix = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression (torchvision.ops.nms's rule: drop a box overlapping a higher-scored kept one
    by IoU > ``iou``), in numpy so no torchvision build is needed. Returns kept indices, best first."""
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    while order:
        best = order.pop(0)
        keep.append(int(best))
        if order:
            rest = np.array(order)
            order = [int(i) for i in rest[box_iou(boxes[best], boxes[rest]) <= iou]]
    return keep
