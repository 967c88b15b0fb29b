"""Suites whose layouts are COCO-format annotation files, scored by COCO average precision (pycocotools).

- ``coco``: COCO val2017 (``instances_val2017.json``; ``captions_val2017.json`` beside it gives each image's first
  caption as the prompt), InstanceDiffusion's protocol: the model is given every instance's category name and box,
  and a detector's boxes (and masks, when it segments) on the generated image are scored against those boxes by
  COCO AP and AP50; mask IoU is each instance's best same-category detection mask against the instance's mask.
- ``layoutbench``: LayoutBench (Cho et al., CVPRW 2024), CLEVR-style skill splits (number_few, number_many,
  position_boundary, position_center, size_tiny, size_large, shape_horizontal, shape_vertical); ``--data`` is the
  dataset folder (one sub-folder per split, each with a COCO-format ``*.json``) or one split's file; AP per split.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...errors import InputError
from ...layout import MAX_REGIONS
from ..detectors.base import Detection
from .base import ColourCheck, Entry, Metric, PublicSuite, make_layout, mean, read_json_file

LAYOUTBENCH_SPLITS = (
    "number_few",
    "number_many",
    "position_boundary",
    "position_center",
    "size_tiny",
    "size_large",
    "shape_horizontal",
    "shape_vertical",
)


def _coco_tools() -> tuple[Any, Any, Any]:
    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise InputError("suite: COCO AP needs pycocotools; pip install 'layoutguide[bench]'") from None
    return COCO, COCOeval, mask_utils


def _entries_from_file(path: Path, level: str, prompt_from_captions: bool) -> tuple[list[Entry], list[str]]:
    data = read_json_file(path, "a COCO-format annotation file")
    try:
        images = {im["id"]: im for im in data["images"]}
        names = {c["id"]: str(c["name"]) for c in data["categories"]}
        annotations = data["annotations"]
    except (KeyError, TypeError):
        raise InputError(f"data: {path} is not a COCO annotation file (images, categories, annotations)") from None
    captions: dict[int, str] = {}
    caption_file = path.parent / path.name.replace("instances", "captions")
    if prompt_from_captions and caption_file != path and caption_file.is_file():
        for c in read_json_file(caption_file, "COCO captions").get("annotations", []):
            captions.setdefault(c["image_id"], str(c["caption"]).strip())
    per_image: dict[int, list[dict]] = {}
    for a in annotations:
        if not a.get("iscrowd"):
            per_image.setdefault(a["image_id"], []).append(a)
    entries, over = [], 0
    for image_id in sorted(per_image):
        anns = per_image[image_id]
        if len(anns) > MAX_REGIONS:
            over += 1
            continue
        im = images[image_id]
        w, h = float(im["width"]), float(im["height"])
        phrases = [names[a["category_id"]] for a in anns]
        boxes = [
            [a["bbox"][0] / w, a["bbox"][1] / h, (a["bbox"][0] + a["bbox"][2]) / w, (a["bbox"][1] + a["bbox"][3]) / h]
            for a in anns
        ]
        prompt = captions.get(image_id) or "a photo of " + ", ".join(dict.fromkeys(phrases))
        meta = {"segmentation": [a.get("segmentation") for a in anns], "size": [int(h), int(w)], "image_id": image_id}
        entries.append(
            Entry(str(image_id), make_layout(prompt, phrases, boxes, f"{path.name} image {image_id}"), level, meta)
        )
    notes = [f"images: {over} with more than {MAX_REGIONS} instances left out"] if over else []
    return entries, notes


class CocoBoxes(PublicSuite):
    """COCO-format layouts (COCO val2017, LayoutBench): are the instances drawn where the layout puts them, as a
    detector finds them? COCO AP and AP50 of the detector's boxes against the layout's (pycocotools), mask AP and
    mask IoU where both sides have masks."""

    score_threshold = 0.0  # AP ranks every detection; thresholds belong to the detector

    def __init__(self, name: str, entries: Sequence[Entry], source: str, notes: Sequence[str] = ()):
        self.name = name
        self.paper = (
            "InstanceDiffusion (Wang et al., CVPR 2024), COCO val2017 with YOLOv8"
            if name == "coco"
            else "LayoutBench (Cho et al., CVPRW 2024), DETR-R101 trained on LayoutBench"
        )
        self.metrics = (
            Metric("ap", "AP"),
            Metric("ap50", "AP50"),
            Metric("mask_ap", "mask AP"),
            Metric("mask_iou", "mask IoU"),
        )
        super().__init__(entries, source, notes)

    @classmethod
    def read(cls, name: str, path: Path) -> CocoBoxes:
        if name == "coco":
            entries, notes = _entries_from_file(path, "all", prompt_from_captions=True)
            return cls(name, entries, str(path), notes)
        files = (
            [(path.parent.name if path.parent.name in LAYOUTBENCH_SPLITS else path.stem, path)]
            if path.is_file()
            else []
        )
        for split in LAYOUTBENCH_SPLITS if path.is_dir() else ():
            found = sorted((path / split).glob("*.json")) if (path / split).is_dir() else []
            files += [(split, f) for f in found[:1]]
        if not files:
            raise InputError(f"data: {path} holds no LayoutBench split ({', '.join(LAYOUTBENCH_SPLITS)}) annotation")
        entries, notes = [], []
        for split, file in files:
            more, why = _entries_from_file(file, split, prompt_from_captions=False)
            entries += more
            notes += why
        notes.append("prompts: LayoutBench has none; each is 'a photo of' and the layout's object names")
        return cls(name, entries, str(path), notes)

    def differences(self, detector: str) -> list[str]:
        out = super().differences(detector)
        theirs = "yolo" if self.name == "coco" else "layoutbench-detr"
        if detector != theirs:
            out.append(f"detector: {detector}, not the paper's ({theirs})")
        return out

    def labels(self, entry: Entry) -> list[str]:
        return list(dict.fromkeys(r.phrase for r in entry.layout.regions))

    def score(self, entry: Entry, image: Image.Image, detections: list[Detection], colour: ColourCheck) -> dict:
        _, _, mask_utils = _coco_tools()
        w, h = image.size
        out = []
        for d in detections:
            item: dict[str, Any] = {"label": d.label, "box": [float(v) for v in d.box], "score": float(d.score)}
            if d.mask is not None:
                rle = mask_utils.encode(np.asfortranarray(d.mask.astype(np.uint8)))
                item["rle"] = {"size": rle["size"], "counts": rle["counts"].decode()}
            out.append(item)
        ious = []
        for region, seg in zip(entry.layout.regions, entry.meta.get("segmentation", [])):
            target = self._gt_mask(seg, entry.meta["size"], (h, w))
            same = [d.mask for d in detections if d.label == region.phrase and d.mask is not None]
            if target is None or not any(d.mask is not None for d in detections):
                continue
            ious.append(max((float((m & target).sum() / max((m | target).sum(), 1)) for m in same), default=0.0))
        return {"size": [h, w], "detections": out, "mask_ious": ious}

    @staticmethod
    def _gt_mask(seg: Any, size: list[int], out_hw: tuple[int, int]) -> np.ndarray | None:
        if not seg:
            return None
        _, _, mask_utils = _coco_tools()
        h, w = size
        rles = mask_utils.frPyObjects(seg, h, w) if isinstance(seg, list) else [seg]
        mask = mask_utils.decode(mask_utils.merge(rles) if isinstance(rles, list) else rles)
        resized = Image.fromarray(mask.astype(np.uint8) * 255).resize((out_hw[1], out_hw[0]), Image.Resampling.NEAREST)
        return np.asarray(resized) > 127

    def aggregate(self, records: Sequence[dict], entries: Sequence[Entry]) -> dict[str, float]:
        box_ap = self._ap(records, entries, "bbox")
        has_masks = any("rle" in d for r in records for d in r["detections"]) and any(
            any(s for s in e.meta.get("segmentation", [])) for e in entries
        )
        mask_ap = self._ap(records, entries, "segm") if has_masks else (float("nan"), float("nan"))
        return {
            "ap": box_ap[0],
            "ap50": box_ap[1],
            "mask_ap": mask_ap[0],
            "mask_iou": mean([i for r in records for i in r["mask_ious"]]),
        }

    def _ap(self, records: Sequence[dict], entries: Sequence[Entry], kind: str) -> tuple[float, float]:
        COCO, COCOeval, mask_utils = _coco_tools()
        names = sorted({r.phrase for e in entries for r in e.layout.regions})
        ids = {n: i + 1 for i, n in enumerate(names)}
        images: list[dict] = []
        gts: list[dict] = []
        dts: list[dict] = []
        for k, (record, entry) in enumerate(zip(records, entries)):
            h, w = record["size"]
            images.append({"id": k, "height": h, "width": w})
            segs = entry.meta.get("segmentation") or [None] * len(entry.layout.regions)
            for region, seg in zip(entry.layout.regions, segs):
                x0, y0, x1, y1 = region.bbox
                gt = {
                    "id": len(gts) + 1,
                    "image_id": k,
                    "category_id": ids[region.phrase],
                    "iscrowd": 0,
                    "bbox": [x0 * w, y0 * h, (x1 - x0) * w, (y1 - y0) * h],
                    "area": (x1 - x0) * w * (y1 - y0) * h,
                }
                if kind == "segm":
                    mask = self._gt_mask(seg, entry.meta["size"], (h, w))
                    if mask is None:
                        continue
                    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                    gt["segmentation"], gt["area"] = rle, float(mask.sum())
                gts.append(gt)
            for d in record["detections"]:
                if d["label"] not in ids or (kind == "segm" and "rle" not in d):
                    continue
                x0, y0, x1, y1 = d["box"]
                dt = {
                    "image_id": k,
                    "category_id": ids[d["label"]],
                    "score": d["score"],
                    "bbox": [x0 * w, y0 * h, (x1 - x0) * w, (y1 - y0) * h],
                }
                if kind == "segm":
                    dt["segmentation"] = {"size": d["rle"]["size"], "counts": d["rle"]["counts"].encode()}
                dts.append(dt)
        if not gts:
            return float("nan"), float("nan")
        if not dts:
            return 0.0, 0.0
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and summary table
            truth = COCO()
            truth.dataset = {"images": images, "annotations": gts, "categories": [{"id": i} for i in ids.values()]}
            truth.createIndex()
            found = truth.loadRes(dts)
            evaluation = COCOeval(truth, found, kind)
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return max(float(evaluation.stats[0]), 0.0), max(float(evaluation.stats[1]), 0.0)
