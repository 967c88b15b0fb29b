"""YOLOv8 (and YOLOv8-seg for masks) through ``ultralytics``, local weights, labels mapped to the model's classes.

Weights, either of:

- a **folder** with ``model.yaml`` (the ultralytics model definition with its ``scale``, ``nc`` and class
  ``names``) and ``model.safetensors`` (its state dict): the safe route. :func:`convert_checkpoint` writes one
  from a release ``.pt`` file, once, after you decide to trust that file;
- a release **``.pt``** file (``yolov8m.pt``, ``yolov8m-seg.pt``): a pickle, which can run any code when loaded, so
  it is refused unless the option ``trust_pickle`` names that very file (``trust_pickle="yolov8m-seg.pt"``).

Prediction follows ``ultralytics``' own predictor (``model.predict``) with its building blocks: ``LetterBox`` to
``image_size`` (default 640, rectangular: padded to a stride multiple only), ``non_max_suppression`` at
``score_threshold`` (default 0.25, ultralytics' predict default; COCO AP wants ultralytics' val default 0.001) and
``nms_iou`` (default 0.7) over the asked classes, at most ``max_detections`` (300), boxes scaled back to the image;
masks as with ``retina_masks=True`` (``process_mask_native``: at the original image's size, so the Detection's
``mask`` has the image's shape), detections whose mask is empty dropped as ultralytics does. Not used: the
predictor's file and stream loaders, ``AutoBackend`` (it imports torchvision, whose PyPI build may not load next
to a CPU-only torch), fused layers (same numbers, slower).

Labels are matched to class names case-insensitively, without a leading article and, failing that, without a
plural "s"/"es" ("Dogs", "a dog" -> "dog"); a label that names no class is one line listing the classes.
``ultralytics`` writes a settings file when imported: it is sent to a temporary folder unless ``YOLO_CONFIG_DIR``
is set, and network checks are off (``YOLO_OFFLINE``) unless set otherwise.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ...errors import InputError
from .base import Detection, register
from .hf import check_device, check_labels, number_option, relative_box

RELEASES = "ultralytics' release files yolov8m.pt / yolov8m-seg.pt (github.com/ultralytics/assets, tag v8.x)"
SCORE_THRESHOLD = 0.25  # ultralytics cfg/default.yaml: conf, predict's default
NMS_IOU = 0.7  # ultralytics cfg/default.yaml: iou
MAX_DETECTIONS = 300  # ultralytics cfg/default.yaml: max_det
IMAGE_SIZE = 640  # ultralytics cfg/default.yaml: imgsz
ARTICLES = ("a ", "an ", "the ")


def import_ultralytics() -> Any:
    """``ultralytics``, imported quietly and offline, its settings file in a temporary folder; a missing package
    is one line naming the extra to install."""
    if "YOLO_CONFIG_DIR" not in os.environ:
        settings = tempfile.mkdtemp(prefix="layoutguide-ultralytics-")
        atexit.register(shutil.rmtree, settings, ignore_errors=True)
        os.environ["YOLO_CONFIG_DIR"] = settings
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        import ultralytics
        from ultralytics.nn import tasks  # noqa: F401
    except ImportError as exc:
        raise InputError(
            f"detector: yolo needs the ultralytics package ({exc}); install it with pip install 'layoutguide[detect]'"
        ) from exc
    return ultralytics


def class_key(text: str) -> str:
    key = " ".join(text.replace("_", " ").lower().split())
    for article in ARTICLES:
        if key.startswith(article):
            key = key[len(article) :]
    return key


def singulars(key: str) -> list[str]:
    out = []
    if key.endswith("es"):
        out.append(key[:-2])
    if key.endswith("s"):
        out.append(key[:-1])
    return out


def class_ids(labels: Sequence[str], names: dict[int, str]) -> dict[str, int]:
    """Each label's class id among ``names``; a label naming none is one line."""
    by_key = {class_key(name): i for i, name in names.items()}
    out = {}
    for label in labels:
        key = class_key(label)
        found = by_key.get(key)
        if found is None:
            found = next((by_key[k] for k in singulars(key) if k in by_key), None)
        if found is None:
            shown = ", ".join(names[i] for i in sorted(names))
            raise InputError(
                f"labels: {label!r} is not one of the yolo model's {len(names)} classes; ask one of: {shown}"
            )
        out[label] = found
    return out


