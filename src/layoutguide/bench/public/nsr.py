"""NSR-1K (LayoutGPT, NeurIPS 2023): counting and spatial prompts with COCO ground-truth layouts.

Files, as published in LayoutGPT's ``dataset/NSR-1K``: ``counting/counting.val.json`` (``[{"id", "prompt",
"num_object": [[name, n], ...], "object_list": [[name, [x, y, w, h]], ...], "sub-type"}]``) and
``spatial/spatial.val.json`` (``[{"id", "prompt", "obj1": [name, [x, y, w, h]], "obj2": [...], "relation"}]``), boxes
relative xywh. The model is given the ground-truth layout. Scoring follows LayoutGPT's ``eval_counting.py`` and
``eval_spatial.py`` (GLIP at threshold 0.7): counting is right per object kind when the detected count equals the
asked count ("comparison" prompts: the anchor's count is right and the other's compares to it as asked); spatial is
right when some pair of detections (obj1, obj2) stands in the relation by LayoutGPT's centre-angle rule (a 45-degree
cone; "next to" accepts left or right).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ...errors import InputError
from ..detectors.base import Detection
from .base import ColourCheck, Entry, Metric, PublicSuite, by_label, kept, make_layout, mean, read_json_file

RELATIONS = ("left", "right", "top", "bottom", "next to")


def xywh(box) -> list[float]:
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def spatial_relation(a, b) -> str:
    """LayoutGPT's ``eval_spatial_relation``: where box ``a``'s centre lies from ``b``'s (y down)."""
    ax, ay = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    bx, by = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    dist = math.hypot(ax - bx, ay - by)
    if dist == 0:
        return "diagonal"
    cosine, sine, theta = (ax - bx) / dist, (by - ay) / dist, math.sqrt(2) / 2
    if cosine > theta:
        return "right"
    if sine > theta:
        return "top"
    if cosine < -theta:
        return "left"
    if sine < -theta:
        return "bottom"
    return "diagonal"


class Nsr1k(PublicSuite):
    """NSR-1K (LayoutGPT): with the ground-truth layout given, does the image hold the asked number of each object
    (counting) or the two objects in the asked relation (spatial)? Accuracy per sub-type."""

    name = "nsr-1k"
    paper = "LayoutGPT (Feng et al., NeurIPS 2023), eval_models/GLIP/eval_counting.py and eval_spatial.py"
    score_threshold = 0.7  # GLIP's threshold in LayoutGPT's evaluation
    metrics = (Metric("accuracy", "accuracy"), Metric("n_items", "items scored", "{:.0f}"))

    @classmethod
    def read(cls, path: Path) -> Nsr1k:
        data = read_json_file(path, "NSR-1K's counting.val.json or spatial.val.json")
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            raise InputError(f"data: {path} is not an NSR-1K list of prompts")
        entries = []
        for k, item in enumerate(data):
            where = f"{path.name} id {item.get('id', k)}"
            try:
                if "object_list" in item:
                    names = [str(name) for name, _ in item["object_list"]]
                    boxes = [xywh(box) for _, box in item["object_list"]]
                    meta: dict[str, Any] = {"counts": [[str(n), int(c)] for n, c in item["num_object"]]}
                    level = f"counting: {item.get('sub-type', 'all')}"
                else:
                    names = [str(item["obj1"][0]), str(item["obj2"][0])]
                    boxes = [xywh(item["obj1"][1]), xywh(item["obj2"][1])]
                    meta = {"relation": str(item["relation"])}
                    level = f"spatial: {item['relation']}"
                layout = make_layout(str(item["prompt"]), names, boxes, where)
            except (KeyError, TypeError, ValueError) as e:
                raise InputError(f"data: {where} is not an NSR-1K counting or spatial entry ({e})") from None
            entries.append(Entry(str(item.get("id", k)), layout, level, meta))
        return cls(entries, str(path))

    def differences(self, detector: str) -> list[str]:
        out = super().differences(detector)
        if detector != "glip":
            out.append(f"detector: {detector} at score >= {self.score_threshold}, not GLIP Swin-L (the paper's)")
        out.append(
            "counting accuracy: the paper divides a comparison prompt's one verdict by its two object kinds; here "
            "each prompt counts once per verdict"
        )
        return out

    def labels(self, entry: Entry) -> list[str]:
        return list(dict.fromkeys(r.phrase for r in entry.layout.regions))

    def score(self, entry: Entry, image: Image.Image, detections: list[Detection], colour: ColourCheck) -> dict:
        found = by_label(kept(detections, self.score_threshold))
        if "relation" in entry.meta:
            a, b = (found.get(r.phrase, []) for r in entry.layout.regions)
            seen = {spatial_relation(d1.box, d2.box) for d1 in a for d2 in b}
            want = entry.meta["relation"]
            ok = want in seen or (want == "next to" and bool(seen & {"left", "right"}))
            return {"verdicts": [bool(ok)]}
        counts = entry.meta["counts"]
        detected = {name: len(found.get(name, [])) for name, _ in counts}
        if entry.level.endswith("comparison") and len(counts) == 2:
            (anchor, n_anchor), (other, n_other) = counts
            ok = detected[anchor] == n_anchor and (detected[other] - n_anchor) * (n_other - n_anchor) > 0
            if n_other == n_anchor:
                ok = detected[anchor] == n_anchor and detected[other] == n_anchor
            return {"verdicts": [bool(ok)], "detected": detected}
        return {"verdicts": [detected[name] == n for name, n in counts], "detected": detected}

    def aggregate(self, records: Sequence[dict], entries: Sequence[Entry]) -> dict[str, float]:
        verdicts = [float(v) for r in records for v in r["verdicts"]]
        return {"accuracy": mean(verdicts), "n_items": float(len(verdicts))}
