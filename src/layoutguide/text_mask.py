"""The text attention mask a model folder may declare (``"text_mask"`` in its ``layoutguide.json``).

``"words"``: the UNet attends to the start token and the words only, not to the end token and padding (the shapes
models were trained so); ``"none"`` (Stable Diffusion and the like): no mask. Below the pipeline, so the pipeline
needs no model-specific package to build it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .errors import InputError

TEXT_MASKS = ("none", "words")


def word_token_mask(tokenizer: Any, texts: Sequence[str]) -> torch.Tensor:
    """``(B, 77)`` 1 for the start token and the words, 0 for the end token and padding (for
    ``encoder_attention_mask``). The end token is the first end-of-text id after position 0."""
    ids = tokenizer(
        list(texts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    is_end = ids == tokenizer.eos_token_id
    is_end[:, 0] = False
    end = torch.where(is_end.any(1), is_end.int().argmax(1), torch.full((len(texts),), ids.shape[1]))
    return (torch.arange(ids.shape[1])[None, :] < end[:, None]).long()


def text_attention_mask(kind: str, tokenizer: Any, texts: Sequence[str]) -> torch.Tensor | None:
    """The mask of ``kind`` (:data:`TEXT_MASKS`) for ``texts``; None for ``"none"``."""
    if kind == "none":
        return None
    if kind == "words":
        return word_token_mask(tokenizer, texts)
    raise InputError(f"layoutguide.json: text_mask must be one of {', '.join(TEXT_MASKS)}, got {kind!r}")