def names_of(raw: Any, count: int | None = None) -> dict[int, str]:
    if isinstance(raw, dict):
        names = {int(k): str(v) for k, v in raw.items()}
    elif isinstance(raw, (list, tuple)):
        names = {i: str(v) for i, v in enumerate(raw)}
    else:
        raise InputError("detector_weights: model.yaml has no class 'names' (a list or an id -> name map); add them")
    if count is not None and len(names) != count:
        raise InputError(f"detector_weights: model.yaml has {len(names)} names for nc={count} classes; fix either")
    return names


class YoloDetector:
    name = "yolo"

    def __init__(self, model: Any, names: dict[int, str], device: torch.device, source: str, **settings: Any):
        self.model, self.names, self.device = model, names, device
        self.score_threshold: float = settings["score_threshold"]
        self.nms_iou: float = settings["nms_iou"]
        self.max_detections: int = settings["max_detections"]
        self.image_size: int = settings["image_size"]
        self.stride = int(max(float(s) for s in model.stride))
        self.segments = type(model).__name__ == "SegmentationModel"
        self.description = (
            f"YOLOv8{'-seg' if self.segments else ''} via ultralytics ({source}); score >= {self.score_threshold:g}, "
            f"NMS IoU {self.nms_iou:g}, {self.image_size} px, {len(names)} classes"
        )

    @torch.no_grad()
    def detect(self, image: Image.Image, labels: Sequence[str]) -> list[Detection]:
        from ultralytics.data.augment import LetterBox
        from ultralytics.utils import nms, ops

        ids = class_ids(check_labels(labels), self.names)
        if not ids:
            return []
        rgb = np.asarray(image.convert("RGB"))
        # The predictor letterboxes BGR and flips to RGB after; resizing and grey padding commute with the flip.
        boxed = LetterBox(self.image_size, auto=True, stride=self.stride)(image=rgb)
        tensor = torch.from_numpy(np.ascontiguousarray(boxed)).permute(2, 0, 1)[None].to(self.device).float() / 255
        preds = self.model(tensor)
        protos = None
        if self.segments:
            protos = preds[0][1] if isinstance(preds[0], tuple) else preds[1]
            preds = preds[0]
        kept = nms.non_max_suppression(
            preds,
            self.score_threshold,
            self.nms_iou,
            classes=sorted(set(ids.values())),
            max_det=self.max_detections,
            nc=len(self.names) if self.segments else 0,
            end2end=getattr(self.model, "end2end", False),
        )[0]
        height, width = rgb.shape[:2]
        kept[:, :4] = ops.scale_boxes(tensor.shape[2:], kept[:, :4], (height, width))
        masks: list[np.ndarray | None] = [None] * len(kept)
        if protos is not None and len(kept):
            native = ops.process_mask_native(protos[0], kept[:, 6:], kept[:, :4], (height, width)).cpu().numpy() > 0
            has_mask = native.reshape(len(kept), -1).any(axis=1)  # ultralytics drops detections with empty masks
            kept, native = kept[torch.from_numpy(has_mask).to(kept.device)], native[has_mask]
            masks = list(native)
        out = []
        for row, mask in zip(kept.cpu().numpy(), masks):
            box = relative_box(row[:4], width, height)
            for label, class_id in ids.items():
                if class_id == int(row[5]):
                    out.append(Detection(label, box, float(row[4]), mask))
        return out


