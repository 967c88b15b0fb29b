"""What the model "sees": per-phrase segmentation read from cross-attention (ZestGuide's Eq. 3).

For each phrase, the cross-attention of its tokens is summed, averaged over heads and the chosen layers
(and over the denoising steps), and upsampled to a common grid. ``attention_segmentation`` runs the pipeline
once and returns the maps, a label map (argmax over phrases where the best map is above ``threshold`` times
its peak) and the image, so users can look at where each phrase lands, with or without a layout method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .errors import InputError
from .layout import Layout, Region
from .tokens import map_phrases


@dataclasses.dataclass
class Segmentation:
    image: Image.Image
    phrases: list[str]
    maps: np.ndarray  # (R, h, w), each scaled to peak 1
    labels: np.ndarray  # (h, w) int: region index, -1 for none
    steps: tuple[int, int]  # the step window averaged


def attention_segmentation(
    pipe,
    prompt: str | None = None,
    phrases: Sequence[str] | None = None,
    *,
    layout: Layout | None = None,
    method: str | None = None,
    resolution: int | None = None,
    window: tuple[float, float] = (0.0, 1.0),
    threshold: float = 0.3,
    **call_kwargs,
) -> Segmentation:
    """Generate once and segment the result by phrase attention.

    Give ``prompt`` and ``phrases`` (no layout needed), or a ``layout`` (its phrases, and a method may use its
    boxes). ``window`` is the share of the steps whose maps are averaged (ZestGuide reads them early). The maps are
    the layers the methods read (the UNet's level 2, relative to the latent), or of grid side ``resolution``.
    """
    if layout is None:
        if not prompt or not phrases:
            raise InputError("attention_segmentation: give prompt and phrases, or a layout")
        # boxes are irrelevant without a method: a full-canvas box keeps the Layout valid
        layout = Layout(prompt=prompt, regions=tuple(Region(p, box=(0.0, 0.0, 1.0, 1.0)) for p in phrases))
    result = pipe(layout=layout, method=method, return_attention=True, attention_resolution=resolution, **call_kwargs)
    tokens = map_phrases(
        pipe.tokenizer,
        result.layouts[0].prompt,
        layout.phrases,
        on_missing="append" if call_kwargs.get("append_missing_phrases") else "error",
    )
    n = len(result.attention)
    lo, hi = int(window[0] * n), max(int(window[0] * n) + 1, int(round(window[1] * n)))
    mean = torch.stack([a[0] for a in result.attention[lo:hi]]).mean(0)  # (h, w, 77)
    maps = torch.stack([mean[..., list(idx)].sum(-1) for idx in tokens.indices]).numpy()  # (R, h, w)
    maps = maps / np.maximum(maps.reshape(len(maps), -1).max(1), 1e-8)[:, None, None]
    best = maps.argmax(0)
    labels = np.where(maps.max(0) >= threshold, best, -1)
    return Segmentation(result.images[0], layout.phrases, maps, labels, (lo, hi))
