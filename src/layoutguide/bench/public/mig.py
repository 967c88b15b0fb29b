"""COCO-MIG (MIGC, CVPR 2024): multi-instance prompts with a colour per instance, levels L2-L6 by instance count.

Files, as published: MIGC's ``bench_file/mig_bench_anno.yaml`` (``{prompt: {"a red apple": [[x0, y0, x1, y1],
...], "coco_id": "N"}}``, boxes relative) or MIG_Bench's JSON (``{id: {"caption": ..., "segment": [{"label": "red
apple", "bbox": [x0, y0, x1, y1]}]}}``). Scoring follows MIG_Bench's ``eval_mig.py``: per instance, the detector is
asked for the object word ("apple"); the instance's IoU is the largest box IoU of any detection of that word with
the instance's box; it succeeds when that IoU is >= 0.5 and the detection's colour is the instance's colour;
its mIoU term is that IoU, or 0 when the IoU passed and the colour did not. ISR (instance success ratio) and mIoU
are pooled over the instances of a level; SR is the share of images whose instances all succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from ...errors import InputError
from ..detectors.base import Detection
from .base import (
    ColourCheck,
    Entry,
    Metric,
    PublicSuite,
    box_iou,
    by_label,
    colour_of,
    kept,
    make_layout,
    mean,
    read_json_file,
    strip_article,
)

MATCHINGS = ("max-iou", "one-to-one")
IOU_THRESHOLD = 0.5


def split_phrase(phrase: str) -> tuple[str, str]:
    """``"a black teddy bear"`` -> ``("black", "teddy bear")``: MIG's first word is the colour."""
    colour, _, noun = strip_article(phrase).partition(" ")
    if not noun:
        raise InputError(f"data: COCO-MIG phrase {phrase!r} is not 'COLOUR OBJECT' (e.g. 'a red apple')")
    return colour.lower(), noun