def _load_folder(folder: Path, ultralytics_tasks: Any) -> tuple[Any, dict[int, str]]:
    import yaml
    from safetensors.torch import load_file

    config_file, weights_file = folder / "model.yaml", folder / "model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise InputError(
            f"detector_weights: {str(folder)!r} needs model.yaml and model.safetensors; write them from a release "
            f".pt with layoutguide.bench.detectors.yolo.convert_checkpoint"
        )
    try:
        config = yaml.safe_load(config_file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"detector_weights: {str(config_file)!r} is not YAML ({exc}); rewrite it") from exc
    if not isinstance(config, dict) or "head" not in config or "backbone" not in config:
        raise InputError(f"detector_weights: {str(config_file)!r} is not an ultralytics model definition")
    names = names_of(config.get("names"), config.get("nc"))
    task = ultralytics_tasks.guess_model_task(config)
    builders = {"detect": ultralytics_tasks.DetectionModel, "segment": ultralytics_tasks.SegmentationModel}
    if task not in builders:
        raise InputError(
            f"detector_weights: {str(folder)!r} is a {task!r} model; give a detection or segmentation one"
        )
    model = builders[task](dict(config), nc=len(names), verbose=False)
    try:
        model.load_state_dict(load_file(str(weights_file)), strict=True)
    except (RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"detector_weights: {str(weights_file)!r} does not fit model.yaml ({first})") from exc
    model.names = names  # as in a release checkpoint (a model built from a definition is named 0, 1, ...)
    return model, names


def _load_trusted_pickle(path: Path, ultralytics_tasks: Any) -> tuple[Any, dict[int, str]]:
    checkpoint, _ = ultralytics_tasks.torch_safe_load(str(path))
    model = (checkpoint.get("ema") or checkpoint["model"]).float()
    return model, names_of(model.names)


def convert_checkpoint(pt_file: str | Path, folder: str | Path) -> Path:
    """Unpickle a release ``.pt`` you trust and write it as ``folder/model.yaml`` + ``folder/model.safetensors``,
    which the yolo detector then loads without unpickling anything."""
    import yaml
    from safetensors.torch import save_file

    import_ultralytics()
    from ultralytics.nn import tasks

    model, names = _load_trusted_pickle(Path(pt_file), tasks)
    config = {**model.yaml, "names": names, "nc": len(names)}
    config.pop("yaml_file", None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    for name, write in (
        ("model.safetensors", lambda p: save_file(state, str(p))),
        ("model.yaml", lambda p: p.write_text(yaml.safe_dump(config, sort_keys=False))),
    ):
        partial = folder / f".{name}.partial"
        write(partial)
        partial.replace(folder / name)  # atomic: a reader never sees half a file
    return folder


@register("yolo")
def build_yolo(
    weights: str | None,
    device: str = "cpu",
    score_threshold: Any = SCORE_THRESHOLD,
    nms_iou: Any = NMS_IOU,
    max_detections: Any = MAX_DETECTIONS,
    image_size: Any = IMAGE_SIZE,
    trust_pickle: str | None = None,
) -> YoloDetector:
    settings = {
        "score_threshold": number_option("score_threshold", score_threshold),
        "nms_iou": number_option("nms_iou", nms_iou),
        "max_detections": int(number_option("max_detections", max_detections, 1, 100_000)),
        "image_size": int(number_option("image_size", image_size, 32, 8192)),
    }
    torch_device = check_device(device)
    if weights is None:
        raise InputError(
            f"detector_weights: the yolo detector needs a folder with model.yaml + model.safetensors "
            f"(convert_checkpoint writes one from {RELEASES}), or a .pt file with trust_pickle naming it"
        )
    path = Path(weights).expanduser()
    if not path.exists():
        raise InputError(f"detector_weights: {str(path)!r} does not exist; give the yolo model's folder or .pt file")
    if path.is_file() and path.name != trust_pickle:
        raise InputError(
            f"detector_weights: {path.name!r} is a pickle, which can run code when loaded; convert it once with "
            f"layoutguide.bench.detectors.yolo.convert_checkpoint, or pass trust_pickle={path.name!r} to load it"
        )
    import_ultralytics()
    from ultralytics.nn import tasks

    model, names = _load_trusted_pickle(path, tasks) if path.is_file() else _load_folder(path, tasks)
    return YoloDetector(model.to(torch_device).eval(), names, torch_device, path.name, **settings)
