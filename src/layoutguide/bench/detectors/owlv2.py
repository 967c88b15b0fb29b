"""OWLv2 through ``transformers`` (``Owlv2ForObjectDetection`` + ``Owlv2Processor``), local weights.

Weights: a folder saved by transformers, e.g. a snapshot of ``google/owlv2-base-patch16-ensemble`` (or
``google/owlv2-large-patch14-ensemble``).

Each label becomes one text query, ``query_template.format(label)`` (default ``"a photo of a {}"``, the OWL-ViT
paper's prompt; ``"{}"`` asks the label as it is). Every image patch predicts one box and a sigmoid score per query;
a box goes to its best query and is kept at ``score_threshold`` or above (default 0.1, transformers'
``post_process_object_detection`` default and the OWL-ViT demos'). ``nms_iou`` (default 1.0: off, as in
transformers) drops a box overlapping a better one of the same label by more than that IoU; LMD's OWL-ViT scorer
uses 0.15 score / 0.15 NMS (``TonyLianLong/LLM-groundedDiffusion`` README).

OWLv2 pads every image to a square (bottom and right, grey) before resizing to 960 px, so its boxes are relative to
that square; they are mapped back to the original image here (and clipped to it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ...errors import InputError
from .base import Detection, register
from .hf import (
    as_box,
    check_device,
    check_labels,
    load_pretrained,
    model_folder,
    nms,
    number_option,
    transformers_classes,
)

HUB_IDS = "google/owlv2-base-patch16-ensemble or google/owlv2-large-patch14-ensemble"
SCORE_THRESHOLD = 0.1  # transformers Owlv2ImageProcessor.post_process_object_detection(threshold=0.1)
QUERY_TEMPLATE = "a photo of a {}"  # OWL-ViT (arXiv 2205.06230) zero-shot prompt


class Owlv2Detector:
    name = "owlv2"

    def __init__(self, model: Any, processor: Any, device: torch.device, source: str, **settings: Any) -> None:
        self.model, self.processor, self.device = model, processor, device
        self.score_threshold: float = settings["score_threshold"]
        self.nms_iou: float = settings["nms_iou"]
        self.query_template: str = settings["query_template"]
        self.description = (
            f"OWLv2 via transformers ({source}); score >= {self.score_threshold:g}, "
            f"NMS IoU {self.nms_iou:g}, queries {self.query_template!r}"
        )

    @torch.no_grad()
    def detect(self, image: Image.Image, labels: Sequence[str]) -> list[Detection]:
        asked: dict[str, list[str]] = {}  # query text -> the labels asked with it, verbatim and without repeats
        for label in check_labels(labels):
            query = " ".join(self.query_template.format(label).lower().split())  # CLIP's tokenizer lowercases
            if label not in asked.setdefault(query, []):
                asked[query].append(label)
        if not asked:
            return []
        queries = list(asked)
        limit = int(self.processor.tokenizer.model_max_length)  # 16: OWLv2's text position embeddings
        for query in queries:
            if len(self.processor.tokenizer(query)["input_ids"]) > limit:
                raise InputError(f"labels: {asked[query][0]!r} makes a query over OWLv2's {limit} tokens; shorten it")
        image = image.convert("RGB")
        inputs = self.processor(text=[queries], images=image, return_tensors="pt").to(self.device)
        outputs = self.model(**inputs)
        probs = outputs.logits[0].sigmoid().float().cpu()  # (patches, queries)
        scores, best = probs.max(dim=-1)
        side = float(max(image.size))  # the padded square's side, in original pixels
        scale = torch.tensor([side / image.width, side / image.height] * 2)
        cx, cy, w, h = outputs.pred_boxes[0].float().cpu().unbind(-1)
        boxes = (torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1) * scale).clamp(0, 1).numpy()
        keep = (scores >= self.score_threshold).numpy()
        out: list[Detection] = []
        for index, query in enumerate(queries):
            rows = np.flatnonzero(keep & (best == index).numpy())
            query_scores = scores.numpy()[rows]
            order = nms(boxes[rows], query_scores, self.nms_iou) if self.nms_iou < 1 else range(len(rows))
            for k in order:
                box = as_box(boxes[rows[k]])
                out.extend(Detection(label, box, float(query_scores[k])) for label in asked[query])
        return out


@register("owlv2")
def build_owlv2(
    weights: str | None,
    device: str = "cpu",
    score_threshold: Any = SCORE_THRESHOLD,
    nms_iou: Any = 1.0,
    query_template: str = QUERY_TEMPLATE,
) -> Owlv2Detector:
    if str(query_template).count("{}") != 1:
        raise InputError(f"query_template: {query_template!r} needs exactly one '{{}}' where the label goes")
    settings = {
        "score_threshold": number_option("score_threshold", score_threshold),
        "nms_iou": number_option("nms_iou", nms_iou),
        "query_template": str(query_template),
    }
    torch_device = check_device(device)
    folder = model_folder(weights, "owlv2", "owlv2", HUB_IDS)
    auto_processor, owlv2_model = transformers_classes("owlv2", "AutoProcessor", "Owlv2ForObjectDetection")
    processor = load_pretrained(auto_processor, folder, "owlv2")
    model = load_pretrained(owlv2_model, folder, "owlv2", use_safetensors=True).to(torch_device).eval()
    return Owlv2Detector(model, processor, torch_device, folder.name, **settings)