def _read_yaml(path: Path) -> list[tuple[str, list[str], list[Any]]]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError(f"data: {path} is not a readable YAML file (COCO-MIG's mig_bench_anno.yaml): {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"data: {path} is not COCO-MIG's mapping of prompt -> phrases and boxes")
    out = []
    for prompt, instances in data.items():
        if not isinstance(instances, dict):
            raise InputError(f"data: {path}: the entry of {prompt!r} is not a mapping of phrase -> boxes")
        phrases, boxes = [], []
        for phrase, phrase_boxes in instances.items():
            if phrase == "coco_id":
                continue
            for box in phrase_boxes:
                phrases.append(str(phrase))
                boxes.append(box)
        out.append((str(prompt), phrases, boxes))
    return out


def _read_json(path: Path) -> list[tuple[str, list[str], list[Any]]]:
    data = read_json_file(path, "MIG_Bench's prompt file")
    if not isinstance(data, dict):
        raise InputError(f"data: {path} is not MIG_Bench's mapping of id -> caption and segments")
    out = []
    for key, item in data.items():
        try:
            segments = item["segment"]
            out.append((str(item["caption"]), [str(s["label"]) for s in segments], [s["bbox"] for s in segments]))
        except (KeyError, TypeError):
            raise InputError(f"data: {path}: entry {key!r} lacks 'caption' or 'segment' [{{label, bbox}}]") from None
    return out


class CocoMig(PublicSuite):
    """COCO-MIG (MIGC): does each instance appear in its box (IoU >= 0.5 with a detection of its object) in its
    colour? Instance success ratio (ISR), mIoU and image success rate (SR) per level L2-L6 (instances per prompt)."""

    name = "coco-mig"
    paper = "MIGC (Zhou et al., CVPR 2024), MIG_Bench eval_mig.py"
    score_threshold = 0.25  # MIG_Bench's Grounding DINO box threshold
    colour_names = ("red", "blue", "green", "yellow", "black", "white", "brown")  # MIG_Bench's colour ranges
    metrics = (
        Metric("isr", "ISR"),
        Metric("miou", "mIoU"),
        Metric("sr", "SR (all instances)"),
        Metric("image_isr", "ISR per image"),
        Metric("n_instances", "instances", "{:.0f}"),
    )

    def __init__(self, entries: Sequence[Entry], source: str, notes: Sequence[str] = (), matching: str = "max-iou"):
        if matching not in MATCHINGS:
            raise InputError(f"matching: unknown {matching!r}; use one of {', '.join(MATCHINGS)}")
        super().__init__(entries, source, notes)
        self.matching = matching

    @classmethod
    def read(cls, path: Path, matching: str = "max-iou") -> CocoMig:
        rows = _read_yaml(path) if path.suffix.lower() in (".yaml", ".yml") else _read_json(path)
        entries = []
        for k, (prompt, phrases, boxes) in enumerate(rows):
            for phrase in phrases:
                split_phrase(phrase)
            layout = make_layout(prompt, phrases, boxes, f"{path.name} entry {k}")
            entries.append(Entry(str(k), layout, f"L{len(phrases)}"))
        return cls(entries, str(path), matching=matching)

    def differences(self, detector: str) -> list[str]:
        out = super().differences(detector)
        if detector != "grounding-dino":
            out.append(f"detector: {detector}, not Grounding DINO Swin-T OGC (the paper's)")
        out.append(
            "colour: the matched detection's (the detector's own, or the dominant of the seven MIG colours on its "
            "mask or box by layoutguide's colour check), not 'at least 20% of a SAM mask of the target box in the "
            "colour's HSV range'"
        )
        if self.matching == "one-to-one":
            out.append(
                "matching: one-to-one per (colour, object) group among detections of that colour, maximising summed "
                "IoU (the shapes benchmark's rule), not each instance's best detection of any colour"
            )
        out.append("seeds: one per (prompt, sample), not MIGC's eight fixed seeds 42, 37, 519, 609, 123, 401, 780, 0")
        return out

    def level_key(self, level: str) -> int:
        return int(level[1:])  # L2 ... L6

    def labels(self, entry: Entry) -> list[str]:
        return list(dict.fromkeys(split_phrase(r.phrase)[1] for r in entry.layout.regions))

    def score(self, entry: Entry, image: Image.Image, detections: list[Detection], colour: ColourCheck) -> dict:
        found = by_label(kept(detections, self.score_threshold))
        colours: dict[int, str] = {}

        def colour_at(d: Detection) -> str:
            if id(d) not in colours:
                colours[id(d)] = colour_of(image, d, colour).lower()
            return colours[id(d)]

        targets = [(split_phrase(r.phrase), r.bbox) for r in entry.layout.regions]
        if self.matching == "max-iou":
            instances = [self._best(c, found.get(noun, []), box, colour_at) for (c, noun), box in targets]
        else:
            instances = self._one_to_one(targets, found, colour_at)
        return {"instances": instances}

    @staticmethod
    def _best(want: str, candidates: list[Detection], box, colour_at) -> dict:
        ious = [box_iou(box, d.box) for d in candidates]
        if not ious:
            return {"iou": 0.0, "colour_ok": False, "success": False, "miou": 0.0}
        best = int(np.argmax(ious))
        iou = ious[best]
        placed = iou >= IOU_THRESHOLD
        colour_ok = placed and colour_at(candidates[best]) == want
        return {
            "iou": iou,
            "colour_ok": colour_ok,
            "success": colour_ok,
            "miou": iou if colour_ok or not placed else 0.0,
        }

    @staticmethod
    def _one_to_one(targets, found, colour_at) -> list[dict]:
        out: list[dict] = [{"iou": 0.0, "colour_ok": False, "success": False, "miou": 0.0} for _ in targets]
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (kind, _) in enumerate(targets):
            groups.setdefault(kind, []).append(i)
        for (want, noun), members in groups.items():
            candidates = [d for d in found.get(noun, []) if colour_at(d) == want]
            if not candidates:
                continue
            iou = np.array([[box_iou(targets[i][1], d.box) for d in candidates] for i in members])
            rows, cols = linear_sum_assignment(iou, maximize=True)
            for r, c in zip(rows, cols):
                value = float(iou[r, c])
                out[members[r]] = {"iou": value, "colour_ok": True, "success": value >= IOU_THRESHOLD, "miou": value}
        return out

    def aggregate(self, records: Sequence[dict], entries: Sequence[Entry]) -> dict[str, float]:
        instances = [i for r in records for i in r["instances"]]
        return {
            "isr": mean([float(i["success"]) for i in instances]),
            "miou": mean([i["miou"] for i in instances]),
            "sr": mean([float(all(i["success"] for i in r["instances"])) for r in records]),
            "image_isr": mean([mean([float(i["success"]) for i in r["instances"]]) for r in records]),
            "n_instances": float(len(instances)),
        }
