""" "Look inside": per-phrase cross-attention heatmaps at one sampling step, and the shapes world's exact evaluator
verdict per region (found / in box / IoU)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from ..layout import Layout
from ..shapes.evaluate import evaluate
from ..tokens import map_phrases
from ..viz import region_heatmaps


def step_heatmaps(
    image: Image.Image, layout: Layout, attention: Sequence[torch.Tensor], index: int, step: int, tokenizer
) -> list[tuple[Image.Image, str]]:
    """One heatmap per region of image ``index`` at sampling step ``step`` (0-based; -1 averages every step),
    captioned with the phrase, from the pipeline's ``attention`` output (per step ``(B, h, w, 77)``)."""
    if not layout.regions or not attention:
        return []
    tokens = map_phrases(tokenizer, layout.prompt, layout.phrases, on_missing="append")
    if step < 0:
        maps = torch.stack([a[index] for a in attention]).mean(0)
    else:
        maps = attention[min(step, len(attention) - 1)][index]
    tiles = region_heatmaps(image, layout, maps.float().numpy(), tokens.indices)
    return [(tile, f"{i}: {region.phrase}") for i, (tile, region) in enumerate(zip(tiles, layout.regions))]


def verdict_rows(image: Image.Image, layout: Layout) -> tuple[list[list[object]], str]:
    """The exact evaluator's verdict per region as table rows ``[region, phrase, found, in box, IoU]`` and a
    one-line summary; for phrases outside the shapes world the rows are empty and the line says why."""
    try:
        score = evaluate(image, layout)
    except ValueError as e:  # a phrase that is not "<colour> <shape>": not a shapes-world layout
        return [], f"evaluator: {e}"
    rows: list[list[object]] = [
        [r.index, r.phrase, "yes" if r.found else "no", "yes" if r.in_box else "no", round(r.iou, 3)]
        for r in score.regions
    ]
    return (
        rows,
        f"object in box {score.object_in_box:.2f}, mean IoU {score.mean_iou:.2f}, found {score.found_rate:.2f}",
    )
