"""Captions for the GLIGEN stage that lack the colours, as real GLIGEN's grounding data often does.

GLIGEN learnt its grounding from detection and caption data whose boxes carry noun labels and whose captions often
omit the attributes of the grounded objects (and from detection data with no caption at all). ReGround
(arXiv 2403.13589) traces *description omission* to that: in the sequential wiring the gated self-attention
("fuser") rewrites the visual tokens before the cross-attention reads them, and a fuser never asked to keep the
caption's attributes readable does not. The shapes GLIGEN stage normally sees every caption whole, so its fusers
learnt to keep colours (sequential GLIGEN raises colour accuracy over unguided there). ``colourless_share`` gives the
stage the real data's mix instead: that share of captions name the shapes and their counts but no colour, and
``null_share`` more are empty while the boxes stay (detection data without captions).
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


def stage_captions(
    scenes,
    p_uncond: float,
    colourless_share: float,
    rng: random.Random,
    colour_rng: random.Random,
    null_share: float = 0.0,
) -> list[str]:
    """The GLIGEN stage's captions: ``""`` with probability ``p_uncond`` (drawn from ``rng``, as the stage always
    has, so both shares at 0 reproduce its earlier batches exactly); else, by one draw from ``colour_rng``, ``""``
    with probability ``null_share``, the caption without its colours with probability ``colourless_share``, else
    the scene's caption."""
    for name, share in (("colourless_share", colourless_share), ("null_share", null_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {share}")
    if colourless_share + null_share > 1.0:
        raise ValueError(f"colourless_share + null_share must be at most 1, got {colourless_share + null_share}")
    captions = []
    for scene in scenes:
        if rng.random() < p_uncond:
            captions.append("")
            continue
        draw = colour_rng.random() if colourless_share or null_share else 1.0
        if draw < null_share:
            captions.append("")
        elif draw < null_share + colourless_share:
            captions.append(colourless_caption(scene))
        else:
            captions.append(scene.caption)
    return captions
