"""The shapes world's exact evaluator as a detector: lets the public-suite harness be checked against
``bench shapes`` on shapes-world layouts written in a public suite's format (its numbers must agree).

Labels are shapes-world phrases or bare shape names: ``"red circle"`` finds red circles, ``"circle"`` finds circles
of any colour. Every detection carries its exact palette colour as ``attributes["colour"]`` and its mask; its
score is the evaluator's shape confidence. No weights.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from ...errors import InputError
from ...shapes.evaluate import detect
from ...shapes.world import COLOURS, SHAPES, SINGULARS
from .base import Detection, register


def parse_label(label: str) -> tuple[str | None, str]:
    """``"red circles"`` -> ``("red", "circle")``; ``"a circle"`` -> ``(None, "circle")``."""
    words = label.lower().replace(",", " ").split()
    colours = [w for w in words if w in COLOURS]
    shapes = [SINGULARS.get(w, w) for w in words if w in SHAPES or w in SINGULARS]
    if len(colours) > 1 or len(shapes) != 1:
        raise InputError(
            f"labels: {label!r} is not a shapes-world label; give one shape ({', '.join(SHAPES)}), "
            f"optionally with one colour ({', '.join(COLOURS)})"
        )
    return (colours[0] if colours else None), shapes[0]


class ShapesDetector:
    name = "shapes"
    description = "the shapes world's exact evaluator (layoutguide.shapes.evaluate.detect), no weights"

    def detect(self, image: Image.Image, labels: Sequence[str]) -> list[Detection]:
        wanted = {label: parse_label(label) for label in labels}
        out = []
        for found in detect(image):
            for label, (colour, shape) in wanted.items():
                if found.shape == shape and colour in (None, found.colour):
                    out.append(Detection(label, found.box, found.confidence, found.mask, {"colour": found.colour}))
        return out


@register("shapes")
def build_shapes(weights: str | None, device: str = "cpu") -> ShapesDetector:
    if weights is not None:
        raise InputError("detector_weights: the shapes detector has no weights; leave it out")
    return ShapesDetector()
