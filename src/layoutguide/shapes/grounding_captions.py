"""Captions for the GLIGEN stage that lack the colours, as real GLIGEN's grounding data often does.

GLIGEN learnt its grounding from detection and caption data whose boxes carry noun labels and whose captions often
omit the attributes of the grounded objects (and from detection data with no caption at all). ReGround
(arXiv 2403.13589) traces *description omission* to that: in the sequential wiring the gated self-attention
("fuser") rewrites the visual tokens before the cross-attention reads them, and a fuser never asked to keep the
caption's attributes readable does not. The shapes GLIGEN stage normally sees every caption whole, so its fusers
learnt to keep colours (sequential GLIGEN raises colour accuracy over unguided there). ``colourless_share`` gives the
stage the real data's mix instead: that share of captions name the shapes and their counts but no colour.
"""

from __future__ import annotations

import random
from collections import Counter

from .world import NUMBER_WORDS, PLURALS

MAX_NUMBER = max(NUMBER_WORDS)


def colourless_caption(scene) -> str:
    """``"two circles and a square"`` for a scene of two circles (of any colours) and a square: the caption's
    grammar, groups by shape in order of first appearance, no colour words."""
    groups = Counter(obj.shape for obj in scene.objects)
    parts = []
    for shape, n in groups.items():
        if n > MAX_NUMBER:
            raise ValueError(f"a scene holds {n} {PLURALS[shape]}; captions count up to {MAX_NUMBER}")
        parts.append(f"{NUMBER_WORDS[n]} {PLURALS[shape] if n > 1 else shape}")
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def stage_captions(scenes, p_uncond: float, colourless_share: float, rng: random.Random, colour_rng: random.Random):
    """The GLIGEN stage's captions: ``""`` with probability ``p_uncond`` (drawn from ``rng``, as the stage always
    has, so ``colourless_share=0`` reproduces its earlier batches exactly), else the scene's caption, without its
    colours with probability ``colourless_share`` (drawn from ``colour_rng``)."""
    if not 0.0 <= colourless_share <= 1.0:
        raise ValueError(f"colourless_share must be in [0, 1], got {colourless_share}")
    captions = []
    for scene in scenes:
        if rng.random() < p_uncond:
            captions.append("")
        elif colourless_share and colour_rng.random() < colourless_share:
            captions.append(colourless_caption(scene))
        else:
            captions.append(scene.caption)
    return captions
