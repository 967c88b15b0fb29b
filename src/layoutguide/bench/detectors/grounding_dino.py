"""Grounding DINO through ``transformers`` (``AutoModelForZeroShotObjectDetection`` + its processor), local weights.

Weights: a folder saved by transformers, e.g. a snapshot of ``IDEA-Research/grounding-dino-tiny`` (Swin-T, the
backbone of COCO-MIG's ``groundingdino_swint_ogc.pth``) or ``IDEA-Research/grounding-dino-base``.

Defaults follow COCO-MIG's evaluator (``LeyRio/MIG_Bench: eval_mig.py``): box threshold 0.25, text threshold 0.25,
NMS at IoU 0.8 (MIG_Bench runs ``torchvision.ops.nms`` at 0.8 on each query's detections). Labels are joined the
way the model was trained ("a cat. a dog.": lowercased, ". "-separated, a final "."); ``separate_queries=True``
asks one label per forward pass, as MIG_Bench does (one instance noun per call), at one pass per label.

Labels map back verbatim: each box goes to the asked label whose tokens score highest for it (the maximum sigmoid
over the label's own tokens, found from the tokenizer's character offsets), and is kept when its best token over
the whole caption passes ``box_threshold`` (the detection's score) and its label's tokens pass ``text_threshold``.
The reference implementation (``groundingdino.util.inference``) instead decodes the tokens above the text
threshold into a phrase and matches class names inside it; on one-label queries both keep the same boxes, except
that a box whose label tokens all miss the text threshold is dropped here and kept there with no class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ...errors import InputError
from .base import Box, Detection, register
from .hf import (
    as_box,
    check_device,
    check_labels,
    flag_option,
    load_pretrained,
    model_folder,
    nms,
    number_option,
    transformers_classes,
)

HUB_IDS = "IDEA-Research/grounding-dino-tiny (Swin-T, COCO-MIG's backbone) or IDEA-Research/grounding-dino-base"
BOX_THRESHOLD = 0.25  # MIG_Bench eval_mig.py check_on_image(box_t=0.25)
TEXT_THRESHOLD = 0.25  # MIG_Bench eval_mig.py check_on_image(text_t=0.25)
NMS_IOU = 0.8  # MIG_Bench eval_mig.py NMS_THRESHOLD


def query_text(label: str) -> str:
    """What the model reads for ``label``: lowercased, single-spaced, without "." and "?" (the model's phrase
    separators: inside a label they would cut it in two)."""
    return " ".join(label.replace(".", " ").replace("?", " ").lower().split())


def caption_and_spans(texts: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """``["a cat", "a dog"]`` -> ``("a cat. a dog.", [(0, 5), (7, 12)])``: the caption and each text's characters."""
    spans, position = [], 0
    for text in texts:
        spans.append((position, position + len(text)))
        position += len(text) + 2
    return ". ".join(texts) + ".", spans


class GroundingDinoDetector:
    name = "grounding-dino"

    def __init__(self, model: Any, processor: Any, device: torch.device, source: str, **settings: Any) -> None:
        self.model, self.processor, self.device = model, processor, device
        self.box_threshold: float = settings["box_threshold"]
        self.text_threshold: float = settings["text_threshold"]
        self.nms_iou: float = settings["nms_iou"]
        self.separate_queries: bool = settings["separate_queries"]
        self.max_tokens = int(getattr(model.config, "max_text_len", 256))
        self.description = (
            f"Grounding DINO via transformers ({source}); box >= {self.box_threshold:g}, text >= "
            f"{self.text_threshold:g}, NMS IoU {self.nms_iou:g}, "
            + ("one label per query" if self.separate_queries else "labels joined in one caption")
        )

    def detect(self, image: Image.Image, labels: Sequence[str]) -> list[Detection]:
        verbatim = check_labels(labels)
        asked: dict[str, list[str]] = {}  # the model's text -> the labels asked with it, verbatim, no repeats
        for label in verbatim:
            text = query_text(label)
            if not text:
                raise InputError(f"labels: {label!r} has no words without '.' and '?'; give a noun, e.g. 'dog'")
            if label not in asked.setdefault(text, []):
                asked[text].append(label)
        image = image.convert("RGB")
        out: list[Detection] = []
        for group in self._groups(list(asked)):
            for text, box, score in self._detect_texts(image, group):
                out.extend(Detection(label, box, score) for label in asked[text])
        return out

    def _token_count(self, texts: Sequence[str]) -> int:
        return len(self.processor.tokenizer(caption_and_spans(texts)[0])["input_ids"])

    def _groups(self, texts: list[str]) -> list[list[str]]:
        """The texts split into captions that fit the model's ``max_text_len`` tokens (or one text each)."""
        for text in texts:
            if self._token_count([text]) > self.max_tokens:
                raise InputError(f"labels: {text!r} is longer than the model's {self.max_tokens} tokens; shorten it")
        if self.separate_queries:
            return [[text] for text in texts]
        groups: list[list[str]] = []
        for text in texts:
            if groups and self._token_count([*groups[-1], text]) <= self.max_tokens:
                groups[-1].append(text)
            else:
                groups.append([text])
        return groups

    @torch.no_grad()
    def _detect_texts(self, image: Image.Image, texts: list[str]) -> list[tuple[str, Box, float]]:
        caption, spans = caption_and_spans(texts)
        inputs = self.processor(images=image, text=caption, return_tensors="pt").to(self.device)
        outputs = self.model(**inputs)
        offsets = self.processor.tokenizer(caption, return_offsets_mapping=True)["offset_mapping"]
        tokens = [
            [i for i, (a, b) in enumerate(offsets) if b > a and start <= a and b <= end and i < self.max_tokens]
            for start, end in spans
        ]
        probs = outputs.logits[0].sigmoid().float().cpu()  # (queries, max_text_len); padding tokens are -inf -> 0
        box_scores = probs.max(dim=-1).values
        label_scores = torch.stack(
            [probs[:, t].max(dim=-1).values if t else torch.zeros(len(probs)) for t in tokens], dim=-1
        )
        best_score, best_label = label_scores.max(dim=-1)
        keep = (box_scores > self.box_threshold) & (best_score > self.text_threshold)
        cx, cy, w, h = outputs.pred_boxes[0].float().cpu().unbind(-1)  # relative to the image (no padding: one image)
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1).clamp(0, 1).numpy()
        found = []
        for index, text in enumerate(texts):
            rows = np.flatnonzero((keep & (best_label == index)).numpy())
            scores = box_scores.numpy()[rows]
            for kept in nms(boxes[rows], scores, self.nms_iou) if self.nms_iou < 1 else range(len(rows)):
                found.append((text, as_box(boxes[rows[kept]]), float(scores[kept])))
        return found


@register("grounding-dino")
def build_grounding_dino(
    weights: str | None,
    device: str = "cpu",
    box_threshold: Any = BOX_THRESHOLD,
    text_threshold: Any = TEXT_THRESHOLD,
    nms_iou: Any = NMS_IOU,
    separate_queries: Any = False,
) -> GroundingDinoDetector:
    settings = {
        "box_threshold": number_option("box_threshold", box_threshold),
        "text_threshold": number_option("text_threshold", text_threshold),
        "nms_iou": number_option("nms_iou", nms_iou),
        "separate_queries": flag_option("separate_queries", separate_queries),
    }
    torch_device = check_device(device)
    folder = model_folder(weights, "grounding-dino", "grounding-dino", HUB_IDS)
    auto_processor, auto_model = transformers_classes(
        "grounding-dino", "AutoProcessor", "AutoModelForZeroShotObjectDetection"
    )
    processor = load_pretrained(auto_processor, folder, "grounding-dino")
    model = load_pretrained(auto_model, folder, "grounding-dino", use_safetensors=True)
    model = model.to(torch_device).eval()
    return GroundingDinoDetector(model, processor, torch_device, folder.name, **settings)
